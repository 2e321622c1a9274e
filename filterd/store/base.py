"""What the service keeps, and the ``Store`` protocol that keeps it.

A store is a repository: each method is one call that does one thing atomically. The SQL
implementation is :mod:`filterd.store.sql`; tests run the same suite on SQLite and PostgreSQL.
Records are frozen dataclasses; times are naive UTC (:func:`utcnow`).

Tenants: every conversation, message, correction, delivery and audit entry belongs to one
tenant (the tenant of the API key that sent or read it). Conversation ids are unique per
tenant, so each data method takes the ``tenant`` first and never sees another tenant's rows.
The open service (no API keys) is the tenant :data:`DEFAULT_TENANT`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from filterd.route.conversation import ConversationState

Role = Literal["customer", "agent", "bot"]
KeyRole = Literal["ingest", "agent", "supervisor", "admin", "metrics"]  # an API key's role
KEY_ROLES: tuple[KeyRole, ...] = ("ingest", "agent", "supervisor", "admin", "metrics")
DEFAULT_TENANT = "default"
DeliveryStatus = Literal["pending", "delivered", "dead"]
AuditOutcome = Literal["granted", "denied", "not_found", "done"]  # done: an erasure


def utcnow() -> datetime:
    """Now, as the naive UTC datetime every table stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_utc(when: datetime) -> datetime:
    """A caller's datetime (aware, or naive meaning UTC) as naive UTC."""
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


