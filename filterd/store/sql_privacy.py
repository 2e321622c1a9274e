"""The SQL store's retention purge and right to erasure (a mixin of
:class:`filterd.store.sql.SqlStore`); :mod:`filterd.privacy` drives both.

Both delete in batches, one transaction per batch, so a crash leaves every conversation either
whole or gone, and a rerun finishes the job (every batch re-reads what is left: idempotent).
Rows go children first (originals, feedback, outbox -> messages -> conversations), so the
foreign keys hold at every statement.

Concurrency with ingest (``SqlStore.write`` locks the conversation row and checks its
version): a batch locks the conversations it touches (``FOR UPDATE`` on PostgreSQL, in key
order; SQLite has one writer at a time), then reads their messages again. A message committed
before that lock is therefore purged or erased with its conversation; a message whose write
comes after finds the conversation row gone, gets ``StaleStateError`` ("vanished"), and the
ingestor re-judges it against a fresh conversation (version 0): the customer writing again
after an erasure starts a new conversation with a clean state. Several processes may purge at
once: on PostgreSQL each batch takes messages no other purge holds (``SKIP LOCKED``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, false, func, or_, select, update
from sqlalchemy.engine import Connection

from filterd.store.base import AuditEntry, Erasure, Removed, pseudonym
from filterd.store.models import (
    audit_log,
    conversations,
    feedback,
    message_originals,
    messages,
    outbox,
)

# A message whose webhook delivery is still pending outlives the cutoff by at most this much.
PENDING_GRACE = timedelta(days=1)


def _expired(before: datetime, m: Any = messages) -> tuple[Any, ...]:
    """Messages (of ``m``, the table or an alias) the retention purge may take: received
    before the cutoff, and with no delivery still pending, so an at-least-once delivery is
    not cut short (attempts are bounded: while the deliverer runs, a delivery ends delivered
    or dead within the hour). A delivery still pending a day past the cutoff has been
    abandoned (no deliverer, webhook removed from the settings): it no longer holds the
    message back."""
    pending = exists().where(outbox.c.message_pk == m.c.id, outbox.c.status == "pending")
    return (m.c.received_at < before,
            or_(~pending, m.c.received_at < before - PENDING_GRACE))



def _conversation_keys(keys: Sequence[tuple[str, str]]) -> ColumnElement[bool]:
    """``(tenant, id) IN keys`` as one ``tenant = ? AND id IN (...)`` per tenant: SQLite
    plans the row-value form as a scan of every conversation, this as primary-key lookups."""
    by_tenant: dict[str, list[str]] = {}
    for tenant, cid in keys:
        by_tenant.setdefault(tenant, []).append(cid)
    c = conversations.c
    if not by_tenant:
        return false()
    return or_(*(and_(c.tenant == t, c.id.in_(ids)) for t, ids in sorted(by_tenant.items())))

class PrivacyMixin:
    """Retention and erasure, on the host store's transactions."""

    _tx: Callable[..., AbstractContextManager[Connection]]

    # ------------------------------------------------------------------ shared

    @staticmethod
    def _delete_messages(conn: Connection, pks: Sequence[int]) -> Removed:
        """Delete these messages and every row that refers to one of them."""
        if not pks:
            return Removed()
        pks = list(pks)
        orig = conn.execute(delete(message_originals)
                            .where(message_originals.c.message_pk.in_(pks))).rowcount
        fb = conn.execute(delete(feedback).where(feedback.c.message_pk.in_(pks))).rowcount
        out = conn.execute(delete(outbox).where(outbox.c.message_pk.in_(pks))).rowcount
        msgs = conn.execute(delete(messages).where(messages.c.id.in_(pks))).rowcount
        return Removed(messages=msgs, message_originals=orig, feedback=fb, outbox=out)

    @staticmethod
    def _lock_conversations(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
        """Lock these conversation rows, in key order (so two batches cannot deadlock)."""
        c = conversations.c
        conn.execute(select(c.tenant, c.id).where(_conversation_keys(keys))
                     .order_by(c.tenant, c.id).with_for_update()).all()

    # ------------------------------------------------------------------ retention

    def purge(self, before: datetime, limit: int) -> Removed:
        m, c = messages.c, conversations.c
        with self._tx(write=True) as conn:
            rows = conn.execute(
                select(m.id, m.tenant, m.conversation_id).where(*_expired(before))
                .order_by(m.received_at, m.id).limit(limit)
                .with_for_update(skip_locked=True, of=messages)).all()
            if not rows:
                return Removed()
            keys = sorted({(r.tenant, r.conversation_id) for r in rows})
            self._lock_conversations(conn, keys)
            removed = self._delete_messages(conn, [r.id for r in rows])
            has_messages = exists().where(m.tenant == c.tenant, m.conversation_id == c.id)
            gone = conn.execute(delete(conversations).where(
                _conversation_keys(keys), ~has_messages)).rowcount
        return replace(removed, conversations=gone)

    def purge_audit(self, before: datetime, limit: int) -> int:
        a = audit_log.c
        with self._tx(write=True) as conn:
            ids = conn.execute(select(a.id).where(a.at < before).order_by(a.id).limit(limit)
                               .with_for_update(skip_locked=True)).scalars().all()
            if not ids:
                return 0
            return int(conn.execute(delete(audit_log).where(a.id.in_(ids))).rowcount)

    def purge_preview(self, before: datetime | None, audit_before: datetime | None
                      ) -> Removed:
        m, c = messages.c, conversations.c
        with self._tx() as conn:
            audit = 0 if audit_before is None else int(conn.execute(
                select(func.count()).select_from(audit_log)
                .where(audit_log.c.at < audit_before)).scalar_one())
            if before is None:
                return Removed(audit_log=audit)
            e = messages.alias("expired")  # its own FROM: never correlated to the outer query
            expired = select(e.c.id).where(*_expired(before, e))

            def count(table: Any, *where: Any) -> int:
                return int(conn.execute(select(func.count()).select_from(table)
                                        .where(*where)).scalar_one())

            kept = messages.alias("kept")  # a message of the conversation that stays
            kept_msg = exists().where(kept.c.tenant == c.tenant,
                                      kept.c.conversation_id == c.id,
                                      kept.c.id.not_in(expired))
            return Removed(
                messages=count(messages, *_expired(before)),
                message_originals=count(message_originals,
                                        message_originals.c.message_pk.in_(expired)),
                feedback=count(feedback, feedback.c.message_pk.in_(expired)),
                outbox=count(outbox, outbox.c.message_pk.in_(expired)),
                conversations=count(conversations, exists().where(
                    m.tenant == c.tenant, m.conversation_id == c.id, m.id.in_(expired)),
                    ~kept_msg),
                audit_log=audit)

    # ------------------------------------------------------------------ right to erasure

    def erase_customer(self, tenant: str, customer_id: str, entry: AuditEntry,
                       batch: int = 100) -> Erasure:
        total = Removed()
        while True:
            with self._tx(write=True) as conn:
                removed = self._erase_batch(conn, tenant, customer_id, batch)
                total += removed
                if removed.conversations:
                    continue
                # Nothing (more) of this customer: record the erasure in the transaction that
                # saw it complete, so the audit log never claims more than was done.
                detail = {**(entry.detail or {}), "removed": total.as_dict()}
                done = replace(entry, detail=detail)
                aid = conn.execute(audit_log.insert().returning(audit_log.c.id).values(
                    tenant=tenant, at=done.at, who=done.who, role=done.role,
                    action=done.action, conversation_id=done.conversation_id,
                    message_id=done.message_id, outcome=done.outcome,
                    detail=detail)).scalar_one()
                return Erasure(total, replace(done, id=aid))

    def _erase_batch(self, conn: Connection, tenant: str, customer_id: str,
                     batch: int) -> Removed:
        """Up to ``batch`` of the customer's conversations, whole, with every row about them."""
        m, c, a = messages.c, conversations.c, audit_log.c
        cids = conn.execute(
            select(m.conversation_id).where(m.tenant == tenant, m.role == "customer",
                                            m.sender_id == customer_id)
            .distinct().order_by(m.conversation_id).limit(batch)).scalars().all()
        if not cids:
            return Removed()
        self._lock_conversations(conn, [(tenant, cid) for cid in cids])
        pks = conn.execute(select(m.id).where(m.tenant == tenant,
                                              m.conversation_id.in_(cids))).scalars().all()
        removed = self._delete_messages(conn, pks)
        gone = conn.execute(delete(conversations).where(c.tenant == tenant,
                                                        c.id.in_(cids))).rowcount
        # Audit entries about these conversations stay (who read which original, when) but no
        # longer name the conversation: its id becomes a pseudonym.
        renamed = 0
        for cid in cids:
            renamed += conn.execute(update(audit_log).where(
                and_(a.tenant == tenant, a.conversation_id == cid))
                .values(conversation_id=pseudonym(tenant, cid))).rowcount
        return replace(removed, conversations=gone, audit_log=renamed)
