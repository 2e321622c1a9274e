"""Retention (issue 6, privacy), on SQLite and PostgreSQL: the purge deletes exactly the
transcripts past FILTERD_RETENTION_DAYS (with their originals, corrections and finished
deliveries) and nothing recent; the audit log has its own period; `filterd purge` and the
background purge of `filterd serve` run it."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from filterd import privacy
from filterd.cli import main
from filterd.config import load_settings
from filterd.errors import StaleStateError
from filterd.route.conversation import ConversationState
from filterd.store.base import (
    AuditEntry,
    ConversationWrite,
    FeedbackIn,
    NewDelivery,
    NewMessage,
    Removed,
    utcnow,
)
from filterd.store.models import conversations, feedback, message_originals, messages, outbox
from filterd.store.sql import SqlStore
from tests.service import client

pytestmark = pytest.mark.anyio

NOW = utcnow()
OLD = NOW - timedelta(days=100)  # past the default 90 days
LATE = NOW - timedelta(days=90, hours=12)  # past them, but within the grace of a pending one
NEW = NOW - timedelta(hours=1)


@dataclass(frozen=True)
class Msg:
    """One message to store, and what hangs off it."""

    mid: str
    at: datetime
    role: str = "customer"
    sender: str = "cust-1"
    sealed: bool = True  # an original is kept
    delivery: str | None = None  # pending | delivered | dead
    feedback: bool = False


def put(store: SqlStore, tenant: str, cid: str, *msgs: Msg, marker: str = "") -> None:
    """Store ``msgs`` in one write (after what the conversation holds), with their
    originals, deliveries in the given status and corrections. ``marker`` goes into every
    piece of text, so a test can look for it in every table."""
    snap = store.snapshots(tenant, [cid])[cid]
    state = ConversationState(customer_messages=snap.state.customer_messages + len(msgs))

    def verdict(m: Msg) -> dict[str, Any]:
        return {"id": m.mid, "category": "abusive", "scores": {}, "flags": [],
                "flag_scores": {}, "intensity": 0.9, "level": 2, "spans": [],
                "text_masked": f"{marker} text of {m.mid}".strip(),
                "route": {"queue": "standard", "priority": 3, "actions": [],
                          "reason": "test"}}

    new = tuple(NewMessage(
        message_id=m.mid, channel="chat", role=m.role, sender_id=m.sender,  # type: ignore[arg-type]
        verdict=verdict(m), state_after=state, escalated_here=False, received_at=m.at,
        sealed_original=f"sealed {marker} {tenant}/{cid}/{m.mid}" if m.sealed else None)
        for m in msgs)
    deliveries = tuple(NewDelivery(
        m.mid, "console", "http://console.test/hook", f"{tenant}-{cid}-{m.mid}",
        {"conversation_id": cid, "sender": m.sender, "text_masked": verdict(m)["text_masked"]})
        for m in msgs if m.delivery)
    store.write(tenant, ConversationWrite(cid, "chat", snap.version, new, state, deliveries))
    with store._writer.begin() as conn:
        for m in msgs:
            if m.delivery and m.delivery != "pending":
                conn.execute(update(outbox).where(
                    outbox.c.idempotency_key == f"{tenant}-{cid}-{m.mid}")
                    .values(status=m.delivery))
    for m in msgs:
        if m.feedback:
            store.add_feedback(tenant, FeedbackIn(cid, m.mid, "neutral", (), "agent-9",
                                                  f"{marker} note".strip()), NOW)


def _world(store: SqlStore) -> None:
    """Two tenants' conversations: wholly old, old and recent, recent, old with a delivery
    pending (just past the cutoff: kept; long past it: abandoned, purged)."""
    put(store, "a", "gone", Msg("m1", OLD, delivery="delivered", feedback=True),
        Msg("m2", OLD, role="agent", sender="agent-1", sealed=False, delivery="dead"))
    put(store, "a", "mixed", Msg("m1", OLD, delivery="delivered", feedback=True))
    put(store, "a", "mixed", Msg("m2", NEW, delivery="pending", feedback=True))
    put(store, "b", "recent", Msg("m1", NEW, delivery="pending", feedback=True),
        Msg("m2", NEW, delivery="delivered"))
    put(store, "b", "stuck", Msg("m1", LATE, delivery="pending"))  # still being delivered
    put(store, "b", "abandoned", Msg("m1", OLD, delivery="pending"))  # nobody delivers it


EXPECTED = Removed(conversations=2, messages=4, message_originals=3, feedback=2, outbox=4)


def _left(store: SqlStore) -> dict[str, Any]:
    """Every row of the transcript tables, by key, read directly."""
    m = messages.c
    with store._engine.connect() as conn:
        pk = {r.id: (r.tenant, r.conversation_id, r.message_id)
              for r in conn.execute(select(m.id, m.tenant, m.conversation_id, m.message_id))}
        return {
            "conversations": sorted(tuple(r) for r in conn.execute(
                select(conversations.c.tenant, conversations.c.id))),
            "messages": sorted(pk.values()),
            "originals": sorted(pk[r.message_pk] for r in conn.execute(
                select(message_originals.c.message_pk))),
            "feedback": sorted(pk[r.message_pk] for r in conn.execute(
                select(feedback.c.message_pk))),
            "outbox": sorted((*pk[r.message_pk], r.status) for r in conn.execute(
                select(outbox.c.message_pk, outbox.c.status))),
        }


def test_purge_deletes_exactly_the_old_transcripts(store: SqlStore) -> None:
    _world(store)
    mixed = store.snapshots("a", ["mixed"])["mixed"]
    settings = load_settings(retention_days=90, audit_retention_days=0, purge_batch=2)
    assert privacy.preview(store, settings, NOW) == EXPECTED  # --dry-run: counts only
    assert _left(store)["messages"] == [("a", "gone", "m1"), ("a", "gone", "m2"),
                                        ("a", "mixed", "m1"), ("a", "mixed", "m2"),
                                        ("b", "abandoned", "m1"), ("b", "recent", "m1"),
                                        ("b", "recent", "m2"), ("b", "stuck", "m1")]
    assert privacy.purge(store, settings, NOW) == EXPECTED  # in batches of 2
    assert _left(store) == {
        "conversations": [("a", "mixed"), ("b", "recent"), ("b", "stuck")],
        "messages": [("a", "mixed", "m2"), ("b", "recent", "m1"), ("b", "recent", "m2"),
                     ("b", "stuck", "m1")],
        "originals": [("a", "mixed", "m2"), ("b", "recent", "m1"), ("b", "recent", "m2"),
                      ("b", "stuck", "m1")],
        "feedback": [("a", "mixed", "m2"), ("b", "recent", "m1")],
        "outbox": [("a", "mixed", "m2", "pending"), ("b", "recent", "m1", "pending"),
                   ("b", "recent", "m2", "delivered"), ("b", "stuck", "m1", "pending")],
    }
    # a conversation that still has recent messages keeps its state (strikes, version...)
    assert store.snapshots("a", ["mixed"])["mixed"] == mixed
    assert [m.message_id for m in store.transcript("a", "mixed").messages] == ["m2"]
    # idempotent: nothing more is due
    assert privacy.purge(store, settings, NOW) == Removed()
    assert privacy.preview(store, settings, NOW) == Removed()
    # the stuck message goes once its delivery has ended
    [d] = [d for d in store.claim_deliveries(NOW, 10, 30) if d.conversation_id == "stuck"]
    store.delivery_failed(d.id, NOW, "HTTP 503", retry_at=None)
    assert store.purge(NOW - timedelta(days=90), 10) == Removed(
        conversations=1, messages=1, message_originals=1, outbox=1)


def test_a_message_for_a_purged_conversation_starts_a_fresh_one(store: SqlStore) -> None:
    _world(store)
    before = store.snapshots("a", ["gone"])["gone"]
    assert before.version == 1
    store.purge(NOW - timedelta(days=90), 100)
    late = ConversationWrite("gone", "chat", before.version, (NewMessage(
        "m3", "chat", "customer", "cust-1", {"text_masked": "x", "category": "neutral",
                                             "level": 0, "intensity": 0.0, "flags": [],
                                             "route": {"queue": "standard", "priority": 3}},
        ConversationState(customer_messages=1), False, NOW),), ConversationState(1))
    with pytest.raises(StaleStateError, match="vanished"):  # the ingestor re-reads, re-judges
        store.write("a", late)
    store.write("a", ConversationWrite("gone", "chat", 0, late.messages, late.state))
    assert store.snapshots("a", ["gone"])["gone"].version == 1
    assert [m.message_id for m in store.transcript("a", "gone").messages] == ["m3"]


def test_the_audit_log_has_its_own_retention(store: SqlStore) -> None:
    _world(store)
    for days, who in ((400, "key-ancient"), (100, "key-old"), (0, "key-new")):
        store.audit("a", AuditEntry(who, "supervisor", "read_original", "gone", "m1",
                                    "granted", NOW - timedelta(days=days)))
    # transcripts only: the audit entries about the purged messages stay (ids, no text)
    keep_audit = load_settings(retention_days=90, audit_retention_days=0)
    assert privacy.purge(store, keep_audit, NOW).audit_log == 0
    assert len(store.audit_entries("a", 10)) == 3
    both = load_settings(retention_days=90, audit_retention_days=365, purge_batch=1)
    assert privacy.preview(store, both, NOW) == Removed(audit_log=1)
    assert privacy.purge(store, both, NOW) == Removed(audit_log=1)
    assert [e.who for e in store.audit_entries("a", 10)] == ["key-new", "key-old"]
    # 0 keeps forever
    forever = load_settings(retention_days=0, audit_retention_days=0)
    store.audit("a", AuditEntry("key-x", "admin", "read_original", "c", "m", "granted",
                                NOW - timedelta(days=5000)))
    assert privacy.preview(store, forever, NOW) == Removed()
    assert privacy.purge(store, forever, NOW) == Removed()


def test_concurrent_purgers_share_the_work(store: SqlStore) -> None:
    """Several workers or instances purge at once: every old row goes exactly once, no
    deadlock, no error (PostgreSQL: SKIP LOCKED batches; SQLite: one writer at a time)."""
    for n in range(24):
        put(store, "a", f"c{n}", Msg("m1", OLD, delivery="delivered", feedback=True),
            Msg("m2", OLD, sealed=False), Msg("m3", NEW if n % 4 == 0 else OLD))
    settings = load_settings(retention_days=90, purge_batch=5)
    expected = privacy.preview(store, settings, NOW)
    assert expected.messages == 24 * 3 - 6 and expected.conversations == 18
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: privacy.purge(store, settings, NOW), range(4)))
    total = sum(results, Removed())
    assert total == expected
    assert privacy.preview(store, settings, NOW) == Removed()
    assert len(_left(store)["messages"]) == 6


# ------------------------------------------------------------------ the CLI


def test_filterd_purge_and_its_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db = f"sqlite:///{tmp_path}/p.db"
    store = SqlStore(db)
    store.upgrade()
    _world(store)
    monkeypatch.setenv("FILTERD_RETENTION_DAYS", "90")
    assert main(["purge", "--dry-run", "--json", "--database-url", db]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry == {"dry_run": True, "removed": EXPECTED.as_dict()}
    assert len(_left(store)["messages"]) == 8  # nothing deleted
    assert main(["purge", "--database-url", db]) == 0
    out, err = capsys.readouterr()
    assert "deleted" in out and "messages" in out and "retention: transcripts 90 days" in err
    assert len(_left(store)["messages"]) == 4
    assert main(["purge", "--json", "--database-url", db]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == Removed().as_dict()
    store.close()


def test_feedback_export_one_tenant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/f.db"
    store = SqlStore(db)
    store.upgrade()
    put(store, "a", "c1", Msg("m1", NEW, feedback=True), marker="alpha")
    put(store, "b", "c1", Msg("m1", NEW, feedback=True), marker="beta")
    store.close()
    out = tmp_path / "fb.jsonl"
    assert main(["feedback", "export", "--out", str(out), "--database-url", db]) == 0
    assert "every tenant" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 2
    assert main(["feedback", "export", "--out", str(out), "--database-url", db,
                 "--tenant", "b"]) == 0
    assert "tenant b" in capsys.readouterr().err
    [line] = out.read_text().splitlines()
    assert json.loads(line)["text"] == "beta text of m1"


# ------------------------------------------------------------------ inside `filterd serve`


class _ThreadRecordingStore(SqlStore):
    """A real store that notes which thread each purge batch ran on."""

    threads: list[str]

    def purge(self, before: datetime, limit: int) -> Removed:
        self.threads.append(threading.current_thread().name)
        return super().purge(before, limit)


async def test_the_service_purges_in_the_background(make_app: Any, tmp_path: Path) -> None:
    store = _ThreadRecordingStore(f"sqlite:///{tmp_path}/bg.db")
    store.threads = []
    store.upgrade()
    _world(store)
    app = make_app(store=store, retention_days=90, purge_interval_seconds=0.05,
                   purge_batch=2)
    async with client(app) as c:
        for _ in range(200):
            if len(await asyncio.to_thread(lambda: _left(store)["messages"])) == 4:
                break
            await asyncio.sleep(0.05)
        assert len(_left(store)["messages"]) == 4
        metrics = (await c.get("/metrics")).text
    for table, n in EXPECTED.as_dict().items():
        assert f'filterd_purged_rows_total{{table="{table}"}} {float(n)}' in metrics
    # every batch ran in a worker thread, never on the event loop's
    assert store.threads and threading.main_thread().name not in store.threads
    store.close()


async def test_the_background_purge_can_be_turned_off(make_app: Any, tmp_path: Path) -> None:
    app = make_app(retention_days=90, purge_interval_seconds=0)
    assert not app.state.purger.enabled
    async with client(app) as c:
        assert (await c.get("/healthz")).status_code == 200
    assert app.state.purger._task is None
