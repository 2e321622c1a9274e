"""/healthz and /readyz."""

from __future__ import annotations

from typing import Any

import pytest

from filterd.classify.fake import FailingClassifier
from filterd.config import load_settings
from filterd.errors import StoreError
from filterd.pipeline import Filter
from tests.service import client

pytestmark = pytest.mark.anyio


async def test_alive_and_ready(make_app: Any) -> None:
    async with client(make_app()) as c:
        assert (await c.get("/healthz")).json() == {"status": "ok", "checks": {}}
        r = await c.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"model": "ok", "store": "ok"}}


async def test_not_ready_when_the_store_takes_no_writes(make_app: Any) -> None:
    app = make_app()
    store = app.state.services.store

    def refuse() -> None:
        raise StoreError("read-only")

    store.ping = refuse
    async with client(app) as c:
        r = await c.get("/readyz")
        assert (await c.get("/healthz")).status_code == 200  # alive all the same
    assert r.status_code == 503
    assert r.json()["checks"] == {"model": "ok", "store": "failed: StoreError"}


async def test_not_ready_when_the_model_fails(make_app: Any) -> None:
    app = make_app(filter=Filter(load_settings(), classifier=FailingClassifier()))
    async with client(app) as c:
        r = await c.get("/readyz")
        # a broken model still judges from the detectors: ingest goes on, degraded
        v = (await c.post("/v1/messages", json={
            "conversation_id": "c", "message_id": "m", "channel": "chat",
            "sender": {"role": "customer", "id": "u"}, "text": "you idiot"})).json()
    assert r.status_code == 503 and r.json()["checks"]["model"] == "failed: ModelError"
    assert v["degraded"] is True and "idiot" not in v["text_masked"]


async def test_not_ready_before_migrations(make_app: Any) -> None:
    async with client(make_app(migrate_on_start=False)) as c:
        r = await c.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["store"] == "failed: StoreError"
