"""The SQL store: SQLAlchemy 2 Core on SQLite (WAL, one writer) or PostgreSQL (psycopg 3).

Concurrency: a conversation's state is written with optimistic versioning. ``write`` locks
the conversation row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every write is a
``BEGIN IMMEDIATE`` transaction, so there is one writer at a time), checks the version the
caller judged against, and inserts the messages, the new state and the outbox rows together.
Two concurrent messages of one conversation therefore never lose a strike: the loser gets
:class:`StaleStateError` and re-judges against the winner's state.

Every data method is scoped to one tenant (see :mod:`filterd.store.base`): conversations are
looked up by ``(tenant, id)`` and messages by ``(tenant, conversation_id, message_id)``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    Engine,
    Row,
    bindparam,
    create_engine,
    event,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from filterd.errors import ConflictError, NotFoundError, StaleStateError, StoreError
from filterd.route.conversation import ConversationState
from filterd.store.base import (
    ConversationQuery,
    ConversationSummary,
    ConversationWrite,
    Delivery,
    Feedback,
    FeedbackExample,
    FeedbackIn,
    NewMessage,
    Snapshot,
    StoredMessage,
    Transcript,
    utcnow,
)
from filterd.store.models import (
    conversations,
    feedback,
    heartbeat,
    message_originals,
    messages,
    outbox,
)
from filterd.store.sql_audit import AuditMixin
from filterd.store.sql_events import EventsMixin  # live event streams (GET /v1/events)
from filterd.store.sql_keys import KeysMixin
from filterd.store.sql_privacy import PrivacyMixin
from filterd.store.sql_stats import StatsMixin, epoch_hour

MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "filterd_write"  # execution option: this transaction writes


log = logging.getLogger("filterd.store")

def engine_url(url: str) -> str:
    """``postgresql://`` URLs use psycopg 3 (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _state(d: Mapping[Any, Any]) -> ConversationState:
    return ConversationState(
        customer_messages=int(d["customer_messages"]),
        frustration=float(d["frustration"]),
        strikes=int(d["strikes"]),
        escalated=d.get("escalated"),
    )