# ------------------------------------------------------------------ writes


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One judged message, ready to store. ``verdict`` is the INTERFACE.md dict (masked)."""

    message_id: str
    channel: str
    role: Role
    sender_id: str
    verdict: dict[str, Any]
    state_after: ConversationState
    escalated_here: bool
    received_at: datetime
    sent_at: datetime | None = None
    meta: dict[str, Any] | None = None
    sealed_original: str | None = None  # the original text, encrypted (FILTERD_STORE_ORIGINALS)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A webhook call to make once the message it belongs to is committed."""

    message_id: str
    kind: Literal["console", "alert"]
    url: str
    idempotency_key: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConversationWrite:
    """Messages of one conversation, written in one transaction with the state they leave.

    The write fails with :class:`~filterd.errors.StaleStateError` when the conversation's
    version is no longer ``expected_version`` (someone wrote in between) or one of the
    message ids is already stored; the caller then re-reads and re-judges.
    """

    conversation_id: str
    channel: str
    expected_version: int
    messages: tuple[NewMessage, ...]
    state: ConversationState
    deliveries: tuple[NewDelivery, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedbackIn:
    """An agent's correction of one stored message."""

    conversation_id: str
    message_id: str
    category: str
    flags: tuple[str, ...]
    by: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One attempt to read an original: who, as which role, on what, and how it ended."""

    who: str
    role: str
    action: str  # read_original | erase
    conversation_id: str
    message_id: str
    outcome: AuditOutcome
    at: datetime
    id: int | None = None  # set once stored
    detail: dict[str, Any] | None = None  # erase: the customer's pseudonym and the counts


# ------------------------------------------------------------------ privacy (issue 6)


def pseudonym(tenant: str, value: str) -> str:
    """A stable stand-in for an identifier that must no longer be kept in the clear (an
    erased customer's id, an erased conversation's id in the audit log): ``sha256:<hex>``
    of the tenant and the value. Whoever knows the id can still find its entries (to answer
    "was customer X erased?", "who read X's originals?"); nobody can read the id back."""
    digest = hashlib.sha256(f"{tenant}\n{value}".encode()).hexdigest()
    return f"sha256:{digest}"


@dataclass(frozen=True, slots=True)
class Removed:
    """Rows a retention purge or an erasure removed, by table. ``audit_log``: entries deleted
    by the audit retention, or (erasure) entries whose conversation id was pseudonymised."""

    conversations: int = 0
    messages: int = 0
    message_originals: int = 0
    feedback: int = 0
    outbox: int = 0
    audit_log: int = 0

    def __add__(self, other: Removed) -> Removed:
        return Removed(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        return (self.conversations, self.messages, self.message_originals, self.feedback,
                self.outbox, self.audit_log)

    def as_dict(self) -> dict[str, int]:
        """Table name -> rows (the label of ``filterd_purged_rows_total``)."""
        return asdict(self)

    @property
    def total(self) -> int:
        return sum(self.as_tuple())


@dataclass(frozen=True, slots=True)
class Erasure:
    """What ``erase_customer`` did, and the audit entry that records it."""

    removed: Removed
    audit: AuditEntry


# ------------------------------------------------------------------ reads


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A conversation's state as read, with the version a write must still find."""

    state: ConversationState = ConversationState()
    version: int = 0  # 0: the conversation does not exist yet


@dataclass(frozen=True, slots=True)
class StoredMessage:
    pk: int
    conversation_id: str
    message_id: str
    seq: int
    channel: str
    role: Role
    sender_id: str
    verdict: dict[str, Any]
    state_after: ConversationState
    received_at: datetime
    sent_at: datetime | None = None
    tenant: str = DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class TailBatch:
    """What one look at the messages table found, for the live event streams (see
    :class:`filterd.events.StoreTail`)."""

    pks: tuple[int, ...]  # every tenant's pks found (new and rechecked), ascending
    messages: tuple[StoredMessage, ...]  # the rows of those pks in the wanted tenants, by pk
    top: int  # the highest pk in the table now (0: empty)


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    id: str
    channel: str
    state: ConversationState
    queue: str | None
    category: str | None
    messages: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Transcript:
    conversation: ConversationSummary
    messages: tuple[StoredMessage, ...]


@dataclass(frozen=True, slots=True)
class ConversationQuery:
    """``queue``: the conversation's current queue; ``category``: any customer message's."""

    queue: str | None = None
    category: str | None = None
    since: datetime | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Feedback:
    id: int
    conversation_id: str
    message_id: str
    category: str
    flags: tuple[str, ...]
    by: str
    note: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FeedbackExample:
    """One line of ``filterd feedback export``: what ``filterd train --feedback`` reads."""

    text: str  # masked
    category: str
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    conversation_id: str
    message_id: str
    kind: str
    url: str
    idempotency_key: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    tenant: str = DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key as stored: never the key itself, only its SHA-256 ``digest``.

    ``id`` is the public part of the key (``fd_<id>_<secret>``): it names the key in logs,
    the audit log and ``filterd keys list``.
    """

    id: str
    tenant: str
    role: KeyRole
    name: str | None
    digest: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Bucket:
    """Customer messages in one channel or one hour."""

    key: str
    messages: int
    abusive: int
    frustrated: int


@dataclass(frozen=True, slots=True)
class Period:
    """Customer messages received in one hour or day, with escalations and routes."""

    key: str  # the period's ISO start
    messages: int
    abusive: int
    frustrated: int
    escalations: int  # messages that escalated their conversation
    queues: dict[str, int] = field(default_factory=dict)  # route -> messages


@dataclass(frozen=True, slots=True)
class Offender:
    """A customer (sender id) by abusive messages in a window."""

    sender_id: str
    abusive: int
    messages: int
    conversations: int


StatsBucket = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class Stats:
    since: datetime
    until: datetime
    messages: int
    abusive: int
    frustrated: int
    escalations: dict[str, int] = field(default_factory=dict)  # queue -> conversations
    channels: tuple[Bucket, ...] = ()  # most messages first
    hourly: tuple[Bucket, ...] = ()  # key: the hour's ISO start, every hour of the window
    series: tuple[Period, ...] = ()  # every hour or day of the window (``bucket``)


# ------------------------------------------------------------------ the protocol


class Store(Protocol):
    """Where conversations, messages, feedback and the delivery outbox live."""

    def upgrade(self) -> None:
        """Bring the schema to the newest migration."""

    def ping(self) -> None:
        """Write a heartbeat; raise :class:`~filterd.errors.StoreError` if that fails."""

    def close(self) -> None:
        """Release connections."""

    # messages and conversations (all of one tenant)
    def find_messages(self, tenant: str, keys: Sequence[tuple[str, str]]
                      ) -> dict[tuple[str, str], StoredMessage]:
        """Stored messages among these ``(conversation_id, message_id)`` keys."""

    def snapshots(self, tenant: str, conversation_ids: Sequence[str]) -> dict[str, Snapshot]:
        """Current state and version of each conversation (absent ones: a fresh snapshot)."""

    def write(self, tenant: str, write: ConversationWrite) -> list[StoredMessage]:
        """Store messages, state and outbox rows in one transaction (see ConversationWrite)."""

    def write_many(self, tenant: str, writes: Sequence[ConversationWrite]
                   ) -> list[list[StoredMessage]]:
        """Several conversations' writes (one each) in one transaction, all or nothing:
        StaleStateError if any of them is stale or raced."""

    def transcript(self, tenant: str, conversation_id: str) -> Transcript:
        """One conversation, its messages in order; NotFoundError if unknown."""

    def conversations(self, tenant: str, query: ConversationQuery
                      ) -> list[ConversationSummary]:
        """Conversations matching the query, most recently updated first."""

    # live event streams (GET /v1/events; every tenant's rows, read by each worker's tail)
    def last_message_pk(self) -> int:
        """The highest message pk (0 when there is none): where a new tail starts."""

    def tail_messages(self, after: int, limit: int, recheck: Sequence[int] = (),
                      tenants: Collection[str] | None = None) -> TailBatch:
        """Every tenant's pks above ``after`` (the lowest ``limit``) and those of ``recheck``
        that exist now, with the rows among them of ``tenants`` (None: every tenant)."""

    def messages_after(self, tenant: str, after: int, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages of ``tenant`` with a pk above ``after``, by pk."""

    # feedback
    def add_feedback(self, tenant: str, feedback: FeedbackIn, now: datetime) -> Feedback:
        """Store a correction; NotFoundError if the message is unknown."""

    def feedback_examples(self, tenant: str | None = None) -> Iterator[FeedbackExample]:
        """The newest correction of every corrected message of ``tenant`` (None: every
        tenant), oldest first."""

    # the outbox: the deliverer works for every tenant; the API reads one tenant's letters
    def claim_deliveries(self, now: datetime, limit: int, lease_seconds: float) -> list[Delivery]:
        """Take up to ``limit`` due deliveries, hiding them from other workers for the lease."""

    def delivery_succeeded(self, delivery_id: int, now: datetime) -> None: ...

    def deliveries_succeeded(self, delivery_ids: Sequence[int], now: datetime) -> None:
        """Record many delivered rows in one transaction (one write per delivery round)."""

    def delivery_failed(self, delivery_id: int, now: datetime, error: str,
                        retry_at: datetime | None) -> None:
        """Record a failed attempt; ``retry_at`` None makes it a dead letter."""

    def dead_letters(self, tenant: str, limit: int) -> list[Delivery]: ...

    def requeue(self, tenant: str, delivery_id: int, now: datetime) -> Delivery:
        """Make a dead letter due again; NotFoundError / ConflictError if it cannot be."""

    def outbox_depth(self) -> int:
        """Deliveries not yet delivered nor dead (every tenant)."""

    # originals and their audit trail
    def sealed_original(self, tenant: str, conversation_id: str, message_id: str
                        ) -> str | None:
        """A message's encrypted original; None if not kept; NotFoundError if unknown."""

    def audit(self, tenant: str, entry: AuditEntry) -> AuditEntry:
        """Append one entry to the audit log; the stored entry (with its id) comes back."""

    def audit_entries(self, tenant: str, limit: int, conversation_id: str | None = None
                      ) -> list[AuditEntry]:
        """Audit entries, newest first."""

    # stats
    def stats(self, tenant: str, since: datetime, until: datetime, *,
              channel: str | None = None, bucket: StatsBucket = "hour") -> Stats:
        """Customer-message figures for ``[since, until)``, of one channel if given."""

    def offenders(self, tenant: str, since: datetime, until: datetime, limit: int
                  ) -> list[Offender]:
        """Customers with abusive messages in ``[since, until)``, the most abusive first."""

    # API keys (``filterd keys``; the service reads them through a short cache)
    def add_api_key(self, key: ApiKey) -> None:
        """Store a new key (its digest only); ConflictError if the id is taken."""

    def api_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not; None if unknown."""

    def api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Keys of one tenant (None: every tenant), oldest first."""

    def revoke_api_key(self, key_id: str, now: datetime, tenant: str | None = None) -> ApiKey:
        """Revoke a key (of ``tenant`` if given); NotFoundError if unknown. Idempotent."""

    def has_api_keys(self) -> bool:
        """Whether any key was ever created (revoked ones count: see filterd.api.access)."""

    def touch_api_key(self, key_id: str, now: datetime) -> None:
        """Record that the key was used (``last_used_at``)."""

    # privacy (issue 6): retention and the right to erasure (filterd.privacy drives them)
    def purge(self, before: datetime, limit: int) -> Removed:
        """One batch, one transaction: delete up to ``limit`` messages of every tenant received
        before ``before``, with their originals, feedback and outbox rows, and the
        conversations left without messages. A message with a pending delivery is kept until
        the delivery ends (delivered or dead), at most a day past the cutoff. Several
        processes may purge at once."""

    def purge_audit(self, before: datetime, limit: int) -> int:
        """One batch: delete up to ``limit`` audit entries (every tenant) older than ``before``."""

    def purge_preview(self, before: datetime | None, audit_before: datetime | None
                      ) -> Removed:
        """What purging everything before these cutoffs would delete now (None: nothing)."""

    def erase_customer(self, tenant: str, customer_id: str, entry: AuditEntry,
                       batch: int = 100) -> Erasure:
        """Delete every conversation of ``tenant`` in which ``customer_id`` sent a message
        (role customer), with all its messages, originals, feedback and outbox rows (pending
        ones too), and pseudonymise those conversations' ids in the audit log; ``batch``
        conversations per transaction. Then record ``entry`` (its ``detail`` gets the counts)
        in the transaction that finds nothing left. Idempotent: a second call removes 0."""
