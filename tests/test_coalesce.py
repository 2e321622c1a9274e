"""Group commit (filterd/coalesce.py): concurrent single messages share ingest passes and
each caller still gets exactly its own outcome."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from filterd.coalesce import IngestCoalescer
from filterd.config import load_settings
from filterd.errors import (
    InputError,
    OverloadedError,
    StoreError,
    TextTooLongError,
    UnavailableError,
)
from filterd.ingest import Incoming, Ingestor, Outcome
from filterd.metrics import Metrics
from filterd.pipeline import Filter
from filterd.store.base import ConversationWrite, StoredMessage
from filterd.store.sql import SqlStore
from tests.service import client, message

T = "default"


class GatedStore(SqlStore):
    """A real SQLite store whose duplicate check can be held (to fill the queue) and whose
    writes can be made to fail (a database outage)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_writes = False

    def find_messages(self, tenant: str, keys: Sequence[tuple[str, str]]
                      ) -> dict[tuple[str, str], StoredMessage]:
        self.entered.set()
        self.gate.wait(10)
        return super().find_messages(tenant, keys)

    def write_many(self, tenant: str, writes: Sequence[ConversationWrite]
                   ) -> list[list[StoredMessage]]:  # write() goes through here too
        if self.fail_writes:
            raise StoreError("The database cannot be written (test outage).")
        return super().write_many(tenant, writes)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GatedStore]:
    s = GatedStore(f"sqlite:///{tmp_path}/c.db")
    s.upgrade()
    yield s
    s.gate.set()
    s.close()


def _coalescer(store: SqlStore, keyword_filter: Filter, **kw: object) -> IngestCoalescer:
    ingestor = Ingestor(keyword_filter, store, load_settings(), Metrics())
    return IngestCoalescer(ingestor, **kw)  # type: ignore[arg-type]


def _item(cid: str, mid: str, text: str = "hello there", role: str = "customer") -> Incoming:
    return Incoming(cid, mid, "chat", role, "u1", text)  # type: ignore[arg-type]


def test_one_pass_serves_many_conversations_in_order(store: GatedStore,
                                                     keyword_filter: Filter) -> None:
    co = _coalescer(store, keyword_filter, max_items=64, wait_ms=300)
    try:
        # submitted from one thread, in order: 3 conversations x 5 messages, every other
        # message of conversation c0 abusive
        futures: list[tuple[Incoming, Future[Outcome]]] = []
        for k in range(5):
            for c in range(3):
                text = "you idiot" if c == 0 and k % 2 == 0 else f"message {k}"
                item = _item(f"c{c}", f"m{k}", text)
                futures.append((item, co.submit(item, T)))
        outcomes = [(item, f.result(10)) for item, f in futures]
    finally:
        co.close()
    assert co.stats.passes == 1 and co.stats.messages == 15  # all in one shared pass
    for item, o in outcomes:
        assert (o.message.conversation_id, o.message.message_id) == item.key
        assert not o.replayed
    for c in range(3):
        seqs = [o.message.seq for item, o in outcomes if item.conversation_id == f"c{c}"]
        assert seqs == sorted(seqs) and seqs == list(range(seqs[0], seqs[0] + 5))
        strikes = [o.message.state_after.strikes for item, o in outcomes
                   if item.conversation_id == f"c{c}"]
        assert strikes == ([1, 1, 2, 2, 3] if c == 0 else [0] * 5)
    t = store.transcript(T, "c0")
    assert [m.message_id for m in t.messages] == [f"m{k}" for k in range(5)]
    assert t.messages[-1].state_after.strikes == 3


