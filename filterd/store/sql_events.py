"""The SQL store's reads for the live event streams (a mixin of
:class:`filterd.store.sql.SqlStore`).

``GET /v1/events`` follows the ``messages`` table rather than an in-process feed, so a stream
sees every tenant's new messages whichever worker or instance stored them (the tail that
drives these reads, and why it rechecks missing pks, is :class:`filterd.events.StoreTail`).
Every read here is a short read transaction on the primary-key index.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.engine import Connection

from filterd.store.base import StoredMessage, TailBatch
from filterd.store.models import messages


class EventsMixin:
    """New messages by primary key, on the host store's transactions."""

    _tx: Callable[..., AbstractContextManager[Connection]]
    _message: Callable[[Row[Any]], StoredMessage]

    def last_message_pk(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(select(func.max(messages.c.id))).scalar() or 0)

    def tail_messages(self, after: int, limit: int, recheck: Sequence[int] = (),
                      tenants: Collection[str] | None = None) -> TailBatch:
        m = messages.c
        with self._tx() as conn:
            # pks and tenants first (every tenant: the tail must know which pks exist to
            # tell a gap from another tenant's message), then only the wanted rows in full
            found: list[tuple[int, str]] = []
            if limit > 0:
                found += [(r.id, r.tenant) for r in conn.execute(
                    select(m.id, m.tenant).where(m.id > after).order_by(m.id).limit(limit))]
            if recheck:
                found += [(r.id, r.tenant) for r in conn.execute(
                    select(m.id, m.tenant).where(m.id.in_(sorted(set(recheck)))))]
            wanted = sorted(pk for pk, t in found if tenants is None or t in tenants)
            rows = conn.execute(select(messages).where(m.id.in_(wanted))
                                .order_by(m.id)).all() if wanted else []
            top = conn.execute(select(func.max(m.id))).scalar()
        return TailBatch(pks=tuple(sorted({pk for pk, _ in found})),
                         messages=tuple(self._message(r) for r in rows), top=int(top or 0))

    def messages_after(self, tenant: str, after: int, limit: int) -> list[StoredMessage]:
        m = messages.c
        with self._tx() as conn:
            rows = conn.execute(select(messages).where(m.tenant == tenant, m.id > after)
                                .order_by(m.id.desc()).limit(limit)).all()
        return [self._message(r) for r in reversed(rows)]
