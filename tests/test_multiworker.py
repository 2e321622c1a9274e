"""Several workers and several instances on one PostgreSQL database.

(a) ``filterd serve --workers 2`` (one host, Prometheus multiprocess mode) and (b) two
separate ``filterd serve`` processes (two hosts behind a load balancer) take concurrent
messages of the same few conversations. Whatever the interleaving, each conversation must
end as if its messages had been judged one after the other in the order the store gave
them (seq): every message judged against the state its predecessor left, no lost strike,
no gap in seq. /metrics must count every message once across workers, and one
``GET /v1/events`` stream must carry every message once, whichever worker stored it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from filterd.pipeline import Filter
from filterd.route.conversation import ConversationState
from tests.procs import Load, Service, metric_sum, send, service_env, wait_for
from tests.service import message

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="runs PostgreSQL and process trees")

TEXTS = (
    "you are an idiot",
    "I am still waiting for my refund, this is ridiculous",
    "hello, my parcel has not arrived yet",
    "you stupid moron",
    "This is the third time I am asking, unacceptable",
    "thanks, that worked",
    "the app crashed again",
)
CONVERSATIONS = 4
PER_CONVERSATION = 50
# The test sends each conversation's messages as fast as it can; the per-conversation rate
# limit (a per-process guard, tested elsewhere) would only add 429s to retry.
_NO_CONVERSATION_RATE = {"FILTERD_RATE_CONVERSATION_PER_SECOND": "0"}


def _workload(prefix: str) -> list[tuple[str, Any]]:
    """Message k of every conversation before message k+1 of any: concurrent requests of
    one conversation are always in flight together."""
    return [("/v1/messages", message(f"{prefix}-c{c}", f"m{k:03d}",
                                     TEXTS[(k * 3 + c) % len(TEXTS)]))
            for k in range(PER_CONVERSATION) for c in range(CONVERSATIONS)]


def _run_load(base_urls: Sequence[str], requests: list[tuple[str, Any]]) -> dict[str, Any]:
    """Send everything from 8 threads, a new connection per request (so the kernel spreads
    them over the workers); retry the few ``409 conflict`` answers, as the API asks."""
    load = Load(base_urls, requests, concurrency=8, keepalive=False).run()
    conflicts = 0
    answers: dict[str, Any] = {}
    with httpx.Client(timeout=30) as c:
        for (path, body), r in zip(requests, load.results, strict=True):
            assert r is not None
            while r.status == 409:
                conflicts += 1
                r = send(c, base_urls[0] + path, body)
            assert r.ok, (r.status, r.body)
            answers[f"{body['conversation_id']}/{body['message_id']}"] = r.body
    print(f"\n{len(requests)} messages, {conflicts} answered 409 and retried")
    return answers


def _check_conversations(base_url: str, requests: list[tuple[str, Any]],
                         answers: dict[str, Any], judge: Filter) -> None:
    texts = {(b["conversation_id"], b["message_id"]): b["text"] for _, b in requests}
    with httpx.Client(base_url=base_url, timeout=30) as c:
        for cid in sorted({cid for cid, _ in texts}):
            t = c.get(f"/v1/conversations/{cid}").json()
            seqs = [m["seq"] for m in t["transcript"]]
            ids = [m["message_id"] for m in t["transcript"]]
            assert seqs == list(range(1, PER_CONVERSATION + 1)), f"{cid}: seq {seqs}"
            assert sorted(ids) == sorted(m for c_, m in texts if c_ == cid)
            assert t["messages"] == PER_CONVERSATION
            # Replay in the store's order: each message's answered state must be exactly
            # the state a serial judge reaches at that point (no message judged against a
            # stale state, whatever the arrival order was).
            state = ConversationState()
            abusive = 0
            for mid in ids:
                j = judge.judge([texts[cid, mid]], [mid], [state])[0]
                state = j.state
                abusive += j.verdict.category == "abusive"
                got = answers[f"{cid}/{mid}"]["conversation"]
                assert got["strikes"] == state.strikes, (cid, mid)
                assert got["customer_messages"] == state.customer_messages, (cid, mid)
                assert got["escalated"] == state.escalated, (cid, mid)
                assert got["frustration"] == pytest.approx(state.frustration, abs=1e-3)
            final = t["state"]
            assert final["customer_messages"] == PER_CONVERSATION
            assert final["strikes"] == abusive > 0  # one strike per abusive message, exactly
            assert final["frustration"] == pytest.approx(state.frustration, abs=1e-3)
            assert final["escalated"] == state.escalated


class _Listener:
    """One ``GET /v1/events`` connection, in a thread, for ``n`` events: whichever worker or
    instance it lands on, it must get every message stored by any of them, once each."""

    def __init__(self, base_url: str, n: int) -> None:
        self.url, self.n = base_url + "/v1/events", n
        self.got: list[str] = []  # conversation/message of each event, in arrival order
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def start(self) -> _Listener:
        self.thread.start()
        assert self.connected.wait(30), "the event stream did not connect"
        return self

    def _listen(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(60, connect=10)) as c, \
                c.stream("GET", self.url, params={"max_events": self.n}) as r:
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("data:"):
                    event = json.loads(line[5:])
                    self.got.append(f"{event['conversation_id']}/"
                                    f"{event['message']['message_id']}")

    def check(self, requests: list[tuple[str, Any]]) -> None:
        self.thread.join(30)
        want = sorted(f"{b['conversation_id']}/{b['message_id']}" for _, b in requests)
        assert len(self.got) == len(set(self.got)), "an event came twice"
        assert sorted(self.got) == want, f"{len(self.got)} of {len(want)} events"


def _expected_strikes(requests: list[tuple[str, Any]], judge: Filter) -> int:
    return sum(judge.check(b["text"]).category == "abusive" for _, b in requests)


def _per_process_messages(prom_dir: Path) -> dict[int, float]:
    """filterd_messages_total per worker, read from each worker's own multiprocess file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    out = {}
    for f in prom_dir.glob("counter_*.db"):
        metrics = MultiProcessCollector.merge([str(f)], accumulate=True)  # type: ignore[no-untyped-call]
        out[int(f.stem.split("_")[1])] = sum(
            s.value for m in metrics for s in m.samples if s.name == "filterd_messages_total")
    return out