def test_concurrent_submitters_lose_nothing(store: GatedStore, keyword_filter: Filter) -> None:
    co = _coalescer(store, keyword_filter, max_items=16, wait_ms=1, threads=2)

    def send(worker: int) -> list[Outcome]:
        out = []
        for k in range(10):  # each worker sends its conversations' messages in order
            cid = f"c{worker % 3}"
            out.append(co.ingest(_item(cid, f"w{worker}-m{k}", "you moron"), T))
        return out

    try:
        with ThreadPoolExecutor(8) as pool:
            results = [o for r in pool.map(send, range(8)) for o in r]
    finally:
        co.close()
    assert len(results) == 80 and not any(o.replayed for o in results)
    total = 0
    for c in range(3):
        t = store.transcript(T, f"c{c}")
        n = len(t.messages)
        total += n
        assert [m.seq for m in t.messages] == list(range(t.messages[0].seq,
                                                          t.messages[0].seq + n))
        assert t.messages[-1].state_after.strikes == n  # every abusive message counted once
        by_worker: dict[str, list[int]] = {}
        for m in t.messages:  # each sender's messages in the order it sent them
            w, k = m.message_id.split("-m")
            by_worker.setdefault(w, []).append(int(k))
        assert all(ks == sorted(ks) for ks in by_worker.values())
    assert total == 80
    assert co.stats.passes < 80  # some passes were shared


def test_duplicates_in_a_pass_replay_the_first(store: GatedStore,
                                               keyword_filter: Filter) -> None:
    co = _coalescer(store, keyword_filter, wait_ms=300, max_items=3)
    try:
        futures = [co.submit(_item("c1", "m1", "you idiot"), T) for _ in range(3)]
        outcomes = [f.result(10) for f in futures]
        again = co.ingest(_item("c1", "m1", "you idiot"), T)  # a later retry: from the store
    finally:
        co.close()
    assert [o.replayed for o in outcomes] == [False, True, True]
    assert again.replayed
    assert {o.message.pk for o in [*outcomes, again]} == {outcomes[0].message.pk}
    assert store.transcript(T, "c1").messages[-1].state_after.strikes == 1


def test_an_invalid_message_is_refused_alone(store: GatedStore, keyword_filter: Filter) -> None:
    co = _coalescer(store, keyword_filter, wait_ms=200, max_items=2)
    try:
        good = co.submit(_item("c1", "m1"), T)
        with pytest.raises(InputError):
            co.submit(_item("c1", "m2", "   "), T)  # blank: refused before queueing
        with pytest.raises(TextTooLongError):
            co.submit(_item("c1", "m3", "x" * 1_000_000), T)
        good2 = co.submit(_item("c2", "m1"), T)
        assert not good.result(10).replayed and not good2.result(10).replayed
    finally:
        co.close()
    assert co.stats.messages == 2
    assert [m.message_id for m in store.transcript(T, "c1").messages] == ["m1"]


def test_a_store_failure_reaches_every_waiter_of_the_pass(store: GatedStore,
                                                          keyword_filter: Filter) -> None:
    co = _coalescer(store, keyword_filter, wait_ms=300, max_items=4)
    try:
        store.fail_writes = True
        futures = [co.submit(_item(f"c{n}", "m1"), T) for n in range(4)]
        for f in futures:
            with pytest.raises(StoreError):
                f.result(10)
        store.fail_writes = False  # the outage is over: the retries store them
        retried = [co.ingest(_item(f"c{n}", "m1"), T) for n in range(4)]
    finally:
        co.close()
    assert not any(o.replayed for o in retried)


def test_a_full_queue_refuses_at_once(store: GatedStore, keyword_filter: Filter) -> None:
    co = _coalescer(store, keyword_filter, queue_items=2, max_items=1)
    store.gate.clear()
    try:
        first = co.submit(_item("c1", "m1"), T)
        assert store.entered.wait(10)  # the thread holds the first, inside its pass
        queued = [co.submit(_item("c1", f"m{n}"), T) for n in (2, 3)]
        with pytest.raises(OverloadedError) as e:
            co.submit(_item("c1", "m4"), T)
        assert e.value.retry_after > 0 and co.stats.overloaded == 1
        store.gate.set()
        assert [f.result(10).message.message_id for f in [first, *queued]] == ["m1", "m2", "m3"]
    finally:
        store.gate.set()
        co.close()


def test_close_drains_the_queue_then_refuses(store: GatedStore, keyword_filter: Filter) -> None:
    co = _coalescer(store, keyword_filter, max_items=1)
    store.gate.clear()
    futures = [co.submit(_item("c1", f"m{n}"), T) for n in range(5)]
    assert store.entered.wait(10)
    closer = threading.Thread(target=co.close)
    closer.start()
    store.gate.set()
    closer.join(10)
    assert not co.running
    assert [f.result(0).message.seq for f in futures] == [1, 2, 3, 4, 5]
    with pytest.raises(UnavailableError):
        co.submit(_item("c1", "m9"), T)


