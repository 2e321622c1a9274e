"""The SQL store's originals and audit log (a mixin of :class:`filterd.store.sql.SqlStore`).

Originals are written by ``SqlStore.write`` in the message's own transaction; this reads
them back (still encrypted) and keeps the audit trail of every attempt to read one, each
tenant's in its own slice of the log.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from filterd.errors import NotFoundError
from filterd.store.base import AuditEntry
from filterd.store.models import audit_log, message_originals, messages


class AuditMixin:
    """Originals (encrypted) and the audit log, on the host store's transactions."""

    _tx: Callable[..., AbstractContextManager[Connection]]

    def sealed_original(self, tenant: str, conversation_id: str, message_id: str
                        ) -> str | None:
        m = messages.c
        stmt = (select(m.id, message_originals.c.sealed)
                .outerjoin(message_originals, message_originals.c.message_pk == m.id)
                .where(m.tenant == tenant, m.conversation_id == conversation_id,
                       m.message_id == message_id))
        with self._tx() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFoundError("message", f"{conversation_id}/{message_id}")
        return None if row.sealed is None else str(row.sealed)

    def audit(self, tenant: str, entry: AuditEntry) -> AuditEntry:
        with self._tx(write=True) as conn:
            aid = conn.execute(insert(audit_log).returning(audit_log.c.id).values(
                tenant=tenant, at=entry.at, who=entry.who, role=entry.role, action=entry.action,
                conversation_id=entry.conversation_id, message_id=entry.message_id,
                outcome=entry.outcome, detail=entry.detail)).scalar_one()
        return AuditEntry(entry.who, entry.role, entry.action, entry.conversation_id,
                          entry.message_id, entry.outcome, entry.at, id=aid,
                          detail=entry.detail)

    def audit_entries(self, tenant: str, limit: int, conversation_id: str | None = None
                      ) -> list[AuditEntry]:
        a = audit_log.c
        stmt = select(audit_log).where(a.tenant == tenant).order_by(a.id.desc()).limit(limit)
        if conversation_id is not None:
            stmt = stmt.where(a.conversation_id == conversation_id)
        with self._tx() as conn:
            return [AuditEntry(r.who, r.role, r.action, r.conversation_id, r.message_id,
                               r.outcome, r.at, id=r.id, detail=r.detail)
                    for r in conn.execute(stmt)]