@pytest.mark.slow
def test_two_workers_share_conversations_and_metrics(tmp_path: Path, pg_url: str,
                                                     real_filter: Filter) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    # the README's recipe: migrate once, then start the workers without migrating
    subprocess.run([sys.executable, "-m", "filterd.cli", "db", "upgrade"], check=True,
                   env=service_env(FILTERD_DATABASE_URL=pg_url), capture_output=True,
                   timeout=120)
    env = service_env(FILTERD_DATABASE_URL=pg_url, PROMETHEUS_MULTIPROC_DIR=str(prom),
                      FILTERD_MIGRATE_ON_START="false", **_NO_CONVERSATION_RATE)
    requests = _workload("w")
    with Service(tmp_path, env, "--workers", "2").start() as srv:
        # both workers built their app (each writes its own counter file at start-up)
        assert wait_for(lambda: len(list(prom.glob("counter_*.db"))) == 2, timeout=60), \
            srv.output
        listener = _Listener(srv.base_url, len(requests)).start()  # on one of the workers
        answers = _run_load([srv.base_url], requests)
        listener.check(requests)
        per_worker = _per_process_messages(prom)
        assert len(per_worker) == 2 and all(n > 0 for n in per_worker.values()), per_worker
        assert sum(per_worker.values()) == len(requests)
        strikes = _expected_strikes(requests, real_filter)
        with srv.client() as c:
            for _ in range(4):  # whichever worker answers the scrape, it sums both
                text = c.get("/metrics").text
                assert metric_sum(text, "filterd_messages_total") == len(requests)
                assert metric_sum(text, "filterd_strikes_total") == strikes
        _check_conversations(srv.base_url, requests, answers, real_filter)
        assert srv.stop() == 0, srv.output
    assert "Traceback" not in srv.output, srv.output
    print(f"messages per worker: {sorted(per_worker.values())}")


@pytest.mark.slow
def test_two_instances_share_one_postgresql(tmp_path: Path, pg_url: str,
                                            real_filter: Filter) -> None:
    # both migrate on start: one takes the advisory lock, the other waits
    env = service_env(FILTERD_DATABASE_URL=pg_url, **_NO_CONVERSATION_RATE)
    a, b = Service(tmp_path, env), Service(tmp_path, env)
    requests = _workload("i")
    with a, b:
        a.start(ready_timeout=None)
        b.start(ready_timeout=None)
        a.wait_ready(90)
        b.wait_ready(90)
        listener = _Listener(a.base_url, len(requests)).start()
        t0 = time.monotonic()
        answers = _run_load([a.base_url, b.base_url], requests)
        elapsed = time.monotonic() - t0
        listener.check(requests)  # half of them stored by b
        with a.client() as ca, b.client() as cb:
            counts = [metric_sum(c.get("/metrics").text, "filterd_messages_total")
                      for c in (ca, cb)]
        # each instance counts what it stored; Prometheus sums the instances
        assert all(n > 0 for n in counts) and sum(counts) == len(requests), counts
        _check_conversations(a.base_url, requests, answers, real_filter)
        _check_conversations(b.base_url, requests, answers, real_filter)
        assert a.stop() == 0 and b.stop() == 0, a.output + b.output
    assert "Traceback" not in a.output + b.output, a.output + b.output
    print(f"messages per instance: {counts} in {elapsed:.1f} s")
