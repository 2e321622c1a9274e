"""The SQL store, on a SQLite file and on a real PostgreSQL (see the ``store`` fixture)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from filterd.config import load_settings
from filterd.errors import ConflictError, NotFoundError, StaleStateError
from filterd.ingest import Incoming, Ingestor
from filterd.metrics import Metrics
from filterd.route.conversation import ConversationState
from filterd.store.base import (
    AuditEntry,
    ConversationQuery,
    ConversationWrite,
    FeedbackIn,
    NewDelivery,
    NewMessage,
    utcnow,
)
from filterd.store.models import metadata
from filterd.store.sql import SqlStore, engine_url

T = "default"  # the tenant of these tests (tests/test_tenants.py has several)


def _verdict(mid: str, category: str = "neutral", queue: str = "standard") -> dict:  # type: ignore[type-arg]
    return {"id": mid, "category": category, "scores": {}, "flags": [], "flag_scores": {},
            "intensity": 0.1, "level": 0, "text_masked": f"text of {mid}", "spans": [],
            "route": {"queue": queue, "priority": 3, "actions": [], "reason": "neutral"}}


def _write(cid: str, mids: list[str], version: int = 0, category: str = "neutral",
           queue: str = "standard", deliveries: tuple[NewDelivery, ...] = (),
           sealed: str | None = None) -> ConversationWrite:
    now = utcnow()
    state = ConversationState(customer_messages=len(mids))
    msgs = tuple(NewMessage(message_id=m, channel="chat", role="customer", sender_id="u",
                            verdict=_verdict(m, category, queue), state_after=state,
                            escalated_here=False, received_at=now, sealed_original=sealed)
                 for m in mids)
    return ConversationWrite(cid, "chat", version, msgs, state, deliveries)


def _ingestor(store: SqlStore, keyword_filter, **settings) -> Ingestor:  # type: ignore[no-untyped-def]
    return Ingestor(keyword_filter, store, load_settings(**settings), Metrics())


def _incoming(cid: str, mid: str, text: str, role: str = "customer") -> Incoming:
    return Incoming(cid, mid, "chat", role, "u1", text)  # type: ignore[arg-type]


def test_postgres_urls_use_psycopg3() -> None:
    assert engine_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"


def test_migrations_build_exactly_the_models(store: SqlStore) -> None:
    store.upgrade()  # a second upgrade is a no-op
    with store._engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                metadata)
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert diff == []
    assert version == "0004"


def _insert_0001_rows(s: SqlStore, cid: str, mids: list[str]) -> None:
    """Rows as the 0001/0002 schema holds them (no tenant column yet)."""
    now = utcnow()
    with s._writer.begin() as conn:
        conn.execute(text(
            "INSERT INTO conversations (id, channel, messages, customer_messages, frustration,"
            " strikes, version, created_at, updated_at) VALUES (:c, 'chat', :n, :n, 0.5, 1, 1,"
            " :t, :t)"), {"c": cid, "n": len(mids), "t": now})
        for seq, mid in enumerate(mids, 1):
            conn.execute(text(
                "INSERT INTO messages (conversation_id, message_id, seq, channel, role,"
                " sender_id, text_masked, category, level, intensity, flags, queue, priority,"
                " escalated_here, verdict, state_after, received_at, hour) VALUES (:c, :m, :s,"
                " 'chat', 'customer', 'u', :x, 'neutral', 0, 0.1, '[]', 'standard', 3, false,"
                " :v, :st, :t, 1)"),
                {"c": cid, "m": mid, "s": seq, "x": f"text of {mid}", "t": now,
                 "v": '{"text_masked": "x"}',
                 "st": '{"customer_messages": 1, "frustration": 0.5, "strikes": 1}'})


def test_migrations_upgrade_old_databases_and_back(db_url: str) -> None:
    s = SqlStore(db_url)
    s.migrate("upgrade", "0001")
    _insert_0001_rows(s, "c1", ["m1"])  # data written before 0002 and 0003 survives them
    s.migrate("upgrade", "0002")
    with s._writer.begin() as conn:
        conn.execute(text("INSERT INTO audit_log (at, who, role, action, conversation_id,"
                          " message_id, outcome) VALUES (:t, 'key-1', 'supervisor',"
                          " 'read_original', 'c1', 'm1', 'granted')"), {"t": utcnow()})
    s.upgrade()
    # the old rows are the default tenant's now, and nobody else's
    assert [m.message_id for m in s.transcript(T, "c1").messages] == ["m1"]
    assert s.snapshots(T, ["c1"])["c1"].state.strikes == 1
    assert [e.who for e in s.audit_entries(T, 10)] == ["key-1"]
    assert s.snapshots("other", ["c1"])["c1"].version == 0
    assert s.sealed_original(T, "c1", "m1") is None
    s.write(T, _write("c1", ["m2"], version=1, sealed="token-of-m2"))
    assert s.sealed_original(T, "c1", "m2") == "token-of-m2"
    s.migrate("downgrade", "0001")
    with s._engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 2
    s.upgrade()
    assert s.snapshots(T, ["c1"])["c1"].version == 2
    s.write("other", _write("c1", ["m1"]))  # another tenant's "c1": 0003 cannot be undone
    with pytest.raises(RuntimeError, match="belong to tenants other than 'default'"):
        s.migrate("downgrade", "0002")
    assert s.snapshots("other", ["c1"])["c1"].version == 1  # nothing was changed
    s.close()


def test_originals_and_audit_entries(store: SqlStore) -> None:
    store.write(T, _write("c1", ["m1", "m2"], sealed="tok"))
    assert store.sealed_original(T, "c1", "m1") == "tok"
    with pytest.raises(NotFoundError):
        store.sealed_original(T, "c1", "nope")
    with pytest.raises(StaleStateError):  # the whole write is one transaction
        store.write(T, _write("c1", ["m3", "m1"], version=1, sealed="tok"))
    with pytest.raises(NotFoundError):
        store.sealed_original(T, "c1", "m3")
    now = utcnow()
    first = store.audit(T, AuditEntry("key-1", "agent", "read_original", "c1", "m1", "denied", now))
    store.audit(T, AuditEntry("key-2", "supervisor", "read_original", "c2", "m1", "granted", now))
    assert first.id is not None
    got = store.audit_entries(T, 10)
    assert [(e.who, e.outcome) for e in got] == [("key-2", "granted"), ("key-1", "denied")]
    assert [e.who for e in store.audit_entries(T, 10, conversation_id="c1")] == ["key-1"]
    assert len(store.audit_entries(T, 1)) == 1


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = SqlStore(f"sqlite:///{tmp_path}/w.db")
    s.upgrade()
    with s._engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    s.close()


def test_write_then_read_back(store: SqlStore) -> None:
    [a, b] = store.write(T, _write("c1", ["m1", "m2"]))
    assert (a.seq, b.seq) == (1, 2)
    snap = store.snapshots(T, ["c1", "nope"])
    assert snap["c1"].version == 1 and snap["c1"].state.customer_messages == 2
    assert snap["nope"].version == 0
    found = store.find_messages(T, [("c1", "m1"), ("c1", "zz")])
    assert list(found) == [("c1", "m1")] and found[("c1", "m1")].verdict["id"] == "m1"
    t = store.transcript(T, "c1")
    assert [m.message_id for m in t.messages] == ["m1", "m2"]
    assert t.conversation.messages == 2
    with pytest.raises(NotFoundError) as e:
        store.transcript(T, "nope")
    assert e.value.code == "conversation_not_found"


def test_write_many_writes_every_conversation_in_one_go(store: SqlStore) -> None:
    store.write(T, _write("c1", ["m1"], queue="priority", category="frustrated"))
    hook = NewDelivery("b1", "agent", "http://console.invalid/hook", "k-b1", {"x": 1})
    got = store.write_many(T, [_write("c1", ["m2", "m3"], version=1),
                               _write("c2", ["a1"]),
                               _write("c3", ["b1"], deliveries=(hook,), sealed="tok")])
    assert [[(m.conversation_id, m.message_id, m.seq) for m in ms] for ms in got] == [
        [("c1", "m2", 2), ("c1", "m3", 3)], [("c2", "a1", 1)], [("c3", "b1", 1)]]
    pks = [m.pk for ms in got for m in ms]
    assert pks == sorted(pks) and len(set(pks)) == 4
    for ms in got:  # the pks returned are the rows stored
        for m in ms:
            assert store.find_messages(T, [(m.conversation_id, m.message_id)])[
                (m.conversation_id, m.message_id)].pk == m.pk
    snaps = store.snapshots(T, ["c1", "c2", "c3"])
    assert [snaps[c].version for c in ("c1", "c2", "c3")] == [2, 1, 1]
    assert store.transcript(T, "c1").conversation.messages == 3
    assert store.sealed_original(T, "c3", "b1") == "tok"
    assert store.outbox_depth() == 1


def test_write_many_is_all_or_nothing(store: SqlStore) -> None:
    store.write(T, _write("c1", ["m1"]))
    with pytest.raises(StaleStateError, match="'c1' changed"):
        store.write_many(T, [_write("c2", ["a1"]), _write("c1", ["m2"], version=0)])
    with pytest.raises(StaleStateError, match="raced"):  # a stored message id
        store.write_many(T, [_write("c3", ["b1"]), _write("c1", ["m1"], version=1)])
    assert store.snapshots(T, ["c2", "c3"])["c2"].version == 0  # nothing of c2 or c3
    assert not store.find_messages(T, [("c2", "a1"), ("c3", "b1")])
    with pytest.raises(ValueError, match="one write per conversation"):
        store.write_many(T, [_write("c2", ["a1"]), _write("c2", ["a2"])])


def test_a_stale_conversation_in_a_pass_does_not_hold_back_the_others(
        store: SqlStore, keyword_filter) -> None:  # type: ignore[no-untyped-def]
    """The ingestor writes a round's conversations together; when one of them went stale
    it writes them one by one, so the others commit and the stale one is re-judged."""
    ing = _ingestor(store, keyword_filter)
    ing.ingest([_incoming("c1", "m1", "hello")])
    real = store.write_many
    calls = []

    def once_stale(tenant, writes):  # type: ignore[no-untyped-def]
        calls.append([w.conversation_id for w in writes])
        if len(calls) == 1:  # another writer gets to c1 between our read and our write
            store.write(tenant, _write("c1", ["x1"], version=1))
        return real(tenant, writes)

    store.write_many = once_stale  # type: ignore[method-assign]
    out = ing.ingest([_incoming("c1", "m2", "still broken"), _incoming("c2", "n1", "hi"),
                      _incoming("c3", "k1", "thanks")], batch=True)
    assert [o.message.seq for o in out] == [3, 1, 1]  # m2 re-judged after x1
    assert sorted(calls[0]) == ["c1", "c2", "c3"]
    assert [m.message_id for m in store.transcript(T, "c1").messages] == ["m1", "x1", "m2"]


def test_a_stale_version_or_a_stored_id_is_refused(store: SqlStore) -> None:
    store.write(T, _write("c1", ["m1"]))
    with pytest.raises(StaleStateError):  # judged against version 0, but it is 1 now
        store.write(T, _write("c1", ["m2"], version=0))
    with pytest.raises(StaleStateError):  # the same message id again
        store.write(T, _write("c1", ["m1"], version=1))
    store.write(T, _write("c1", ["m2"], version=1))
    assert store.snapshots(T, ["c1"])["c1"].version == 2


def test_concurrent_messages_never_lose_a_strike(store: SqlStore, keyword_filter) -> None:  # type: ignore[no-untyped-def]
    ing = _ingestor(store, keyword_filter)
    n = 16
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: ing.ingest([_incoming("c1", f"m{i}", "you idiot")]), range(n)))
    state = store.snapshots(T, ["c1"])["c1"].state
    assert (state.customer_messages, state.strikes) == (n, n)
    t = store.transcript(T, "c1")
    assert sorted(m.seq for m in t.messages) == list(range(1, n + 1))
    # every stored state is the one its message left: strikes count up 1..n by seq
    assert [m.state_after.strikes for m in t.messages] == list(range(1, n + 1))


def test_concurrent_retries_store_one_message(store: SqlStore, keyword_filter) -> None:  # type: ignore[no-untyped-def]
    ing = _ingestor(store, keyword_filter)
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: ing.ingest([_incoming("c1", "m1", "you idiot")])[0],
                                 range(12)))
    assert sum(not o.replayed for o in outcomes) == 1
    assert len({o.message.pk for o in outcomes}) == 1
    assert store.snapshots(T, ["c1"])["c1"].state.strikes == 1


def test_conversation_queries(store: SqlStore) -> None:
    store.write(T, _write("calm", ["m1"]))
    store.write(T, _write("angry", ["m1"], category="abusive", queue="abuse_review"))
    store.write(T, _write("later", ["m1"], category="frustrated", queue="priority"))
    newest = [c.id for c in store.conversations(T, ConversationQuery())]
    assert newest == ["later", "angry", "calm"]
    assert [c.id for c in store.conversations(T, ConversationQuery(queue="abuse_review"))] == [
        "angry"]
    assert [c.id for c in store.conversations(T, ConversationQuery(category="frustrated"))] == [
        "later"]
    assert [c.id for c in store.conversations(T, ConversationQuery(limit=1))] == ["later"]
    future = utcnow() + timedelta(hours=1)
    assert store.conversations(T, ConversationQuery(since=future)) == []


def test_feedback_newest_correction_per_message(store: SqlStore) -> None:
    store.write(T, _write("c1", ["m1", "m2"]))
    now = utcnow()
    store.add_feedback(T, FeedbackIn("c1", "m1", "frustrated", (), "a1"), now)
    store.add_feedback(T, FeedbackIn("c1", "m1", "abusive", ("insult",), "a2", "second look"), now)
    store.add_feedback(T, FeedbackIn("c1", "m2", "neutral", (), "a1"), now)
    got = list(store.feedback_examples())
    assert [(e.text, e.category, e.flags) for e in got] == [
        ("text of m1", "abusive", ("insult",)), ("text of m2", "neutral", ())]
    with pytest.raises(NotFoundError) as e:
        store.add_feedback(T, FeedbackIn("c1", "nope", "neutral", (), "a1"), now)
    assert e.value.code == "message_not_found"


def test_outbox_claims_leases_failures_and_dead_letters(store: SqlStore) -> None:
    d = NewDelivery("m1", "console", "http://console.test/hook", "k1", {"event": "message"})
    store.write(T, _write("c1", ["m1"], deliveries=(d,)))
    now = utcnow() + timedelta(seconds=1)
    assert store.outbox_depth() == 1
    [claimed] = store.claim_deliveries(now, 10, lease_seconds=30)
    assert (claimed.message_id, claimed.idempotency_key, claimed.attempts) == ("m1", "k1", 0)
    assert store.claim_deliveries(now, 10, 30) == []  # leased to the first claimer
    later = now + timedelta(seconds=31)
    [again] = store.claim_deliveries(later, 10, 30)  # the lease ran out: claimable again
    store.delivery_failed(again.id, later, "HTTP 503", retry_at=later + timedelta(seconds=5))
    assert store.claim_deliveries(later + timedelta(seconds=4), 10, 30) == []
    [third] = store.claim_deliveries(later + timedelta(seconds=5), 10, 30)
    assert third.attempts == 1
    store.delivery_failed(third.id, later, "HTTP 503", retry_at=None)
    [dead] = store.dead_letters(T, 10)
    assert (dead.status, dead.attempts, dead.last_error) == ("dead", 2, "HTTP 503")
    assert store.outbox_depth() == 0
    requeued = store.requeue(T, dead.id, later)
    assert (requeued.status, requeued.attempts) == ("pending", 0)
    with pytest.raises(ConflictError):
        store.requeue(T, dead.id, later)  # pending, not dead
    with pytest.raises(NotFoundError):
        store.requeue(T, 999_999, later)
    [last] = store.claim_deliveries(later, 10, 30)
    store.delivery_succeeded(last.id, later)
    assert store.outbox_depth() == 0 and store.dead_letters(T, 10) == []


def test_stats_counts_customer_messages_in_the_window(store: SqlStore, keyword_filter) -> None:  # type: ignore[no-untyped-def]
    ing = _ingestor(store, keyword_filter)
    ing.ingest([_incoming("c1", "m1", "hello"), _incoming("c1", "m2", "you idiot"),
                _incoming("c1", "m3", "you moron"), _incoming("c1", "m4", "still waiting"),
                _incoming("c1", "a1", "you idiot", role="agent")], batch=True)
    until = utcnow() + timedelta(seconds=1)
    s = store.stats(T, until - timedelta(hours=24), until)
    assert (s.messages, s.abusive, s.frustrated) == (4, 2, 1)
    assert s.escalations == {"abuse_review": 1}
    assert [(b.key, b.messages) for b in s.channels] == [("chat", 4)]
    assert len(s.hourly) in (24, 25) and sum(b.messages for b in s.hourly) == 4
    assert store.stats(T, until, until + timedelta(hours=1)).messages == 0


def test_only_masked_text_reaches_the_database(store: SqlStore, keyword_filter) -> None:  # type: ignore[no-untyped-def]
    ing = _ingestor(store, keyword_filter)
    raw = "you fucking idiot, call me on +1 415 555 0132 or mail jo.doe@example.com"
    ing.ingest([_incoming("c1", "m1", raw)])
    dump = []
    with store._engine.connect() as conn:
        for table in metadata.sorted_tables:
            dump += [str(tuple(r)) for r in conn.execute(table.select())]
    everything = "\n".join(dump)
    for secret in ("fucking", "idiot", "555 0132", "jo.doe@example.com"):
        assert secret not in everything


def test_ping_writes_a_heartbeat(store: SqlStore) -> None:
    store.ping()
    store.ping()


def test_the_duplicate_check_does_not_grow_with_the_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``find_messages`` runs on every ingest pass; its SQLite plan must be index lookups,
    not a scan of the tenant's messages (the row-value IN form was one: the soak's latency
    rose 8x after ~36,000 messages). Counted in SQLite VM steps, not time: the work for the
    same 8 keys must stay flat while the table grows 20x."""
    from sqlalchemy import event

    s = SqlStore(f"sqlite:///{tmp_path}/grow.db")
    s.upgrade()
    steps = [0]

    def count(*_: object) -> int:
        steps[0] += 1
        return 0

    @event.listens_for(s._engine, "before_cursor_execute")
    def _progress(conn, *_):  # type: ignore[no-untyped-def]
        conn.connection.dbapi_connection.set_progress_handler(count, 100)

    def cost() -> int:
        steps[0] = 0
        s.find_messages(T, [(f"c{k}", f"m{k}-0") for k in range(8)])
        return steps[0]

    def fill(conversations: range) -> None:
        s.write_many(T, [_write(f"c{k}", [f"m{k}-{j}" for j in range(10)])
                         for k in conversations])

    fill(range(0, 50))  # 500 messages
    small = cost()
    for lo in range(50, 1000, 50):  # 10,000 messages
        fill(range(lo, lo + 50))
    large = cost()
    assert large <= 2 * small + 20, (small, large)
    s.close()


def test_concurrent_passes_over_the_same_conversations_all_land(
        store: SqlStore, keyword_filter) -> None:  # type: ignore[no-untyped-def]
    """Two ingestors (as two workers would) write passes over overlapping conversations in
    opposite orders, some new, some not: no deadlock, no error, every message stored once
    and every conversation's seq without gaps (on PostgreSQL the row locks are taken in
    one order; a lost race is a stale write that is re-judged)."""
    import threading

    ingestors = [_ingestor(store, keyword_filter) for _ in range(2)]
    errors: list[BaseException] = []
    convs = [f"k{n}" for n in range(6)]

    def run(w: int) -> None:
        order = convs if w == 0 else convs[::-1]
        try:
            for r in range(15):
                ingestors[w].ingest([_incoming(c, f"w{w}-r{r}-{c}", "my bill is wrong again")
                                     for c in order], batch=True)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for c in convs:
        seqs = [m.seq for m in store.transcript(T, c).messages]
        assert seqs == list(range(1, 31)), (c, seqs)
