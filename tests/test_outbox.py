"""Webhook delivery: backoff, a console that fails and recovers, dead letters, leases."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest

from filterd.outbox import backoff, public_url
from filterd.store.base import utcnow
from tests.service import Receiver, client, message

CONSOLE = "http://console.test/hook"


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "low", "high"),
    [
        (1, 1.0, 300.0, 0.5, 1.0),  # first retry: within [base/2, base]
        (2, 1.0, 300.0, 1.0, 2.0),  # doubles
        (5, 1.0, 300.0, 8.0, 16.0),
        (20, 1.0, 300.0, 150.0, 300.0),  # capped
        (3, 0.0, 300.0, 0.0, 0.0),  # base 0: retry at once (tests)
    ],
)
def test_backoff_is_exponential_capped_and_jittered(attempt: int, base: float, cap: float,
                                                    low: float, high: float) -> None:
    rng = random.Random(7)
    delays = [backoff(attempt, base, cap, rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    if high > low:
        assert len(set(delays)) > 100  # jittered: retries of many messages spread out


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@console.test:8443/hook?token=abc", "https://console.test:8443/hook"),
        ("http://console.test/hook", "http://console.test/hook"),
    ],
)
def test_public_url_hides_credentials_and_query(url: str, shown: str) -> None:
    assert public_url(url) == shown


def _deliverer(app: Any) -> Any:
    return app.state.services.deliverer


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(seconds=1)

    def __call__(self) -> Any:
        return utcnow() + self.offset


@pytest.mark.anyio
async def test_a_console_that_fails_then_recovers_loses_and_duplicates_nothing(
    make_app: Any,
) -> None:
    rx = Receiver()
    rx.down = True
    app = make_app(console_webhook_url=CONSOLE, transport=rx.transport,
                   delivery_backoff_seconds=10, delivery_max_attempts=5)
    d = _deliverer(app)
    d.clock = clock = Clock()
    async with client(app) as c:
        for i in range(6):  # ingest is never blocked by the console being down
            r = await c.post("/v1/messages", json=message(f"c{i % 2}", f"m{i}", "still waiting"))
            assert r.status_code == 200
        assert await d.run_once() == 6
        assert rx.accepted == {} and len(rx.calls) == 6
        assert await d.run_once() == 0  # backing off: nothing due yet
        rx.fail_with = httpx.ConnectError("refused")  # now unreachable altogether
        clock.offset += timedelta(seconds=11)
        assert await d.run_once() == 6
        rx.fail_with, rx.down = None, False  # the console is back
        clock.offset += timedelta(seconds=25)
        assert await d.run_once() == 6
        assert await d.run_once() == 0
        metrics = (await c.get("/metrics")).text
    assert len(rx.accepted) == 6 and rx.duplicates == []
    assert sorted(p["message_id"] for p in rx.accepted.values()) == [f"m{i}" for i in range(6)]
    attempts = sorted({r.headers["X-Filterd-Attempt"] for r in rx.calls})
    assert attempts == ["1", "2", "3"]
    # one key per message, the same on every attempt
    assert len({r.headers["Idempotency-Key"] for r in rx.calls}) == 6
    assert 'filterd_delivery_attempts_total{kind="console"} 18.0' in metrics
    assert 'filterd_delivery_failures_total{kind="console"} 12.0' in metrics
    assert "filterd_outbox_depth 0.0" in metrics


@pytest.mark.anyio
async def test_dead_letters_are_listed_and_can_be_retried(make_app: Any) -> None:
    rx = Receiver()
    rx.down = True
    app = make_app(console_webhook_url="http://u:pw@console.test/hook?token=t",
                   transport=rx.transport, delivery_backoff_seconds=0, delivery_max_attempts=3)
    d = _deliverer(app)
    async with client(app) as c:
        await c.post("/v1/messages", json=message("c1", "m1", "still waiting"))
        for _ in range(3):
            assert await d.run_once() == 1
        assert await d.run_once() == 0  # dead: no longer attempted
        dead = (await c.get("/v1/deliveries/dead")).json()["deliveries"]
        assert len(dead) == 1
        assert dead[0] | {"id": 0, "next_attempt_at": 0, "created_at": 0, "updated_at": 0} == {
            "id": 0, "conversation_id": "c1", "message_id": "m1", "kind": "console",
            "url": "http://console.test/hook", "status": "dead", "attempts": 3,
            "last_error": "HTTP 503", "next_attempt_at": 0, "created_at": 0, "updated_at": 0}
        rx.down = False
        r = await c.post(f"/v1/deliveries/{dead[0]['id']}/retry")
        assert r.status_code == 202 and r.json()["status"] == "pending"
        again = await c.post(f"/v1/deliveries/{dead[0]['id']}/retry")
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        assert await d.run_once() == 1
        assert (await c.get("/v1/deliveries/dead")).json()["deliveries"] == []
        missing = await c.post("/v1/deliveries/424242/retry")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "delivery_not_found"
        assert 'filterd_dead_letters_total{kind="console"} 1.0' in (await c.get("/metrics")).text
    assert [p["message_id"] for p in rx.accepted.values()] == ["m1"]


@pytest.mark.anyio
async def test_a_claim_left_by_a_crashed_worker_is_redelivered_with_the_same_key(
    make_app: Any,
) -> None:
    rx = Receiver()
    app = make_app(console_webhook_url=CONSOLE, transport=rx.transport,
                   delivery_timeout_seconds=1)
    d = _deliverer(app)
    d.clock = clock = Clock()
    store = app.state.services.store
    async with client(app) as c:
        await c.post("/v1/messages", json=message("c1", "m1", "still waiting"))
        [claimed] = store.claim_deliveries(clock(), 10, 31)  # a worker claims, then dies
        assert await d.run_once() == 0
        clock.offset += timedelta(seconds=32)
        assert await d.run_once() == 1
    assert [r.headers["Idempotency-Key"] for r in rx.calls] == [claimed.idempotency_key]


@pytest.mark.anyio
async def test_the_background_worker_delivers_on_its_own(make_app: Any) -> None:
    rx = Receiver()
    app = make_app(console_webhook_url=CONSOLE, transport=rx.transport, delivery_worker=True,
                   delivery_poll_seconds=5)
    async with client(app) as c:
        await c.post("/v1/messages", json=message("c1", "m1", "still waiting"))
        for _ in range(200):  # woken by the commit, well before the 5 s poll
            if rx.accepted:
                break
            await asyncio.sleep(0.01)
    assert [p["message_id"] for p in rx.accepted.values()] == ["m1"]
