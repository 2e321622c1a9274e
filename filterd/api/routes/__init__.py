"""One module per resource; ``ROUTERS`` is the explicit list ``create_app`` mounts."""

from __future__ import annotations

from fastapi import APIRouter

from filterd.api.routes import conversations, deliveries, feedback, health, messages, stats

ROUTERS: tuple[APIRouter, ...] = (
    messages.router,
    feedback.router,
    conversations.router,
    deliveries.router,
    stats.router,
    health.router,
)