def _setup_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we BEGIN ourselves (pysqlite's own is broken)
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                       f"busy_timeout={busy_timeout_ms}"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A writer takes the write lock up front, so its reads (version checks) cannot go
        # stale before its writes; readers stay deferred and run beside it under WAL.
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class SqlStore(AuditMixin, StatsMixin, KeysMixin, PrivacyMixin, EventsMixin):
    """:class:`filterd.store.base.Store` on a database URL."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5_000) -> None:
        """``busy_timeout_ms``: how long a SQLite writer waits for the lock before the
        request fails with a 503 (a short wait keeps a locked store from tying up every
        worker thread)."""
        sa_url = make_url(engine_url(url))
        self.dialect = sa_url.get_backend_name()
        if self.dialect == "sqlite":
            memory = sa_url.database in (None, "", ":memory:")
            engine = create_engine(
                sa_url,
                connect_args={"check_same_thread": False,
                              "timeout": busy_timeout_ms / 1000},
                **({"poolclass": StaticPool} if memory else {"pool_size": 8, "max_overflow": 24}),
            )
            _setup_sqlite(engine, busy_timeout_ms)
        else:
            engine = create_engine(sa_url, pool_pre_ping=True, pool_size=8, max_overflow=24)
        self._engine = engine
        self._writer = engine.execution_options(**{_WRITE: True})

    @property
    def url(self) -> str:
        """The URL with any password hidden (safe to log)."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()

    @contextlib.contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        try:
            with (self._writer if write else self._engine).begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except DBAPIError as e:  # the statement is not echoed: it may hold message data
            raise self._store_error(e) from e

    def _store_error(self, e: DBAPIError) -> StoreError:
        """What API callers are told: the kind of failure and to retry; never the URL or
        the statement (the URL, password hidden, goes to the log only)."""
        why = str(e.orig).lower() if e.orig is not None else ""
        if "locked" in why or "lock timeout" in why:
            kind = "is locked by another writer"
        elif "full" in why or "no space" in why:
            kind = "is out of disk space"
        elif "disk i/o" in why:
            kind = "cannot write to its disk"
        elif "connect" in why:
            kind = "cannot be reached"
        else:
            kind = "failed"
        log.error("store %s (%s) at %s", kind, type(e.orig).__name__, self.url)
        return StoreError(f"The message store {kind}; nothing was written. Retry shortly.")

    # ------------------------------------------------------------------ schema

    def upgrade(self) -> None:
        self.migrate("upgrade", "head")

    def migrate(self, step: Literal["upgrade", "downgrade"], revision: str) -> None:
        """Run Alembic's ``step`` to ``revision`` in one transaction.

        SQLite alters a table by copying it, which leaves foreign keys dangling for a moment,
        and it cannot defer that check across the copy; so on SQLite foreign keys are off
        while migrating (a pragma that only works outside a transaction) and every key is
        checked before the commit.
        """
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        sqlite = self.dialect == "sqlite"
        try:
            with self._writer.connect() as conn:
                raw = conn.connection.dbapi_connection
                if sqlite and raw is not None:
                    raw.execute("PRAGMA foreign_keys=OFF")
                try:
                    with conn.begin():
                        if self.dialect == "postgresql":  # two replicas starting: one migrates
                            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7262917)")
                        cfg.attributes["connection"] = conn
                        getattr(command, step)(cfg, revision)
                        if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                            raise StoreError("The migration left rows whose foreign keys "
                                             f"point nowhere, at {self.url}; nothing was "
                                             "changed. Report it.")
                finally:
                    if sqlite and raw is not None:
                        raw.execute("PRAGMA foreign_keys=ON")
        except DBAPIError as e:
            raise StoreError(f"The database failed ({type(e.orig).__name__}) at "
                             f"{self.url} while migrating.") from e

    def ping(self) -> None:
        now = utcnow()
        try:
            with self._tx(write=True) as conn:
                done = conn.execute(update(heartbeat).where(heartbeat.c.id == 1)
                                    .values(beat_at=now)).rowcount
                if not done:
                    conn.execute(insert(heartbeat).values(id=1, beat_at=now))
        except IntegrityError:
            pass  # a concurrent ping inserted the row: the store took a write

    # ------------------------------------------------------------------ messages

    @staticmethod
    def _message(row: Row[Any]) -> StoredMessage:
        return StoredMessage(
            pk=row.id, conversation_id=row.conversation_id, message_id=row.message_id,
            seq=row.seq, channel=row.channel, role=row.role, sender_id=row.sender_id,
            verdict=row.verdict, state_after=_state(row.state_after),
            received_at=row.received_at, sent_at=row.sent_at, tenant=row.tenant,
        )

    @staticmethod
    def _summary(row: Row[Any]) -> ConversationSummary:
        return ConversationSummary(
            id=row.id, channel=row.channel, state=_state(row._mapping), queue=row.queue,
            category=row.category, messages=row.messages, created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def find_messages(
        self, tenant: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredMessage]:
        """The duplicate check of every ingest pass.

        Written as two plain IN lists (filtered to the wanted pairs here), not a row-value
        ``(conversation_id, message_id) IN (...)``: SQLite plans the row-value form as a scan
        of the tenant's messages (21 ms at 60,000 rows and growing: the soak's latency rose
        from 7 to 55 ms p50 after ~36,000 messages), the plain form as lookups in the
        unique index (0.02 ms). The extra rows the two lists can match are few and dropped.
        """
        wanted = set(keys)
        if not wanted:
            return {}
        m = messages.c
        with self._tx() as conn:
            rows = conn.execute(select(messages).where(
                m.tenant == tenant, m.conversation_id.in_(sorted({c for c, _ in wanted})),
                m.message_id.in_(sorted({i for _, i in wanted})))).all()
        return {(r.conversation_id, r.message_id): self._message(r) for r in rows
                if (r.conversation_id, r.message_id) in wanted}

    def snapshots(self, tenant: str, conversation_ids: Sequence[str]) -> dict[str, Snapshot]:
        out = {cid: Snapshot() for cid in conversation_ids}
        if conversation_ids:
            c = conversations.c
            with self._tx() as conn:
                rows = conn.execute(select(conversations).where(
                    c.tenant == tenant, c.id.in_(list(set(conversation_ids))))).all()
            for r in rows:
                out[r.id] = Snapshot(_state(r._mapping), r.version)
        return out

    def write(self, tenant: str, write: ConversationWrite) -> list[StoredMessage]:
        return self.write_many(tenant, [write])[0]

    def write_many(self, tenant: str, writes: Sequence[ConversationWrite]
                   ) -> list[list[StoredMessage]]:
        """Several conversations' writes in one transaction, all or nothing: a stale or raced
        conversation (StaleStateError, naming it) rolls every one of them back.

        One statement per kind for the whole group (the conversations' rows read and locked
        at once, the messages and outbox rows inserted as one ``executemany``, one
        parameterised UPDATE) instead of five per conversation: a coalesced pass mostly
        holds messages of as many conversations as messages (speed, issue 5)."""
        if len({w.conversation_id for w in writes}) != len(writes):
            raise ValueError("write_many takes one write per conversation")
        c = conversations.c
        nows = [max(m.received_at for m in w.messages) for w in writes]  # updated_at etc.
        try:
            with self._tx(write=True) as conn:
                # Locks in one order (existing rows by id, then new rows by id), so two
                # passes over the same conversations queue behind each other instead of
                # deadlocking on PostgreSQL; a new row both insert is a unique violation
                # for the second, which is then stale like any other race.
                found = {r.id: r for r in conn.execute(
                    select(c.id, c.version, c.messages, c.queue, c.category)
                    .where(c.tenant == tenant, c.id.in_([w.conversation_id for w in writes]))
                    .order_by(c.id).with_for_update())}
                heads: list[tuple[int, str | None, str | None]] = []  # seq0, queue, category
                fresh = []
                for w, now in zip(writes, nows, strict=True):
                    row = found.get(w.conversation_id)
                    if row is None:
                        if w.expected_version != 0:
                            raise StaleStateError(f"conversation {w.conversation_id!r} vanished")
                        fresh.append(dict(
                            tenant=tenant, id=w.conversation_id, channel=w.channel, messages=0,
                            customer_messages=0, frustration=0.0, strikes=0, version=0,
                            created_at=now, updated_at=now))
                        heads.append((0, None, None))
                    elif row.version != w.expected_version:
                        raise StaleStateError(f"conversation {w.conversation_id!r} changed")
                    else:
                        heads.append((row.messages, row.queue, row.category))
                if fresh:
                    conn.execute(insert(conversations), sorted(fresh, key=lambda r: str(r["id"])))
                rows = [self._message_row(tenant, w, n, m) for w, (seq0, _, _) in
                        zip(writes, heads, strict=True)
                        for n, m in enumerate(w.messages, seq0 + 1)]
                pks: list[int] = list(conn.execute(insert(messages).returning(
                    messages.c.id, sort_by_parameter_order=True), rows).scalars().all())
                conn.execute(update(conversations).where(
                    c.tenant == tenant, c.id == bindparam("b_id")).values(
                    messages=bindparam("b_messages"),
                    customer_messages=bindparam("b_customer_messages"),
                    frustration=bindparam("b_frustration"), strikes=bindparam("b_strikes"),
                    escalated=bindparam("b_escalated"), queue=bindparam("b_queue"),
                    category=bindparam("b_category"), version=bindparam("b_version"),
                    updated_at=bindparam("b_updated_at")),
                    [self._conversation_row(w, head, now) for w, head, now in
                     zip(writes, heads, nows, strict=True)])
                pk_of = {(w.conversation_id, m.message_id): pk for (w, m), pk in zip(
                    ((w, m) for w in writes for m in w.messages), pks, strict=True)}
                sealed = [dict(message_pk=pk_of[(w.conversation_id, m.message_id)],
                               sealed=m.sealed_original)
                          for w in writes for m in w.messages if m.sealed_original is not None]
                if sealed:
                    conn.execute(insert(message_originals), sealed)
                due = [dict(message_pk=pk_of[(w.conversation_id, d.message_id)], kind=d.kind,
                            url=d.url, idempotency_key=d.idempotency_key, payload=d.payload,
                            status="pending", attempts=0, next_attempt_at=now,
                            created_at=now, updated_at=now)
                       for w, now in zip(writes, nows, strict=True) for d in w.deliveries]
                if due:
                    conn.execute(insert(outbox), due)
        except IntegrityError as e:  # a message id or a new conversation raced us
            names = ", ".join(repr(w.conversation_id) for w in writes)
            raise StaleStateError(f"conversation {names} raced") from e
        out: list[list[StoredMessage]] = []
        it = iter(pks)
        for w, (seq0, _, _) in zip(writes, heads, strict=True):
            out.append([StoredMessage(
                pk=next(it), conversation_id=w.conversation_id, message_id=m.message_id,
                seq=n, channel=m.channel, role=m.role, sender_id=m.sender_id,
                verdict=m.verdict, state_after=m.state_after, received_at=m.received_at,
                sent_at=m.sent_at, tenant=tenant,
            ) for n, m in enumerate(w.messages, seq0 + 1)])
        return out

    @staticmethod
    def _message_row(tenant: str, w: ConversationWrite, n: int, m: NewMessage
                     ) -> dict[str, Any]:
        v = m.verdict
        return dict(
            tenant=tenant, conversation_id=w.conversation_id, message_id=m.message_id, seq=n,
            channel=m.channel, role=m.role, sender_id=m.sender_id,
            text_masked=v["text_masked"], category=v["category"], level=v["level"],
            intensity=v["intensity"], flags=v["flags"], queue=v["route"]["queue"],
            priority=v["route"]["priority"], escalated_here=m.escalated_here,
            verdict=v, state_after=m.state_after.as_dict(), meta=m.meta,
            sent_at=m.sent_at, received_at=m.received_at, hour=epoch_hour(m.received_at))

    @staticmethod
    def _conversation_row(w: ConversationWrite, head: tuple[int, str | None, str | None],
                          now: datetime) -> dict[str, Any]:
        """The conversation's new state: the queue and category of its last customer
        message (agent and bot messages leave them)."""
        seq0, queue, category = head
        for m in w.messages:
            if m.role == "customer":
                queue, category = m.verdict["route"]["queue"], m.verdict["category"]
        st = w.state
        return dict(b_id=w.conversation_id, b_messages=seq0 + len(w.messages),
                    b_customer_messages=st.customer_messages, b_frustration=st.frustration,
                    b_strikes=st.strikes, b_escalated=st.escalated, b_queue=queue,
                    b_category=category, b_version=w.expected_version + 1,
                    b_updated_at=now)

    def transcript(self, tenant: str, conversation_id: str) -> Transcript:
        c, m = conversations.c, messages.c
        with self._tx() as conn:
            row = conn.execute(select(conversations)
                               .where(c.tenant == tenant, c.id == conversation_id)).first()
            if row is None:
                raise NotFoundError("conversation", conversation_id)
            rows = conn.execute(select(messages).where(
                m.tenant == tenant, m.conversation_id == conversation_id).order_by(m.seq)).all()
        return Transcript(self._summary(row), tuple(self._message(r) for r in rows))

    def conversations(self, tenant: str, query: ConversationQuery
                      ) -> list[ConversationSummary]:
        c = conversations.c
        stmt = select(conversations).where(c.tenant == tenant)
        if query.queue:
            stmt = stmt.where(c.queue == query.queue)
        if query.category:
            stmt = stmt.where(exists().where(
                messages.c.tenant == c.tenant, messages.c.conversation_id == c.id,
                messages.c.role == "customer", messages.c.category == query.category))
        if query.since:
            stmt = stmt.where(c.updated_at >= query.since)
        stmt = stmt.order_by(c.updated_at.desc(), c.id.desc()).limit(query.limit)
        with self._tx() as conn:
            return [self._summary(r) for r in conn.execute(stmt).all()]

    # ------------------------------------------------------------------ feedback

    def add_feedback(self, tenant: str, fb: FeedbackIn, now: datetime) -> Feedback:
        m = messages.c
        with self._tx(write=True) as conn:
            pk = conn.execute(select(m.id).where(
                m.tenant == tenant, m.conversation_id == fb.conversation_id,
                m.message_id == fb.message_id)).scalar()
            if pk is None:
                raise NotFoundError("message", f"{fb.conversation_id}/{fb.message_id}")
            fid = conn.execute(insert(feedback).returning(feedback.c.id).values(
                message_pk=pk, category=fb.category, flags=list(fb.flags), note=fb.note,
                by=fb.by, created_at=now)).scalar_one()
        return Feedback(fid, fb.conversation_id, fb.message_id, fb.category, fb.flags, fb.by,
                        fb.note, now)

    def feedback_examples(self, tenant: str | None = None) -> Iterator[FeedbackExample]:
        stmt = (select(feedback.c.message_pk, feedback.c.category, feedback.c.flags,
                       messages.c.text_masked)
                .join(messages, messages.c.id == feedback.c.message_pk)
                .order_by(feedback.c.id))
        if tenant is not None:
            stmt = stmt.where(messages.c.tenant == tenant)
        newest: dict[int, FeedbackExample] = {}
        with self._tx() as conn:
            for r in conn.execute(stmt):
                newest[r.message_pk] = FeedbackExample(r.text_masked, r.category,
                                                       tuple(r.flags))
        for pk in sorted(newest):
            yield newest[pk]

    # ------------------------------------------------------------------ outbox

    _delivery_cols = (outbox, messages.c.conversation_id, messages.c.message_id,
                      messages.c.tenant)

    @staticmethod
    def _delivery(r: Row[Any]) -> Delivery:
        return Delivery(
            id=r.id, conversation_id=r.conversation_id, message_id=r.message_id, kind=r.kind,
            url=r.url, idempotency_key=r.idempotency_key, payload=r.payload, status=r.status,
            attempts=r.attempts, next_attempt_at=r.next_attempt_at, last_error=r.last_error,
            created_at=r.created_at, updated_at=r.updated_at, tenant=r.tenant,
        )

    def _deliveries(self) -> Any:
        return select(*self._delivery_cols).join(messages, messages.c.id == outbox.c.message_pk)

    def claim_deliveries(self, now: datetime, limit: int, lease_seconds: float) -> list[Delivery]:
        o = outbox.c
        with self._tx(write=True) as conn:
            rows = conn.execute(
                self._deliveries().where(o.status == "pending", o.next_attempt_at <= now)
                .order_by(o.next_attempt_at, o.id).limit(limit)
                .with_for_update(skip_locked=True, of=outbox)).all()
            if rows:
                conn.execute(update(outbox).where(o.id.in_([r.id for r in rows])).values(
                    next_attempt_at=now + timedelta(seconds=lease_seconds), updated_at=now))
        return [self._delivery(r) for r in rows]

    def delivery_succeeded(self, delivery_id: int, now: datetime) -> None:
        self.deliveries_succeeded([delivery_id], now)

    def deliveries_succeeded(self, delivery_ids: Sequence[int], now: datetime) -> None:
        if not delivery_ids:
            return
        with self._tx(write=True) as conn:
            conn.execute(update(outbox).where(outbox.c.id.in_(list(delivery_ids))).values(
                status="delivered", attempts=outbox.c.attempts + 1, delivered_at=now,
                updated_at=now, last_error=None))

    def delivery_failed(self, delivery_id: int, now: datetime, error: str,
                        retry_at: datetime | None) -> None:
        values: dict[str, Any] = dict(attempts=outbox.c.attempts + 1, last_error=error[:500],
                                      updated_at=now)
        if retry_at is None:
            values["status"] = "dead"
        else:
            values["next_attempt_at"] = retry_at
        with self._tx(write=True) as conn:
            conn.execute(update(outbox).where(outbox.c.id == delivery_id).values(**values))

    def dead_letters(self, tenant: str, limit: int) -> list[Delivery]:
        stmt = (self._deliveries().where(messages.c.tenant == tenant, outbox.c.status == "dead")
                .order_by(outbox.c.updated_at.desc(), outbox.c.id.desc()).limit(limit))
        with self._tx() as conn:
            return [self._delivery(r) for r in conn.execute(stmt).all()]

    def requeue(self, tenant: str, delivery_id: int, now: datetime) -> Delivery:
        o = outbox.c
        with self._tx(write=True) as conn:
            row = conn.execute(self._deliveries().where(o.id == delivery_id,
                                                        messages.c.tenant == tenant)
                               .with_for_update(of=outbox)).first()
            if row is None:
                raise NotFoundError("delivery", delivery_id)
            if row.status != "dead":
                raise ConflictError(f"Delivery {delivery_id} is {row.status}; only dead "
                                    "letters can be retried.")
            conn.execute(update(outbox).where(o.id == delivery_id).values(
                status="pending", attempts=0, next_attempt_at=now, updated_at=now))
            row = conn.execute(self._deliveries().where(o.id == delivery_id)).one()
        return self._delivery(row)

    def outbox_depth(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(select(func.count()).select_from(outbox)
                                    .where(outbox.c.status == "pending")).scalar_one())
