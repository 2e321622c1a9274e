"""Limits through the HTTP API: body size (413), rate limits (429), overload (503), and a
failing or hung model (200, degraded), each visible in /metrics; never a traceback."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import anyio
import httpx
import pytest

from filterd.classify.fake import BlockingClassifier, FailingClassifier, KeywordClassifier
from filterd.config import load_settings
from filterd.errors import OverloadedError
from filterd.pipeline import Filter
from filterd.types import ModelOutput
from tests.service import client, message

pytestmark = pytest.mark.anyio


def metric(text: str, name: str) -> float:
    """The value of one sample line (``name`` includes its labels) in an exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def assert_clean(r: httpx.Response) -> None:
    """An error body says what to do and never carries a traceback."""
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert r.headers["content-type"].startswith("application/json")


@pytest.fixture
def blocking() -> Iterator[BlockingClassifier]:
    clf = BlockingClassifier()
    yield clf
    clf.release()


# ------------------------------------------------------------------ body size


async def test_a_body_over_the_limit_is_refused_before_it_is_parsed(make_app: Any) -> None:
    app = make_app(max_body_bytes=1_000)
    async with client(app) as c:
        # Not even JSON: a 400 would mean it was parsed first.
        r = await c.post("/v1/messages", content=b"{" * 5_000,
                         headers={"content-type": "application/json"})
        ok = await c.post("/v1/messages", json=message("c1", "m1", "hello"))
        m = (await c.get("/metrics")).text
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "too_large"
    assert "1,000 bytes" in r.json()["error"]["message"]
    assert "FILTERD_MAX_BODY_BYTES" in r.json()["error"]["message"]
    assert_clean(r)
    assert ok.status_code == 200
    assert metric(m, 'filterd_rejected_requests_total{reason="body_too_large"}') == 1


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/c1/m1/feedback"])
async def test_a_streamed_body_without_length_is_cut_at_the_limit(make_app: Any,
                                                                  path: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    app = make_app(max_body_bytes=1_000)
    async with client(app) as c:
        r = await c.post(path, content=chunks(), headers={"content-type": "application/json"})
        m = (await c.get("/metrics")).text
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert "FILTERD_MAX_BODY_BYTES" in r.json()["error"]["message"]
    assert_clean(r)
    assert metric(m, 'filterd_rejected_requests_total{reason="body_too_large"}') == 1


def test_the_default_body_limit_fits_a_full_batch_of_max_size_texts() -> None:
    s = load_settings()
    text = "界" * (s.max_message_bytes // 3)  # 3 bytes of UTF-8; \uXXXX in ASCII JSON
    body = json.dumps({"messages": [message(f"conversation-{n:04}", f"message-{n:04}", text,
                                            metadata={"ticket": "T-123456", "lang": "ja"})
                                    for n in range(s.batch_max_messages)]})
    assert len(body.encode()) <= s.body_limit
    assert load_settings(max_body_bytes=5).body_limit == 5


# ------------------------------------------------------------------ rate limits


async def test_a_key_over_its_rate_gets_429_with_retry_after(make_app: Any) -> None:
    app = make_app(rate_key_per_second=1, rate_key_burst=3, rate_conversation_per_second=0)
    async with client(app) as c:
        codes = [(await c.post("/v1/messages", json=message(f"c{n}", "m", "hi"))).status_code
                 for n in range(3)]
        r = await c.post("/v1/messages", json=message("c9", "m", "hi"))
        stored = await c.get("/v1/conversations/c9")
        m = (await c.get("/metrics")).text
    assert codes == [200, 200, 200]
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert "FILTERD_RATE_KEY_PER_SECOND" in r.json()["error"]["message"]
    # the 3-second window holding the burst ends, then its count fades by one message's share
    # (a third of the next window): at most 3 + 1 s away, and never "now"
    assert 1 <= int(r.headers["retry-after"]) <= 4
    assert_clean(r)
    assert stored.status_code == 404  # a refused message is not stored
    assert metric(m, 'filterd_rejected_requests_total{reason="rate_limited_key"}') == 1


async def test_a_flooding_conversation_is_limited_and_others_are_not(make_app: Any) -> None:
    app = make_app(rate_conversation_per_second=1, rate_conversation_burst=2)
    async with client(app) as c:
        first = [(await c.post("/v1/messages", json=message("c1", f"m{n}", "hi"))).status_code
                 for n in range(2)]
        flood = await c.post("/v1/messages", json=message("c1", "m9", "hi"))
        other = await c.post("/v1/messages", json=message("c2", "m1", "hi"))
        m = (await c.get("/metrics")).text
    assert first == [200, 200]
    assert flood.status_code == 429, flood.text
    assert "'c1'" in flood.json()["error"]["message"]
    assert 1 <= int(flood.headers["retry-after"]) <= 3  # 2 s window + half the next
    assert other.status_code == 200
    assert metric(m, 'filterd_rejected_requests_total{reason="rate_limited_conversation"}') == 1
    assert metric(m, 'filterd_rejected_requests_total{reason="rate_limited_key"}') == 0


async def test_a_batch_counts_each_message(make_app: Any) -> None:
    app = make_app(rate_key_per_second=1, rate_key_burst=5, rate_conversation_burst=100)
    async with client(app) as c:
        ok = await c.post("/v1/messages:batch", json={
            "messages": [message(f"c{n}", "m", "hi") for n in range(4)]})
        over = await c.post("/v1/messages:batch", json={
            "messages": [message(f"d{n}", "m", "hi") for n in range(2)]})
        one = await c.post("/v1/messages", json=message("e", "m", "hi"))
    assert ok.status_code == 200
    assert over.status_code == 429, over.text  # 4 + 2 > 5: nothing of it is counted
    assert one.status_code == 200  # 4 + 1 = 5


async def test_a_batch_larger_than_the_conversation_burst_passes_on_an_idle_conversation(
        make_app: Any) -> None:
    app = make_app(rate_conversation_per_second=1, rate_conversation_burst=3)
    async with client(app) as c:
        history = await c.post("/v1/messages:batch", json={
            "messages": [message("c1", f"m{n}", "hi") for n in range(10)]})
        more = await c.post("/v1/messages", json=message("c1", "m99", "hi"))
    assert history.status_code == 200 and len(history.json()["results"]) == 10
    assert more.status_code == 429


async def test_other_v1_routes_have_their_own_per_key_limit(make_app: Any) -> None:
    app = make_app(rate_api_per_second=1, rate_api_burst=2)
    async with client(app) as c:
        reads = [(await c.get("/v1/conversations")).status_code for _ in range(3)]
        ingest = await c.post("/v1/messages", json=message("c1", "m1", "hi"))
        health = await c.get("/healthz")
    assert reads == [200, 200, 429]
    assert ingest.status_code == 200 and health.status_code == 200


async def test_zero_switches_the_rate_limits_off(make_app: Any) -> None:
    app = make_app(rate_key_per_second=0, rate_conversation_per_second=0, rate_key_burst=1,
                   rate_conversation_burst=1)
    async with client(app) as c:
        codes = {(await c.post("/v1/messages", json=message("c1", f"m{n}", "hi"))).status_code
                 for n in range(5)}
    assert codes == {200}


# ------------------------------------------------------------------ overload


async def test_overload_answers_503_at_once_instead_of_queueing(
        make_app: Any, blocking: BlockingClassifier) -> None:
    # No model budget: the first request holds its in-flight slot until the model returns.
    f = Filter(load_settings(model_timeout_ms=0), classifier=blocking)
    app = make_app(filter=f, max_inflight=1, admission_wait_ms=20)
    async with client(app) as c:
        first: list[httpx.Response] = []
        async with anyio.create_task_group() as tg:
            async def hold() -> None:
                first.append(await c.post("/v1/messages", json=message("c1", "m1", "hi")))

            tg.start_soon(hold)
            with anyio.fail_after(10):
                while blocking.started == 0:
                    await anyio.sleep(0.005)
            m_during = (await c.get("/metrics")).text
            t0 = time.monotonic()
            shed = await c.post("/v1/messages", json=message("c2", "m1", "hi"))
            waited = time.monotonic() - t0
            reads = await c.get("/v1/conversations")  # not an ingest route: not admitted
            blocking.release()
        m_after = (await c.get("/metrics")).text
    assert shed.status_code == 503, shed.text
    assert shed.json()["error"]["code"] == "overloaded"
    assert shed.headers["retry-after"] == "1"
    assert "FILTERD_MAX_INFLIGHT" in shed.json()["error"]["message"]
    assert_clean(shed)
    assert waited < 5  # answered, not queued behind the stuck request
    assert reads.status_code == 200
    assert first[0].status_code == 200
    assert metric(m_during, "filterd_inflight_requests") == 1
    assert metric(m_after, "filterd_inflight_requests") == 0
    assert metric(m_after, 'filterd_rejected_requests_total{reason="overloaded"}') == 1


# ------------------------------------------------------------------ model failure


async def test_a_failing_model_still_stores_a_masked_degraded_message(make_app: Any) -> None:
    f = Filter(load_settings(breaker_failures=2), classifier=FailingClassifier())
    app = make_app(filter=f)
    async with client(app) as c:
        rs = [await c.post("/v1/messages", json=message("c1", f"m{n}", "you fucking idiot"))
              for n in range(3)]
        stored = await c.get("/v1/conversations/c1")
        m = (await c.get("/metrics")).text
    for r in rs:
        assert r.status_code == 200, r.text
        assert_clean(r)
        v = r.json()
        assert v["degraded"] is True and "fucking" not in v["text_masked"]
    assert stored.status_code == 200
    assert "fucking" not in stored.text and "idiot" not in stored.text
    assert metric(m, "filterd_degraded_messages_total") == 3
    assert metric(m, 'filterd_model_failures_total{reason="error"}') == 2
    assert metric(m, 'filterd_model_failures_total{reason="circuit_open"}') == 1
    assert metric(m, "filterd_model_circuit_state") == 2  # open


async def test_a_hung_model_times_out_and_the_message_is_accepted(
        make_app: Any, blocking: BlockingClassifier) -> None:
    f = Filter(load_settings(model_timeout_ms=50, model_timeout_per_text_ms=0,
                             degraded_policy="closed"), classifier=blocking)
    app = make_app(filter=f)
    async with client(app) as c:
        r = await c.post("/v1/messages", json=message("c1", "m1", "where is my parcel"))
        m = (await c.get("/metrics")).text
    assert r.status_code == 200, r.text
    assert r.json()["degraded"] is True
    assert r.json()["route"]["queue"] == "degraded"  # fail-closed: a human reads it
    assert metric(m, 'filterd_model_failures_total{reason="timeout"}') == 1
    assert metric(m, "filterd_model_circuit_state") == 0


async def test_a_full_model_queue_is_overload_not_a_degraded_message(make_app: Any) -> None:
    class FullQueue(KeywordClassifier):  # what the micro-batcher raises when its queue is full
        def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
            raise OverloadedError("The model queue is full; retry shortly.", retry_after=2.0)

    app = make_app(filter=Filter(load_settings(), classifier=FullQueue()))
    async with client(app) as c:
        r = await c.post("/v1/messages", json=message("c1", "m1", "hello"))
        stored = await c.get("/v1/conversations/c1")
        m = (await c.get("/metrics")).text
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "overloaded" and r.headers["retry-after"] == "2"
    assert_clean(r)
    assert stored.status_code == 404
    assert metric(m, 'filterd_model_failures_total{reason="busy"}') == 1
    assert metric(m, "filterd_model_circuit_state") == 0


def test_idle_conversations_are_forgotten() -> None:
    """Per-conversation limits must not keep one entry per conversation ever seen: a
    proxy sees millions. (limits' moving window did: its memory only grew.) Expiry happens
    inline on a later request, no timer thread."""
    import threading
    import time
    from collections import Counter

    from filterd.api.limits import RateLimits
    from filterd.config import load_settings
    from filterd.metrics import Metrics

    rl = RateLimits(load_settings(rate_conversation_per_second=20, rate_conversation_burst=20,
                                  rate_key_per_second=0), Metrics())
    for n in range(3000):
        rl.check_ingest("key-1", "default", 1, Counter({f"c{n}": 1}))
    held = len(rl.windows)
    assert held >= 3000  # it does count them while their window is open
    threads = threading.active_count()
    time.sleep(2.1)  # the 1 s window and the previous one it weighs are over
    rl.check_ingest("key-1", "default", 1, Counter({"fresh": 1}))  # sweeps, inline
    assert len(rl.windows) < 10, len(rl.windows)
    assert threading.active_count() == threads  # nothing started a thread