# ------------------------------------------------------------------ through the API


@pytest.mark.anyio
@pytest.mark.parametrize("await_on_loop", [True, False])
async def test_api_coalesces_concurrent_requests(make_app, await_on_loop: bool) -> None:  # type: ignore[no-untyped-def]
    import anyio

    app = make_app(coalesce=True, coalesce_wait_ms=20, coalesce_await=await_on_loop)
    got: dict[str, tuple[int, dict]] = {}  # type: ignore[type-arg]

    async with client(app) as c:
        async def send(n: int) -> None:
            r = await c.post("/v1/messages", json=message(f"c{n % 2}", f"m{n}", "you idiot"))
            got[f"m{n}"] = (r.status_code, r.json())

        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(send, n)
        dup = await c.post("/v1/messages", json=message("c0", "m0", "you idiot"))
        bad = await c.post("/v1/messages", json=message("c0", "m99", " "))
    assert all(code == 200 for code, _ in got.values())
    for cid in ("c0", "c1"):
        strikes = sorted(b["conversation"]["strikes"] for _, b in got.values()
                         if b["conversation"]["id"] == cid)
        assert strikes == [1, 2, 3, 4, 5]  # each message counted once, in some order
    assert dup.status_code == 200 and dup.headers["Idempotent-Replayed"] == "true"
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
    assert app.state.coalescer.stats.passes < 10


@pytest.mark.anyio
async def test_api_full_queue_is_503(tmp_path: Path, make_app) -> None:  # type: ignore[no-untyped-def]
    import anyio

    store = GatedStore(f"sqlite:///{tmp_path}/g.db")
    app = make_app(store=store, coalesce=True, coalesce_queue=1, coalesce_max=1)
    try:
        async with client(app) as c:
            store.gate.clear()
            statuses: list[int] = []

            async def send(n: int) -> None:
                r = await c.post("/v1/messages", json=message("c1", f"m{n}", "hi"))
                statuses.append(r.status_code)
                if r.status_code == 503:
                    assert r.headers["Retry-After"]
                    assert r.json()["error"]["code"] == "overloaded"

            async with anyio.create_task_group() as tg:
                tg.start_soon(send, 0)
                await anyio.to_thread.run_sync(store.entered.wait, 10)
                tg.start_soon(send, 1)  # queued behind the held pass
                await anyio.sleep(0.1)
                tg.start_soon(send, 2)  # the queue is full
                await anyio.sleep(0.2)
                store.gate.set()
        assert sorted(statuses) == [200, 200, 503]
    finally:
        store.gate.set()
        store.close()


def test_a_cancelled_caller_is_dropped_and_others_served(store: GatedStore,
                                                         keyword_filter: Filter) -> None:
    co = _coalescer(store, keyword_filter, max_items=1)
    store.gate.clear()
    try:
        first = co.submit(_item("c1", "m1"), T)
        assert store.entered.wait(10)
        gone = co.submit(_item("c1", "m2"), T)
        kept = co.submit(_item("c1", "m3"), T)
        assert gone.cancel()  # e.g. the client disconnected while it was queued
        store.gate.set()
        assert [first.result(10).message.seq, kept.result(10).message.seq] == [1, 2]
        assert co.running
    finally:
        store.gate.set()
        co.close()
    assert [m.message_id for m in store.transcript(T, "c1").messages] == ["m1", "m3"]


@pytest.mark.anyio
async def test_the_app_takes_messages_again_when_its_lifespan_runs_again(make_app) -> None:  # type: ignore[no-untyped-def]
    """Closing at shut-down must not leave a restarted app answering 503 for ever."""
    app = make_app(coalesce=True)
    for n in range(2):
        async with client(app) as c:
            r = await c.post("/v1/messages", json=message("c1", f"m{n}", "hello"))
            assert r.status_code == 200, r.text
    assert app.state.coalescer is not None and not app.state.coalescer.running
