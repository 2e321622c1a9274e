"""Nothing lost: SIGKILL mid-load, a console that is down, a store that cannot write.

The guarantees under test (README, "Running several instances" and "Webhooks"):

- a message answered 2xx is committed (message, conversation state and outbox rows in one
  transaction) before the answer, so it survives a SIGKILL of the server;
- a message that got no answer may or may not be stored; retrying it with the same
  ``(conversation_id, message_id)`` answers 2xx and stores nothing twice;
- every stored customer message reaches the console webhook after a restart. Transport is
  at least once (a call in flight when the server dies is repeated once its claim expires),
  and every call carries an ``Idempotency-Key``: a console that drops keys it has seen, as
  :class:`tests.procs.Console` does, accepts each message exactly once;
- a store that cannot write (full disk, or a lock held past the busy timeout) answers
  ``503 store_unavailable`` with ``Retry-After``, /readyz says so, nothing half-written
  remains, and the same request succeeds once the store is writable again.
"""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from filterd.ingest import delivery_key
from tests.procs import Console, Load, Result, Service, send, service_env, wait_for
from tests.service import message

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="kills process trees and sets limits through Linux /proc")

TEXTS = (
    "hello, my parcel has not arrived yet",
    "I am still waiting for my refund, this is ridiculous",
    "you are an idiot",
    "thanks, that worked",
    "call me on +1 415 555 0142, the order is late again",
    "This is the third time I am asking, unacceptable",
)
CONVERSATIONS = 150
MESSAGES = 3_000  # planned (about 1,070 requests)
KILL_AFTER = 400  # requests answered 2xx (about 1,100 messages), then SIGKILL
BATCH = 10  # every fifth request is a batch of this many


def _workload() -> list[tuple[str, Any]]:
    """Singles and batches over many conversations, ``MESSAGES`` messages in all."""
    requests: list[tuple[str, Any]] = []
    n = 0
    while n < MESSAGES:
        def one(k: int) -> dict[str, Any]:
            return message(f"conv-{k % CONVERSATIONS}", f"msg-{k}", TEXTS[k % len(TEXTS)])

        if len(requests) % 5 == 4:
            requests.append(("/v1/messages:batch",
                             {"messages": [one(n + j) for j in range(BATCH)]}))
            n += BATCH
        else:
            requests.append(("/v1/messages", one(n)))
            n += 1
    return requests


def _keys(body: Any) -> list[tuple[str, str]]:
    msgs = body.get("messages", [body])
    return [(m["conversation_id"], m["message_id"]) for m in msgs]


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _stored(path: Path) -> dict[tuple[str, str], int]:
    with _db(path) as db:
        return {(c, m): s for c, m, s in db.execute(
            "SELECT conversation_id, message_id, seq FROM messages")}


