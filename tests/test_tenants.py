"""Tenants, on SQLite and PostgreSQL: two tenants using the same conversation and message ids
keep two conversations, and no key of one tenant reaches the other's data by any route."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from filterd import apikeys
from filterd.errors import NotFoundError
from filterd.ingest import delivery_key
from filterd.store.base import AuditEntry, ConversationQuery, FeedbackIn, utcnow
from filterd.store.sql import SqlStore
from tests.service import Receiver, bearer, client, issue_keys, message

pytestmark = pytest.mark.anyio

ROLES = ("ingest", "agent", "supervisor", "admin")
RAW_A = "you idiot, call me on +1 415 555 0132"


def test_store_methods_see_one_tenant_only(store: SqlStore) -> None:
    from tests.test_store import _write

    store.write("a", _write("c1", ["m1", "m2"], category="abusive", queue="abuse_review",
                            sealed="token-a"))
    store.write("b", _write("c1", ["m1"]))  # the same ids: another conversation
    assert store.snapshots("a", ["c1"])["c1"].version == 1
    assert store.snapshots("b", ["c1"])["c1"].state.customer_messages == 1
    assert [m.message_id for m in store.transcript("b", "c1").messages] == ["m1"]
    assert list(store.find_messages("b", [("c1", "m2")])) == []
    assert store.find_messages("a", [("c1", "m1")])[("c1", "m1")].tenant == "a"
    assert [c.queue for c in store.conversations("b", ConversationQuery())] == ["standard"]
    assert store.conversations("c", ConversationQuery()) == []
    with pytest.raises(NotFoundError):
        store.transcript("c", "c1")
    with pytest.raises(NotFoundError):
        store.add_feedback("b", FeedbackIn("c1", "m2", "neutral", (), "x"), utcnow())
    assert store.sealed_original("a", "c1", "m1") == "token-a"
    assert store.sealed_original("b", "c1", "m1") is None
    with pytest.raises(NotFoundError):
        store.sealed_original("c", "c1", "m1")
    now = utcnow()
    store.audit("a", AuditEntry("key-1", "supervisor", "read_original", "c1", "m1", "granted",
                                now))
    assert store.audit_entries("b", 10) == [] and len(store.audit_entries("a", 10)) == 1
    until = utcnow() + timedelta(seconds=1)
    since = until - timedelta(hours=1)
    assert store.stats("a", since, until).abusive == 2
    assert store.stats("b", since, until).abusive == 0
    assert store.stats("b", since, until).messages == 1
    assert store.offenders("b", since, until, 10) == []
    assert [o.abusive for o in store.offenders("a", since, until, 10)] == [2]


def test_api_keys_in_the_store(store: SqlStore) -> None:
    key, token = apikeys.issue(store, "agent", "acme", "desk 4")
    assert token.startswith(f"fd_{key.id}_") and apikeys.matches(token, key.digest)
    got = store.api_key(key.id)
    assert got == key and got.active and got.name == "desk 4"
    assert store.api_key("000000000000") is None and store.has_api_keys()
    other, _ = apikeys.issue(store, "admin", "globex")
    assert [k.id for k in store.api_keys("acme")] == [key.id]
    assert {k.id for k in store.api_keys()} == {key.id, other.id}
    with pytest.raises(NotFoundError):  # another tenant's key is unknown to it
        store.revoke_api_key(key.id, utcnow(), tenant="globex")
    revoked = store.revoke_api_key(key.id, utcnow(), tenant="acme")
    assert not revoked.active
    assert store.revoke_api_key(key.id, utcnow()).revoked_at == revoked.revoked_at
    store.touch_api_key(other.id, utcnow())
    assert store.api_key(other.id).last_used_at is not None  # type: ignore[union-attr]


async def _stream(c: httpx.AsyncClient, app: Any, key: str, n: int) -> asyncio.Task[str]:
    events = app.state.services.events
    before = events.subscribers

    async def listen() -> str:
        r = await c.get("/v1/events", params={"max_events": n}, headers=bearer(key))
        assert r.status_code == 200
        return r.text

    task = asyncio.create_task(listen())
    for _ in range(400):
        if events.subscribers > before:
            break
        await asyncio.sleep(0.005)
    return task


async def test_two_tenants_with_the_same_ids_never_see_each_other(make_app: Any,
                                                                  db_url: str) -> None:
    receiver = Receiver()
    app = make_app(database_url=db_url, store_originals=True,
                   originals_key=Fernet.generate_key().decode(),
                   console_webhook_url="http://console.test/hook", delivery_max_attempts=1,
                   transport=receiver.transport)
    a = issue_keys(app, *ROLES, tenant="acme")
    b = issue_keys(app, *ROLES, tenant="globex")
    async with client(app) as c:
        stream_b = await _stream(c, app, b["agent"], 1)
        stream_a = await _stream(c, app, a["agent"], 2)
        # the same conversation and message ids in both tenants
        ra = await c.post("/v1/messages", json=message("c1", "m1", RAW_A),
                          headers=bearer(a["ingest"]))
        ra2 = await c.post("/v1/messages", json=message("c1", "m2", "you moron"),
                           headers=bearer(a["ingest"]))
        rb = await c.post("/v1/messages", json=message("c1", "m1", "hello there"),
                          headers=bearer(b["ingest"]))
        assert (ra.status_code, ra2.status_code, rb.status_code) == (200, 200, 200)
        assert "Idempotent-Replayed" not in rb.headers  # not a replay of acme's m1
        assert ra2.json()["conversation"]["strikes"] == 2
        conv_b = rb.json()["conversation"]
        assert (conv_b["customer_messages"], conv_b["strikes"]) == (1, 0)  # its own state
        body_b, body_a = await asyncio.wait_for(asyncio.gather(stream_b, stream_a), 10)

        # B's agent: lists, reads, corrects only B's c1
        listed = (await c.get("/v1/conversations", headers=bearer(b["agent"]))).json()
        assert [(x["id"], x["messages"]) for x in listed["conversations"]] == [("c1", 1)]
        t = (await c.get("/v1/conversations/c1", headers=bearer(b["agent"]))).json()
        assert [m["text_masked"] for m in t["transcript"]] == ["hello there"]
        fb = await c.post("/v1/messages/c1/m2/feedback", json={"category": "neutral",
                                                               "by": "b-agent"},
                          headers=bearer(b["agent"]))
        assert fb.status_code == 404  # acme's m2 does not exist for globex
        assert (await c.get("/v1/conversations/c1",
                            headers=bearer(a["agent"]))).json()["messages"] == 2

        # originals: B's supervisor reads B's own, never A's
        own = await c.get("/v1/messages/c1/m1/original", headers=bearer(b["supervisor"]))
        assert own.status_code == 200 and own.json()["text"] == "hello there"
        missing = await c.get("/v1/messages/c1/m2/original", headers=bearer(b["supervisor"]))
        assert missing.status_code == 404 and "555" not in missing.text
        mine = await c.get("/v1/messages/c1/m1/original", headers=bearer(a["supervisor"]))
        assert mine.json()["text"] == RAW_A
        # an agent never gets an original nor the audit log, in any tenant
        for key in (a["agent"], b["agent"]):
            denied = await c.get("/v1/messages/c1/m1/original", headers=bearer(key))
            assert denied.status_code == 403 and "idiot" not in denied.text
            assert (await c.get("/v1/audit", headers=bearer(key))).status_code == 403
        audit_a = (await c.get("/v1/audit", headers=bearer(a["supervisor"]))).json()
        audit_b = (await c.get("/v1/audit", headers=bearer(b["supervisor"]))).json()
        assert [(e["outcome"], e["message_id"]) for e in audit_a["entries"]] == [
            ("denied", "m1"), ("granted", "m1")]
        assert [(e["outcome"], e["message_id"]) for e in audit_b["entries"]] == [
            ("denied", "m1"), ("not_found", "m2"), ("granted", "m1")]

        # figures: each tenant's own
        stats_b = (await c.get("/v1/stats", headers=bearer(b["supervisor"]))).json()
        stats_a = (await c.get("/v1/stats", headers=bearer(a["supervisor"]))).json()
        assert (stats_b["messages"], stats_b["abusive"]) == (1, 0)
        assert (stats_a["messages"], stats_a["abusive"]) == (2, 2)
        dash_b = (await c.get("/v1/dashboard", headers=bearer(b["supervisor"]))).json()
        assert dash_b["repeat_offenders"] == [] and dash_b["queues"]["abuse_review"] == []

        # webhooks: one delivery per tenant, distinct keys, the tenant named
        receiver.down = True
        assert await app.state.services.deliverer.run_once() == 3
        dead_b = (await c.get("/v1/deliveries/dead", headers=bearer(b["admin"]))).json()
        dead_a = (await c.get("/v1/deliveries/dead", headers=bearer(a["admin"]))).json()
        assert [d["message_id"] for d in dead_b["deliveries"]] == ["m1"]
        assert len(dead_a["deliveries"]) == 2
        a_id = dead_a["deliveries"][0]["id"]
        assert (await c.post(f"/v1/deliveries/{a_id}/retry",
                             headers=bearer(b["admin"]))).status_code == 404
        assert (await c.post(f"/v1/deliveries/{a_id}/retry",
                             headers=bearer(a["admin"]))).status_code == 202
        receiver.down = False
        await app.state.services.deliverer.run_once()

        # keys: an admin manages its own tenant's keys only
        keys_b = (await c.get("/v1/keys", headers=bearer(b["admin"]))).json()["keys"]
        assert {k["tenant"] for k in keys_b} == {"globex"} and len(keys_b) == 4
        a_agent_id = apikeys.key_id_of(a["agent"])
        assert (await c.post(f"/v1/keys/{a_agent_id}/revoke",
                             headers=bearer(b["admin"]))).status_code == 404
        assert (await c.get("/v1/me", headers=bearer(a["agent"]))).status_code == 200

    events_b = [json.loads(x[5:]) for x in body_b.splitlines() if x.startswith("data:")]
    events_a = [json.loads(x[5:]) for x in body_a.splitlines() if x.startswith("data:")]
    assert [e["message"]["text_masked"] for e in events_b] == ["hello there"]
    assert [e["message"]["message_id"] for e in events_a] == ["m1", "m2"]
    assert "hello there" not in body_a
    payloads = {p["tenant"]: p for p in receiver.accepted.values()}
    assert set(payloads) == {"acme"}  # globex's was left dead; acme's retried
    keys = {delivery_key("console", "c1", "m1", t) for t in ("acme", "globex", "default")}
    assert len(keys) == 3  # the tenant is part of a webhook's Idempotency-Key...
    assert delivery_key("console", "c1", "m1") == delivery_key("console", "c1", "m1",
                                                               "default")
