"""One module per resource; ``ROUTERS`` is the explicit list ``create_app`` mounts."""

from __future__ import annotations

from fastapi import APIRouter

from filterd.api.routes import (
    audit,
    conversations,
    customers,
    dashboard,
    deliveries,
    events,
    feedback,
    health,
    keys,
    messages,
    originals,
    stats,
)

ROUTERS: tuple[APIRouter, ...] = (
    messages.router,
    feedback.router,
    conversations.router,
    deliveries.router,
    stats.router,
    events.router,
    dashboard.router,
    originals.router,
    audit.router,
    keys.router,
    customers.router,  # privacy (issue 6): right to erasure
    health.router,
)
