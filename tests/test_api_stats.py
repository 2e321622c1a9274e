"""GET /v1/stats and /metrics."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service import client, message

pytestmark = pytest.mark.anyio


async def _fill(c: Any) -> None:
    batch = [message("a", "1", "hello", channel="web"),
             message("a", "2", "you idiot", channel="web"),
             message("a", "3", "you moron", channel="web"),
             message("b", "1", "still waiting", channel="sms"),
             message("b", "2", "I want to kill myself", channel="sms"),
             message("b", "3", "you idiot", role="agent", channel="sms")]
    r = await c.post("/v1/messages:batch", json={"messages": batch})
    assert r.status_code == 200, r.text


async def test_stats_over_a_window(make_app: Any) -> None:
    async with client(make_app()) as c:
        await _fill(c)
        r = await c.get("/v1/stats", params={"window": "24h"})
        assert r.status_code == 200
        s = r.json()
        empty = (await c.get("/v1/stats", params={"window": "1m"})).json()
    assert (s["window"], s["messages"], s["abusive"], s["frustrated"]) == ("24h", 5, 2, 1)
    assert (s["abuse_rate"], s["frustration_rate"]) == (0.4, 0.2)
    assert s["escalations"] == 2
    assert s["escalations_by_queue"] == {"abuse_review": 1, "crisis": 1}
    assert s["top_channels"] == [
        {"channel": "web", "messages": 3, "abusive": 2, "frustrated": 0},
        {"channel": "sms", "messages": 2, "abusive": 0, "frustrated": 1}]
    assert len(s["hourly"]) in (24, 25)
    assert s["hourly"][-1]["messages"] == 5 and s["hourly"][-1]["hour"].endswith(":00:00Z")
    assert empty["messages"] == 5  # everything arrived within the last minute
    assert empty["abuse_rate"] == 0.4


async def test_stats_of_an_empty_store(make_app: Any) -> None:
    async with client(make_app()) as c:
        s = (await c.get("/v1/stats", params={"window": "2h"})).json()
    assert (s["messages"], s["abuse_rate"], s["escalations"], s["top_channels"]) == (0, 0.0, 0,
                                                                                    [])
    assert [h["messages"] for h in s["hourly"]] in ([0, 0], [0, 0, 0])


async def test_metrics_count_what_was_stored(make_app: Any) -> None:
    async with client(make_app()) as c:
        await _fill(c)
        await c.post("/v1/messages", json=message("a", "1", "hello", channel="web"))  # replay
        r = await c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = r.text
    for line in (
        'filterd_messages_total{category="abusive",channel="web",level="4",queue="priority",'
        'role="customer"} 1.0',
        'filterd_messages_total{category="abusive",channel="web",level="4",'
        'queue="abuse_review",role="customer"} 1.0',
        'filterd_messages_total{category="abusive",channel="sms",level="4",queue="none",'
        'role="agent"} 1.0',
        'filterd_flags_total{flag="insult"} 3.0',
        'filterd_flags_total{flag="self_harm"} 1.0',
        'filterd_masked_spans_total{kind="insult"} 3.0',
        'filterd_escalations_total{queue="crisis"} 1.0',
        'filterd_escalations_total{queue="abuse_review"} 1.0',
        "filterd_strikes_total 2.0",
        "filterd_replays_total 1.0",
        "filterd_outbox_depth 0.0",
    ):
        assert line in m, line
    assert 'filterd_stage_seconds_count{stage="classify"}' in m
    assert "filterd_ingest_seconds_count 2.0" in m
