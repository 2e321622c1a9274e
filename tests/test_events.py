"""``GET /v1/events`` across workers: every stream follows the shared store, so it sees the
messages of its tenant whichever app (worker, instance) stored them, once each, and a
reconnect with ``Last-Event-ID`` replays what it missed. Two apps on one database stand for
two workers; the real ``--workers 2`` case is in tests/test_multiworker.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from filterd.errors import StoreError
from filterd.ingest import Incoming
from filterd.store.base import utcnow
from tests.service import bearer, client, issue_keys, message

pytestmark = pytest.mark.anyio

POLL = 0.05  # FILTERD_EVENTS_POLL_SECONDS in these tests


def _events(body: str) -> list[tuple[int | None, dict[str, Any]]]:
    """(id, data) of each ``message`` event of an SSE body."""
    out = []
    for block in body.split("\n\n"):
        lines = block.splitlines()
        data = [x[5:].strip() for x in lines if x.startswith("data:")]
        if not data:
            continue
        ids = [int(x[3:].strip()) for x in lines if x.startswith("id:")]
        out.append((ids[0] if ids else None, json.loads("\n".join(data))))
    return out


def _mids(body: str) -> list[str]:
    return [e["message"]["message_id"] for _, e in _events(body)]


async def _stream(c: httpx.AsyncClient, app: Any, n: int, headers: dict[str, str] | None = None
                  ) -> asyncio.Task[str]:
    """A stream of ``n`` events, once it is live (everything committed from then on comes)."""
    events = app.state.services.events
    before = events.subscribers

    async def listen() -> str:
        r = await c.get("/v1/events", params={"max_events": n}, headers=headers or {})
        assert r.status_code == 200, r.text
        return r.text

    task = asyncio.create_task(listen())
    for _ in range(1000):
        if events.subscribers > before or task.done():
            break
        await asyncio.sleep(0.005)
    assert events.subscribers > before, "the stream never subscribed"
    return task


@contextlib.asynccontextmanager
async def _two_workers(make_app: Any, **settings: Any
                       ) -> AsyncIterator[tuple[Any, Any, httpx.AsyncClient, httpx.AsyncClient]]:
    """Two apps on the same database, as two workers of one ``filterd serve``."""
    settings.setdefault("events_poll_seconds", POLL)
    a, b = make_app(**settings), make_app(**settings)
    async with client(a) as ca, client(b) as cb:
        yield a, b, ca, cb


async def test_a_stream_gets_what_another_worker_stored_once_in_its_tenant(
        make_app: Any, db_url: str) -> None:
    async with _two_workers(make_app, database_url=db_url) as (a, b, ca, cb):
        acme = issue_keys(a, "agent", "ingest", tenant="acme")
        globex = issue_keys(a, "agent", "ingest", tenant="globex")
        stream_acme = await _stream(ca, a, 3, bearer(acme["agent"]))
        stream_globex = await _stream(ca, a, 1, bearer(globex["agent"]))
        for cid, mid, key in (("c1", "m1", acme), ("c1", "m1", globex), ("c2", "m2", acme)):
            r = await cb.post("/v1/messages", json=message(cid, mid, f"hello {mid}"),
                              headers=bearer(key["ingest"]))  # stored by the other worker
            assert r.status_code == 200, r.text
        await asyncio.sleep(6 * POLL)  # a duplicate of m1 or m2 would be sent by now...
        r = await ca.post("/v1/messages", json=message("c3", "m3", "and one here"),
                          headers=bearer(acme["ingest"]))  # ...before this one
        assert r.status_code == 200
        body_acme, body_globex = await asyncio.wait_for(
            asyncio.gather(stream_acme, stream_globex), 10)
    got = _events(body_acme)
    assert [(e["conversation_id"], e["message"]["message_id"]) for _, e in got] == [
        ("c1", "m1"), ("c2", "m2"), ("c3", "m3")]
    ids = [i or 0 for i, _ in got]
    assert all(ids) and ids == sorted(ids)  # SSE ids: the message pks, in order
    assert got[0][1]["message"]["text_masked"] == "hello m1"
    assert [(e["conversation_id"], e["message"]["message_id"])
            for _, e in _events(body_globex)] == [("c1", "m1")]
    assert "hello m2" not in body_globex and "m3" not in body_globex


async def test_a_message_committed_after_a_later_one_still_reaches_the_stream(
        make_app: Any, pg_url: str) -> None:
    """PostgreSQL hands out pks at insert: the transaction holding the lower pk can commit
    last. Hold one write at its outbox insert (after its message insert) while another
    commits; the stream must get both, the late one too."""
    import psycopg

    # Group commit off: with it, one worker's messages share one ingest thread, so the
    # second message would queue behind the held one instead of committing first.
    async with _two_workers(make_app, database_url=pg_url, coalesce=False,
                            console_webhook_url="http://console.test/hook") as (a, b, ca, cb):
        stream = await _stream(ca, a, 2)
        blocker = await psycopg.AsyncConnection.connect(pg_url)  # a transaction...
        watcher = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
        try:
            await blocker.execute("LOCK TABLE outbox IN EXCLUSIVE MODE")  # ...held open
            late = asyncio.create_task(cb.post("/v1/messages", json=message(
                "slow", "m1", "a customer message: it has a delivery, so it waits")))
            waiting = 0
            for _ in range(500):  # until its insert holds a pk and it waits on the lock
                cur = await watcher.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = "
                    "'outbox'::regclass")
                row = await cur.fetchone()
                waiting = row[0] if row else 0
                if waiting:
                    break
                await asyncio.sleep(0.01)
            assert waiting, "the customer message never reached the outbox insert"
            r = await asyncio.wait_for(cb.post("/v1/messages", json=message(
                "fast", "m1", "an agent message has no delivery", role="agent")), 20)
            assert r.status_code == 200
            await asyncio.sleep(6 * POLL)  # the tail has seen the higher pk, skipped the lower
            assert not late.done()
        finally:
            await blocker.commit()
            await blocker.close()
            await watcher.close()
        assert (await asyncio.wait_for(late, 10)).status_code == 200
        body = await asyncio.wait_for(stream, 10)
    got = _events(body)
    assert [e["conversation_id"] for _, e in got] == ["fast", "slow"]
    (fast_id, _), (slow_id, _) = got
    assert slow_id is not None and fast_id is not None and slow_id < fast_id


async def test_last_event_id_replays_what_the_stream_missed(make_app: Any) -> None:
    app = make_app(events_poll_seconds=POLL)
    acme = issue_keys(app, "agent", "ingest", tenant="acme")
    globex = issue_keys(app, "ingest", tenant="globex")
    async with client(app) as c:
        async def post(cid: str, mid: str, key: str) -> None:
            r = await c.post("/v1/messages", json=message(cid, mid, "hi"), headers=bearer(key))
            assert r.status_code == 200

        first = await _stream(c, app, 1, bearer(acme["agent"]))
        await post("c1", "m1", acme["ingest"])
        [(last_id, _)] = _events(await asyncio.wait_for(first, 10))
        assert last_id is not None
        # disconnected: these are stored meanwhile
        await post("c1", "m2", acme["ingest"])
        await post("c1", "m1", globex["ingest"])  # another tenant: never replayed here
        await post("c2", "m3", acme["ingest"])
        again = await _stream(c, app, 3, {**bearer(acme["agent"]),
                                          "Last-Event-ID": str(last_id)})
        await post("c2", "m4", acme["ingest"])  # live, after the replay
        body = await asyncio.wait_for(again, 10)
        assert _mids(body) == ["m2", "m3", "m4"]
        assert all(i is not None and i > last_id for i, _ in _events(body))
        # an id it never gave out: no replay, live from now on
        fresh = await _stream(c, app, 1, {**bearer(acme["agent"]), "Last-Event-ID": "abc"})
        await post("c2", "m5", acme["ingest"])
        assert _mids(await asyncio.wait_for(fresh, 10)) == ["m5"]


async def test_the_replay_is_capped_at_the_newest(make_app: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from filterd.api.routes import events as route

    monkeypatch.setattr(route, "REPLAY_MAX", 2)
    app = make_app(events_poll_seconds=POLL)
    async with client(app) as c:
        for n in range(1, 5):
            await c.post("/v1/messages", json=message("c", f"m{n}", "hi"))
        body = (await c.get("/v1/events", params={"max_events": 2},
                            headers={"Last-Event-ID": "0"})).text
    assert _mids(body) == ["m3", "m4"]


async def test_a_message_both_replayed_and_published_live_is_sent_once(make_app: Any) -> None:
    """The stream subscribes before it replays, so a message committed in between is in
    both: it must be sent once."""
    app = make_app(events_poll_seconds=POLL)
    services = app.state.services
    store = services.store
    real = store.messages_after

    def replay_after_a_commit(tenant: str, after: int, limit: int) -> Any:
        services.ingestor.ingest([Incoming("c", "m2", "chat", "customer", "u", "in between")])
        time.sleep(6 * POLL)  # the tail publishes it to the live queue meanwhile
        return real(tenant, after, limit)

    async with client(app) as c:
        await c.post("/v1/messages", json=message("c", "m1", "before"))
        store.messages_after = replay_after_a_commit
        stream = await _stream(c, app, 3, {"Last-Event-ID": "0"})
        await asyncio.sleep(10 * POLL)
        await c.post("/v1/messages", json=message("c", "m3", "after"))
        body = await asyncio.wait_for(stream, 10)
    assert _mids(body) == ["m1", "m2", "m3"]


async def test_the_stream_follows_reused_pks_after_a_purge(make_app: Any) -> None:
    """SQLite gives the pks of deleted newest rows out again (after a retention purge of
    everything, pks restart at 1): the tail must step back, not wait above them."""
    app = make_app(events_poll_seconds=POLL)
    tail = app.state.services.events.feed
    store = app.state.services.store
    async with client(app) as c:
        for n in (1, 2, 3):
            await c.post("/v1/messages", json=message("c", f"m{n}", "old"))
        stream = await _stream(c, app, 1)
        assert tail.cursor == 3
        removed = await asyncio.to_thread(store.purge, utcnow() + timedelta(days=1), 100)
        assert removed.messages == 3
        for _ in range(200):
            if tail.cursor == 0:
                break
            await asyncio.sleep(POLL / 2)
        await c.post("/v1/messages", json=message("c", "new", "after the purge"))
        body = await asyncio.wait_for(stream, 10)
    assert [(i, e["message"]["message_id"]) for i, e in _events(body)] == [(1, "new")]


async def test_a_failing_store_is_logged_and_read_again(make_app: Any,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    async with _two_workers(make_app) as (a, b, ca, cb):
        store = a.state.services.store
        real = store.tail_messages
        calls = {"n": 0}

        def flaky(*args: Any) -> Any:
            calls["n"] += 1
            if calls["n"] <= 2:
                raise StoreError("The message store is locked by another writer; retry.")
            return real(*args)

        stream = await _stream(ca, a, 1)
        store.tail_messages = flaky
        with caplog.at_level(logging.INFO, logger="filterd.events"):
            await cb.post("/v1/messages", json=message("c", "m1", "hello"))
            body = await asyncio.wait_for(stream, 10)
    assert _mids(body) == ["m1"] and calls["n"] >= 3
    warned = [r for r in caplog.records
              if r.name == "filterd.events" and r.levelno == logging.WARNING]
    assert len(warned) == 1 and "StoreError" in warned[0].getMessage()
    assert "hello" not in caplog.text  # never the text
    assert any("answers again" in r.getMessage() for r in caplog.records)


async def test_the_tail_reads_only_while_a_stream_is_open(make_app: Any) -> None:
    app = make_app(events_poll_seconds=POLL)
    store = app.state.services.store
    real = store.tail_messages
    calls = {"n": 0}

    def counted(*args: Any) -> Any:
        calls["n"] += 1
        return real(*args)

    store.tail_messages = counted
    tail = app.state.services.events.feed
    async with client(app) as c:
        await c.post("/v1/messages", json=message("c", "m1", "nobody listens"))
        await asyncio.sleep(5 * POLL)
        assert calls["n"] == 0 and tail.cursor is None
        stream = await _stream(c, app, 1)
        await c.post("/v1/messages", json=message("c", "m2", "someone does"))
        assert _mids(await asyncio.wait_for(stream, 10)) == ["m2"]
        for _ in range(100):  # the stream closed: the tail forgets where it was...
            if tail.cursor is None:
                break
            await asyncio.sleep(POLL / 2)
        assert tail.cursor is None
        idle = calls["n"]
        await asyncio.sleep(5 * POLL)
        assert calls["n"] == idle  # ...and stops reading


def test_store_reads_for_the_tail(store: Any) -> None:
    from tests.test_store import _write

    assert store.last_message_pk() == 0
    a = store.write("a", _write("c1", ["m1", "m2"]))
    b = store.write("b", _write("c1", ["m1"]))
    pks = [m.pk for m in (*a, *b)]
    assert store.last_message_pk() == max(pks)
    batch = store.tail_messages(0, 10, (), {"b"})
    assert list(batch.pks) == sorted(pks) and batch.top == max(pks)
    assert [(m.tenant, m.message_id) for m in batch.messages] == [("b", "m1")]
    assert store.tail_messages(0, 2, ()).pks == tuple(sorted(pks)[:2])
    later = store.tail_messages(max(pks), 10, [pks[0], 10**9])  # recheck: present or not
    assert later.pks == (pks[0],) and [m.pk for m in later.messages] == [pks[0]]
    assert [m.message_id for m in store.messages_after("a", 0, 1)] == ["m2"]  # newest
    assert [m.message_id for m in store.messages_after("a", 0, 10)] == ["m1", "m2"]
    assert store.messages_after("a", max(pks), 10) == []
