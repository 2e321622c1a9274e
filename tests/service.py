"""Helpers for the service tests: message bodies, an in-process client, a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI


def message(conversation_id: str, message_id: str, text: str, role: str = "customer",
            channel: str = "chat", **extra: Any) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "message_id": message_id, "channel": channel,
            "sender": {"role": role, "id": f"{role}-1"}, "text": text, **extra}


@asynccontextmanager
async def client(app: FastAPI, raise_app_exceptions: bool = True
                 ) -> AsyncIterator[httpx.AsyncClient]:
    """httpx against the ASGI app, with its lifespan (migrations, deliverer) run."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://filterd.test") as c:
            yield c


class Receiver:
    """A webhook endpoint for ``httpx.MockTransport``: can be down; dedupes by key."""

    def __init__(self) -> None:
        self.down = False
        self.fail_with: Exception | None = None
        self.calls: list[httpx.Request] = []
        self.accepted: dict[str, dict[str, Any]] = {}  # Idempotency-Key -> payload
        self.duplicates: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        import json

        self.calls.append(request)
        if self.fail_with is not None:
            raise self.fail_with
        if self.down:
            return httpx.Response(503, json={"error": "console down"})
        key = request.headers["Idempotency-Key"]
        if key in self.accepted:
            self.duplicates.append(key)
        else:
            self.accepted[key] = json.loads(request.content)
        return httpx.Response(200, json={"ok": True})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def payloads(self, path: str) -> list[dict[str, Any]]:
        urls = {r.headers["Idempotency-Key"]: r.url.path for r in self.calls}
        return [p for k, p in self.accepted.items() if urls[k] == path]


# ---- access (issue 6): API keys for the service tests


def issue_keys(app: FastAPI, *roles: str, tenant: str = "default") -> dict[str, str]:
    """Create API keys of ``roles`` in ``tenant`` in the app's store (migrating it first);
    role -> key. Keys made before the first request close the service at once."""
    from filterd import apikeys

    store = app.state.services.store
    store.upgrade()
    return {role: apikeys.issue(store, role, tenant, name=f"test {role}")[1] for role in roles}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