def _assert_consistent(path: Path) -> None:
    """Per conversation: seq 1..N without gaps, and the conversation row counts N."""
    with _db(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counts = dict(db.execute("SELECT id, messages FROM conversations").fetchall())
        seqs: dict[str, list[int]] = {}
        for cid, seq in db.execute("SELECT conversation_id, seq FROM messages ORDER BY seq"):
            seqs.setdefault(cid, []).append(seq)
        customer = dict(db.execute("SELECT id, customer_messages FROM conversations"))
    assert set(seqs) == set(counts)
    for cid, got in seqs.items():
        assert got == list(range(1, len(got) + 1)), f"{cid}: seq has gaps or repeats"
        assert counts[cid] == len(got) == customer[cid], cid


def _serve_env(db: Path, console: Console) -> dict[str, str]:
    return service_env(
        FILTERD_DATABASE_URL=f"sqlite:///{db}",
        FILTERD_CONSOLE_WEBHOOK_URL=console.url,
        FILTERD_DELIVERY_POLL_SECONDS="0.2",
        FILTERD_DELIVERY_BACKOFF_SECONDS="0.2",
        FILTERD_DELIVERY_BACKOFF_MAX_SECONDS="1",
        FILTERD_DELIVERY_MAX_ATTEMPTS="1000",  # no dead letters: the console comes back
        FILTERD_DELIVERY_TIMEOUT_SECONDS="2",
    )


def _outbox(path: Path) -> dict[str, str]:
    """Idempotency-Key -> status of every console delivery in the outbox."""
    with _db(path) as db:
        return dict(db.execute("SELECT idempotency_key, status FROM outbox").fetchall())


@pytest.mark.slow
def test_sigkill_mid_load_then_console_down_loses_nothing(tmp_path: Path) -> None:
    """Kill mid-load while the (slow) console is taking calls; restart with the console
    down; bring it back. Every 2xx message is stored and reaches the console once."""
    db = tmp_path / "crash.db"
    console = Console()
    console.delay = 0.2  # calls are in flight, accepted but not yet answered, at the kill
    env = _serve_env(db, console)
    requests = _workload()
    try:
        with Service(tmp_path, env).start() as first:
            t_start = time.monotonic()
            load = Load([first.base_url], requests, concurrency=8).start()
            assert wait_for(lambda: load.ok_count >= KILL_AFTER, timeout=120), \
                "the load did not get going:\n" + first.output
            t_kill = time.monotonic()
            first.kill()
            console.down = True  # and it stays down over the restart
            console.delay = 0.0
            load.join()
        results = load.results
        acked = {k for (_, body), r in zip(requests, results, strict=True)
                 if r is not None and r.ok for k in _keys(body)}
        unknown = [i for i, r in enumerate(results) if r is not None and not r.ok]
        unsent = sum(r is None for r in results)
        assert len(acked) >= KILL_AFTER and unsent > 0, "the kill did not land mid-load"

        # Every message answered 2xx is in the store, before anything else runs on it.
        stored = _stored(db)
        assert acked <= set(stored), f"{len(acked - set(stored))} acknowledged messages lost"
        _assert_consistent(db)
        # Calls the console accepted whose answer the killed server never recorded: the
        # outbox still has them pending, so they will be sent again (at least once).
        outbox = _outbox(db)
        delivered_before_kill = len(console.accepted)
        in_flight = {k for k, status in outbox.items()
                     if status == "pending" and k in console.accepted}
        assert set(console.accepted) <= set(outbox)

        with Service(tmp_path, env).start() as second:
            # Requests that got no answer (in flight at the kill) are retried, same ids:
            # each answers 2xx and is stored once, whether or not it was stored before.
            with second.client(timeout=60) as c:
                retried = [send(c, second.base_url + requests[i][0], requests[i][1])
                           for i in unknown]
                assert all(r.ok for r in retried), [r for r in retried if not r.ok]
                # An acknowledged message sent again is answered from the store.
                again = [send(c, second.base_url + path, body)
                         for (path, body), r in zip(requests, results, strict=True)
                         if path == "/v1/messages" and r is not None and r.ok][:50]
                assert again and all(r.ok and r.replayed for r in again)
            stored = _stored(db)
            sent = {k for path, body in requests for k in _keys(body)}
            retried_keys = {k for i in unknown for k in _keys(requests[i][1])}
            assert acked | retried_keys <= set(stored) <= sent
            _assert_consistent(db)  # seq stays gap-free: a retry never stores twice

            # The console is down a while: deliveries fail and back off, none is lost.
            assert wait_for(lambda: console.refused >= 20, timeout=30)
            time.sleep(1.0)
            console.down = False
            expected = {delivery_key("console", c, m) for c, m in stored}
            delivered = wait_for(lambda: set(console.accepted) >= expected, timeout=90,
                                 interval=0.25)
            missing = expected - set(console.accepted)
            assert delivered, f"{len(missing)} of {len(expected)} console deliveries missing"
            assert set(console.accepted) == expected  # nothing delivered that is not stored
            assert wait_for(lambda: set(_outbox(db).values()) == {"delivered"}, timeout=30)
            t_done = time.monotonic()
            assert len(_outbox(db)) == len(expected)
            assert second.stop() == 0, second.output
        assert "Traceback" not in second.output, second.output
        _assert_consistent(db)
        # Transport is at least once: the calls in flight at the kill came again, and the
        # console's key check made each repeat a no-op (exactly once per key accepted).
        duplicates = sum(console.duplicates.values())
        assert set(console.duplicates) >= in_flight
        print(f"\nacknowledged {len(acked)} of {len(sent)} messages in "
              f"{t_kill - t_start:.1f} s before SIGKILL; {len(unknown)} requests unanswered "
              f"and retried; {len(stored)} stored; {delivered_before_kill} delivered before "
              f"the kill ({len(in_flight)} of them unrecorded); {console.refused} calls "
              f"refused while the console was down; all {len(expected)} delivered "
              f"{t_done - t_kill:.1f} s after the kill; {duplicates} duplicate calls "
              "dropped by key")
    finally:
        console.close()


# ------------------------------------------------------------------ a store that cannot write


def _plain_env(db: Path) -> dict[str, str]:
    return service_env(FILTERD_DATABASE_URL=f"sqlite:///{db}")


def _assert_store_unavailable(r: Result, why: str = "") -> None:
    assert r.status == 503, r
    assert r.body["error"]["code"] == "store_unavailable", r.body
    said = r.body["error"]["message"]
    assert "message store" in said and "Retry" in said and why in said, said
    assert "sqlite" not in said.lower() and ".db" not in said  # never the URL or file


def _transcript_ids(c: Any, cid: str) -> list[tuple[int, str]]:
    body = c.get(f"/v1/conversations/{cid}").json()
    return [(m["seq"], m["message_id"]) for m in body["transcript"]]


def test_disk_full_answers_503_and_recovers(tmp_path: Path) -> None:
    """A full disk, made real for the server alone: its file-size limit (RLIMIT_FSIZE) is
    dropped to 0, so every write SQLite makes fails as on a full disk, without root or a
    special filesystem; raising the limit again is freeing the space."""
    db = tmp_path / "full.db"
    with Service(tmp_path, _plain_env(db)).start() as srv, srv.client() as c:
        base = srv.base_url
        assert send(c, base + "/v1/messages", message("c1", "m1", "hello there")).ok
        limits = resource.prlimit(srv.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(srv.pid, resource.RLIMIT_FSIZE, (0, limits[1]))
        try:
            r = c.post("/v1/messages", json=message("c1", "m2", "you are an idiot"))
            _assert_store_unavailable(Result(r.status_code, body=r.json()))
            assert r.headers["Retry-After"] == "1"
            batch = send(c, base + "/v1/messages:batch", {"messages": [
                message("c1", "m3", "still waiting"), message("c2", "m1", "hi")]})
            _assert_store_unavailable(batch)
            fb = send(c, base + "/v1/messages/c1/m1/feedback",
                      {"category": "neutral", "by": "agent-1"})
            _assert_store_unavailable(fb)
            ready = c.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["store"].startswith("failed")
            assert c.get("/healthz").status_code == 200
            # reads still work: the transcript holds only what was committed
            assert _transcript_ids(c, "c1") == [(1, "m1")]
        finally:
            resource.prlimit(srv.pid, resource.RLIMIT_FSIZE, limits)
        # space again: the same requests succeed, as first writes (nothing half-stored)
        again = send(c, base + "/v1/messages", message("c1", "m2", "you are an idiot"))
        assert again.ok and not again.replayed, again
        assert again.body["conversation"]["strikes"] == 1
        assert send(c, base + "/v1/messages:batch", {"messages": [
            message("c1", "m3", "still waiting"), message("c2", "m1", "hi")]}).ok
        assert _transcript_ids(c, "c1") == [(1, "m1"), (2, "m2"), (3, "m3")]
        assert c.get("/readyz").status_code == 200
        assert srv.stop() == 0
    assert "Traceback" not in srv.output, srv.output
    _assert_consistent(db)


_HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
db.execute("UPDATE heartbeat SET beat_at = beat_at")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


@pytest.mark.slow
def test_locked_store_answers_503_and_recovers(tmp_path: Path) -> None:
    """Another process holds the write lock longer than the store's busy timeout
    (FILTERD_STORE_BUSY_TIMEOUT_MS, 5 s by default)."""
    db = tmp_path / "locked.db"
    with Service(tmp_path, _plain_env(db)).start() as srv, srv.client(timeout=90) as c:
        base = srv.base_url
        assert send(c, base + "/v1/messages", message("c1", "m1", "hello there")).ok
        holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(db)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            # WAL: readers go on beside the lock holder
            assert _transcript_ids(c, "c1") == [(1, "m1")]
            # the write and the readiness probe both wait out the busy timeout, side by side
            with ThreadPoolExecutor(1) as pool:
                t0 = time.monotonic()
                probe = pool.submit(c.get, "/readyz")
                r = send(c, base + "/v1/messages", message("c1", "m2", "you are an idiot"))
                waited = time.monotonic() - t0
                ready = probe.result()
            _assert_store_unavailable(r, why="locked")
            assert ready.status_code == 503
            assert ready.json()["checks"]["store"].startswith("failed")
        finally:
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.close()
            holder.wait(timeout=10)
        again = send(c, base + "/v1/messages", message("c1", "m2", "you are an idiot"))
        assert again.ok and not again.replayed
        assert _transcript_ids(c, "c1") == [(1, "m1"), (2, "m2")]
        assert c.get("/readyz").status_code == 200
        assert srv.stop() == 0
    assert "Traceback" not in srv.output, srv.output
    _assert_consistent(db)
    print(f"\nlocked store: 503 after {waited:.1f} s")
