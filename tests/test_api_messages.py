"""POST /v1/messages and /v1/messages:batch: routing scenarios, idempotency, webhooks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.service import Receiver, client, message

pytestmark = pytest.mark.anyio

CONSOLE = "http://console.test/hook"
ALERTS = "http://alerts.test/hook"


async def _post(c: Any, cid: str, mid: str, text: str, **kw: Any) -> dict[str, Any]:
    r = await c.post("/v1/messages", json=message(cid, mid, text, **kw))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_frustrated_conversation_escalates_to_priority(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app()) as c:
        first = await _post(c, "c1", "m1", "hi, my internet is down")
        assert first["route"]["queue"] == "standard"
        second = await _post(c, "c2", "m1", "still not working, this is ridiculous")
        assert (second["category"], second["route"]["queue"]) == ("frustrated", "priority")
        await _post(c, "c2", "m2", "3 hours waiting now, unacceptable")
        # a calm message does not drop a conversation whose frustration has built up...
        calm = await _post(c, "c2", "m3", "ok")
        assert calm["category"] == "neutral"
        assert calm["route"] == {"queue": "priority", "priority": 2, "actions": [],
                                 "reason": "frustration building"}
        assert calm["conversation"]["customer_messages"] == 3
        # ...but frustration decays as calm messages follow
        calmer = await _post(c, "c2", "m4", "ok thanks")
        assert calmer["route"]["queue"] == "standard"
        listed = (await c.get("/v1/conversations", params={"queue": "standard"})).json()
        assert [x["id"] for x in listed["conversations"]] == ["c2", "c1"]


async def test_an_abusive_customer_strikes_out_to_abuse_review(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app()) as c:
        one = await _post(c, "c1", "m1", "you are an idiot")
        assert one["category"] == "abusive" and "idiot" not in one["text_masked"]
        assert one["route"]["queue"] == "priority"
        assert "warn_customer" in one["route"]["actions"]
        two = await _post(c, "c1", "m2", "you stupid moron")
        assert two["route"]["queue"] == "abuse_review"
        assert two["conversation"] == {"id": "c1", "customer_messages": 2,
                                       "frustration": two["conversation"]["frustration"],
                                       "strikes": 2, "escalated": "abuse_review"}




async def _drain(app: Any) -> int:
    return int(await app.state.services.deliverer.run_once())


async def test_a_threat_goes_to_supervisor_and_fires_the_alert(make_app) -> None:  # type: ignore[no-untyped-def]
    rx = Receiver()
    app = make_app(alert_webhook_url=ALERTS, transport=rx.transport)
    async with client(app) as c:
        v = await _post(c, "c1", "m1", "I know where you live and I'm coming for you")
        assert "threat" in v["flags"] and v["category"] == "abusive"
        assert v["route"]["queue"] == "supervisor" and "alert_supervisor" in v["route"]["actions"]
        await _post(c, "c1", "m2", "hello?")  # not alert-worthy
        assert await _drain(app) == 1
    [alert] = rx.payloads("/hook")
    assert alert["event"] == "alert"
    assert (alert["conversation_id"], alert["message_id"]) == ("c1", "m1")
    assert alert["verdict"]["route"]["queue"] == "supervisor"
    assert alert["conversation"]["escalated"] == "supervisor"
    assert rx.calls[0].headers["X-Filterd-Event"] == "alert"


async def test_self_harm_goes_to_crisis_at_once_and_alerts(make_app) -> None:  # type: ignore[no-untyped-def]
    rx = Receiver()
    app = make_app(alert_webhook_url=ALERTS, transport=rx.transport)
    async with client(app) as c:
        v = await _post(c, "c1", "m1", "if they cut my power I want to kill myself")
        assert v["category"] != "abusive"
        assert v["route"]["queue"] == "crisis"
        assert "alert_crisis_team" in v["route"]["actions"]
        assert v["conversation"]["escalated"] == "crisis"
        assert await _drain(app) == 1
    assert [p["verdict"]["route"]["queue"] for p in rx.accepted.values()] == ["crisis"]


async def test_console_webhooks_per_queue_and_default(make_app) -> None:  # type: ignore[no-untyped-def]
    rx = Receiver()
    app = make_app(console_webhook_url=CONSOLE,
                   console_webhook_urls={"priority": "http://console.test/priority"},
                   alert_webhook_url=ALERTS, transport=rx.transport)
    async with client(app) as c:
        await _post(c, "c1", "m1", "hi, a question about my bill")
        await _post(c, "c2", "m1", "still waiting, unacceptable")
        await _post(c, "c3", "m1", "I know where you live and I'm coming for you")
        await _post(c, "c1", "a1", "happy to help", role="agent")  # agents are not delivered
        assert await _drain(app) == 4
    by_path = sorted((r.url.host, r.url.path) for r in rx.calls)
    assert by_path == [("alerts.test", "/hook"), ("console.test", "/hook"),
                       ("console.test", "/hook"), ("console.test", "/priority")]
    assert not rx.duplicates


async def test_agent_and_bot_messages_are_stored_masked_but_not_routed(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app()) as c:
        await _post(c, "c1", "m1", "you idiot")
        agent = await _post(c, "c1", "a1", "please call 415 555 0132, you idiot", role="agent")
        bot = await _post(c, "c1", "b1", "still waiting? ridiculous", role="bot")
        assert agent["route"]["queue"] == "none" and bot["route"]["queue"] == "none"
        assert "555 0132" not in agent["text_masked"] and "pii" in agent["flags"]
        for v in (agent, bot):
            assert v["conversation"]["strikes"] == 1
            assert v["conversation"]["customer_messages"] == 1
        t = (await c.get("/v1/conversations/c1")).json()
        assert [m["role"] for m in t["transcript"]] == ["customer", "agent", "bot"]
        assert t["state"]["strikes"] == 1 and t["queue"] == "priority"


async def test_a_retry_returns_the_first_verdict_and_counts_nothing_twice(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app()) as c:
        first = await c.post("/v1/messages", json=message("c1", "m1", "you idiot"))
        again = await c.post("/v1/messages", json=message("c1", "m1", "you idiot"))
        # even a retry whose body changed answers the stored verdict
        changed = await c.post("/v1/messages", json=message("c1", "m1", "thanks!"))
        assert first.json() == again.json() == changed.json()
        assert "Idempotent-Replayed" not in first.headers
        assert again.headers["Idempotent-Replayed"] == "true"
        t = (await c.get("/v1/conversations/c1")).json()
        assert t["state"]["strikes"] == 1 and len(t["transcript"]) == 1
        metrics = (await c.get("/metrics")).text
        assert "filterd_replays_total 2.0" in metrics


async def test_concurrent_retries_store_one_message(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app()) as c:
        body = message("c1", "m1", "you idiot")
        rs = await asyncio.gather(*(c.post("/v1/messages", json=body) for _ in range(12)))
        assert {r.status_code for r in rs} == {200}
        assert len({r.text for r in rs}) == 1
        assert sum("Idempotent-Replayed" not in r.headers for r in rs) == 1
        t = (await c.get("/v1/conversations/c1")).json()
        assert t["state"]["strikes"] == 1 and len(t["transcript"]) == 1


async def test_concurrent_messages_of_one_conversation_all_count(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app()) as c:
        rs = await asyncio.gather(*(
            c.post("/v1/messages", json=message("c1", f"m{i}", "you idiot")) for i in range(12)))
        assert {r.status_code for r in rs} == {200}
        assert sorted(r.json()["conversation"]["strikes"] for r in rs) == list(range(1, 13))
        t = (await c.get("/v1/conversations/c1")).json()
        assert t["state"]["strikes"] == 12 and t["messages"] == 12


async def test_a_batch_is_judged_in_order_per_conversation(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app()) as c:
        batch = [message("a", "1", "you idiot"), message("b", "1", "hello"),
                 message("a", "2", "you moron"), message("b", "2", "still waiting"),
                 message("a", "3", "ok"), message("a", "1", "you idiot")]  # last: a duplicate
        r = await c.post("/v1/messages:batch", json={"messages": batch})
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        assert [x["id"] for x in res] == ["1", "1", "2", "2", "3", "1"]
        assert [x["conversation"]["id"] for x in res] == ["a", "b", "a", "b", "a", "a"]
        assert [x["conversation"]["strikes"] for x in res if x["conversation"]["id"] == "a"] == [
            1, 2, 2, 1]
        assert res[2]["route"]["queue"] == "abuse_review"
        assert res[3]["route"]["queue"] == "priority"
        assert res[5] == res[0]
        t = (await c.get("/v1/conversations/a")).json()
        assert [m["message_id"] for m in t["transcript"]] == ["1", "2", "3"]
        # a batch resent as a whole replays every verdict
        r2 = await c.post("/v1/messages:batch", json={"messages": batch})
        assert r2.json() == r.json()


async def test_a_batch_with_one_bad_message_stores_nothing(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app(max_message_bytes=100)) as c:
        batch = [message("a", "1", "fine"), message("a", "2", "x" * 101)]
        r = await c.post("/v1/messages:batch", json={"messages": batch})
        assert r.status_code == 413
        assert r.json()["error"]["message"].startswith("messages[1]: 'text' is 101 bytes")
        assert (await c.get("/v1/conversations/a")).status_code == 404


async def test_pii_and_profanity_are_masked_in_answer_and_transcript(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app()) as c:
        text = "this fucking router again, call me on +1 415 555 0132"
        v = await _post(c, "c1", "m1", text)
        assert "fucking" not in v["text_masked"] and "555 0132" not in v["text_masked"]
        assert {"profanity", "pii"} <= set(v["flags"])
        kinds = {s["kind"] for s in v["spans"]}
        assert "profanity" in kinds and "pii:phone" in kinds
        t = (await c.get("/v1/conversations/c1")).json()
        assert t["transcript"][0]["text_masked"] == v["text_masked"]
