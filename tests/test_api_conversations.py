"""GET /v1/conversations and /v1/conversations/{id}."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.service import client, message

pytestmark = pytest.mark.anyio


async def test_a_transcript_is_masked_tagged_and_carries_the_state(make_app: Any) -> None:
    async with client(make_app()) as c:
        await c.post("/v1/messages", json=message(
            "c1", "m1", "hi, my email is jo.doe@example.com", sent_at="2025-03-01T10:00:00+01:00",
            metadata={"locale": "en-GB"}))
        await c.post("/v1/messages", json=message("c1", "a1", "let me check", role="agent"))
        await c.post("/v1/messages", json=message("c1", "m2", "you idiot"))
        r = await c.get("/v1/conversations/c1")
    assert r.status_code == 200
    t = r.json()
    assert t["state"] == {"customer_messages": 2, "frustration": t["state"]["frustration"],
                          "strikes": 1, "escalated": None}
    assert (t["id"], t["channel"], t["queue"], t["category"], t["messages"]) == (
        "c1", "chat", "priority", "abusive", 3)
    m1, a1, m2 = t["transcript"]
    assert [m["seq"] for m in t["transcript"]] == [1, 2, 3]
    assert "jo.doe" not in m1["text_masked"] and m1["flags"] == ["pii"]
    assert m1["sent_at"] == "2025-03-01T09:00:00Z"  # stored and shown in UTC
    assert (a1["role"], a1["route"]["queue"]) == ("agent", "none")
    assert (m2["category"], m2["level"], m2["route"]["queue"]) == ("abusive", 4, "priority")
    assert m2["flags"] == ["insult"] and "idiot" not in m2["text_masked"]
    assert set(m2) == {"message_id", "seq", "role", "sender_id", "channel", "text_masked",
                       "category", "level", "intensity", "flags", "route", "sent_at",
                       "received_at"}


async def test_the_list_is_newest_first_and_filters(make_app: Any) -> None:
    async with client(make_app()) as c:
        await c.post("/v1/messages", json=message("calm", "m1", "hello"))
        await c.post("/v1/messages", json=message("rude", "m1", "you idiot"))
        await c.post("/v1/messages", json=message("rude", "m2", "you moron"))
        await c.post("/v1/messages", json=message("late", "m1", "still waiting"))

        async def ids(**params: Any) -> list[str]:
            r = await c.get("/v1/conversations", params=params)
            assert r.status_code == 200, r.text
            return [x["id"] for x in r.json()["conversations"]]

        assert await ids() == ["late", "rude", "calm"]
        assert await ids(limit=2) == ["late", "rude"]
        assert await ids(queue="abuse_review") == ["rude"]
        assert await ids(queue="priority") == ["late"]
        assert await ids(category="abusive") == ["rude"]
        assert await ids(category="neutral") == ["calm"]
        future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        assert await ids(since=future) == []
        past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        assert await ids(since=past) == ["late", "rude", "calm"]
        first = (await c.get("/v1/conversations")).json()["conversations"][1]
        assert first["state"]["escalated"] == "abuse_review" and first["messages"] == 2
