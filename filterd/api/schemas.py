"""Request and response bodies of the HTTP API (pydantic).

Responses carrying a verdict use the field names of shared INTERFACE.md, extended with
``degraded`` (always present) and ``conversation`` (the state the message left behind).
Times are UTC, written with a ``Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from filterd.outbox import public_url
from filterd.store.base import (
    ApiKey,
    AuditEntry,
    Bucket,
    ConversationSummary,
    Delivery,
    Feedback,
    Stats,
    StoredMessage,
    Transcript,
)

# Ids appear in URLs, so no slashes, whitespace, '?' or '#'.
Id = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s/?#]+$")]
# Channel names become metric labels: short, plain.
Channel = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                           pattern=r"^[A-Za-z0-9_.:-]+$")]
CategoryName = Literal["neutral", "frustrated", "abusive"]
FlagName = Literal["threat", "self_harm", "insult", "profanity", "identity_attack",
                   "sexual_harassment", "pii"]
MetaValue = str | int | float | bool | None
_MAX_META_KEYS = 32
_MAX_META_CHARS = 256

# --- valid Unicode (issue 6, hostile input) ---
# JSON may spell half a character ("\ud800"); such a lone surrogate cannot be encoded as
# UTF-8, so the store (and any JSON answer) would fail with a 500. Refused here as a 422.
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_MESSAGE = ("holds a lone UTF-16 surrogate (a '\\ud800'-style escape that is half "
                      "of a character); send valid Unicode text")


def _valid_unicode(v: str) -> str:
    if _SURROGATE.search(v):
        raise ValueError(_SURROGATE_MESSAGE)
    return v


Text = Annotated[str, AfterValidator(_valid_unicode)]
# --- end valid Unicode ---


def _utc(when: datetime | None) -> datetime | None:
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ requests


class SenderIn(_In):
    role: Literal["customer", "agent", "bot"]
    id: Id


class MessageIn(_In):
    """One chat message. ``metadata`` is stored as given: never put customer text in it."""

    conversation_id: Id
    message_id: Id
    channel: Channel
    sender: SenderIn
    text: Text
    sent_at: datetime | None = None
    metadata: dict[str, MetaValue] | None = None

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, v: dict[str, MetaValue] | None) -> dict[str, MetaValue] | None:
        if v is None:
            return v
        if len(v) > _MAX_META_KEYS:
            raise ValueError(f"at most {_MAX_META_KEYS} keys")
        for key, value in v.items():
            if len(key) > 64 or (isinstance(value, str) and len(value) > _MAX_META_CHARS):
                raise ValueError(f"keys up to 64 characters, string values up to "
                                 f"{_MAX_META_CHARS}")
            _valid_unicode(key)
            if isinstance(value, str):
                _valid_unicode(value)
        return v


class BatchIn(_In):
    messages: list[MessageIn]


class FeedbackRequest(_In):
    """An agent's correction: the category (and flags) the message should have had."""

    category: CategoryName
    flags: list[FlagName] = Field(default_factory=list)
    note: Annotated[Text, StringConstraints(max_length=2000)] | None = None
    by: Id


# ------------------------------------------------------------------ verdicts


class SpanOut(BaseModel):
    start: int
    end: int
    kind: str


class RouteOut(BaseModel):
    queue: str
    priority: int
    actions: list[str]
    reason: str


class StateOut(BaseModel):
    customer_messages: int
    frustration: float
    strikes: int
    escalated: str | None


class ConversationStateOut(BaseModel):
    id: str
    customer_messages: int
    frustration: float
    strikes: int
    escalated: str | None


class VerdictOut(BaseModel):
    id: str | None
    category: CategoryName
    scores: dict[str, float]
    flags: list[str]
    flag_scores: dict[str, float]
    intensity: float
    level: int
    text_masked: str
    spans: list[SpanOut]
    route: RouteOut
    degraded: bool = False


class MessageOut(VerdictOut):
    """The verdict, plus the conversation state after this message."""

    conversation: ConversationStateOut


class BatchOut(BaseModel):
    results: list[MessageOut]


# ------------------------------------------------------------------ conversations


class TranscriptMessageOut(BaseModel):
    message_id: str
    seq: int
    role: str
    sender_id: str
    channel: str
    text_masked: str
    category: str
    level: int
    intensity: float
    flags: list[str]
    route: RouteOut
    sent_at: datetime | None
    received_at: datetime

    @classmethod
    def of(cls, m: StoredMessage) -> TranscriptMessageOut:
        v: dict[str, Any] = m.verdict
        return cls(message_id=m.message_id, seq=m.seq, role=m.role, sender_id=m.sender_id,
                   channel=m.channel, text_masked=v["text_masked"], category=v["category"],
                   level=v["level"], intensity=v["intensity"], flags=v["flags"],
                   route=RouteOut(**v["route"]), sent_at=_utc(m.sent_at),
                   received_at=m.received_at.replace(tzinfo=UTC))


class ConversationOut(BaseModel):
    id: str
    channel: str
    queue: str | None  # the route of the latest customer message
    category: str | None  # of the latest customer message
    messages: int
    state: StateOut
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, c: ConversationSummary) -> ConversationOut:
        return cls(id=c.id, channel=c.channel, queue=c.queue, category=c.category,
                   messages=c.messages, state=StateOut.model_validate(c.state.as_dict()),
                   created_at=c.created_at.replace(tzinfo=UTC),
                   updated_at=c.updated_at.replace(tzinfo=UTC))


class TranscriptOut(ConversationOut):
    transcript: list[TranscriptMessageOut]

    @classmethod
    def of_transcript(cls, t: Transcript) -> TranscriptOut:
        base = ConversationOut.of(t.conversation).model_dump()
        return cls(**base, transcript=[TranscriptMessageOut.of(m) for m in t.messages])


class ConversationListOut(BaseModel):
    conversations: list[ConversationOut]


# ------------------------------------------------------------------ feedback, deliveries


class FeedbackOut(BaseModel):
    id: int
    conversation_id: str
    message_id: str
    category: str
    flags: list[str]
    note: str | None
    by: str
    created_at: datetime

    @classmethod
    def of(cls, f: Feedback) -> FeedbackOut:
        return cls(id=f.id, conversation_id=f.conversation_id, message_id=f.message_id,
                   category=f.category, flags=list(f.flags), note=f.note, by=f.by,
                   created_at=f.created_at.replace(tzinfo=UTC))


class DeliveryOut(BaseModel):
    id: int
    conversation_id: str
    message_id: str
    kind: str
    url: str  # without credentials or query string
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(id=d.id, conversation_id=d.conversation_id, message_id=d.message_id,
                   kind=d.kind, url=public_url(d.url), status=d.status, attempts=d.attempts,
                   next_attempt_at=d.next_attempt_at.replace(tzinfo=UTC),
                   last_error=d.last_error, created_at=d.created_at.replace(tzinfo=UTC),
                   updated_at=d.updated_at.replace(tzinfo=UTC))


class DeliveryListOut(BaseModel):
    deliveries: list[DeliveryOut]


# ------------------------------------------------------------------ originals, audit


class OriginalOut(BaseModel):
    """The unmasked text of one message (supervisors only; every read is audited)."""

    conversation_id: str
    message_id: str
    text: str


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    who: str
    role: str
    action: str
    conversation_id: str
    message_id: str
    outcome: str
    detail: dict[str, Any] | None = None  # erase: the customer's pseudonym and the counts

    @classmethod
    def of(cls, e: AuditEntry) -> AuditEntryOut:
        return cls(id=e.id or 0, at=e.at.replace(tzinfo=UTC), who=e.who, role=e.role,
                   action=e.action, conversation_id=e.conversation_id,
                   message_id=e.message_id, outcome=e.outcome, detail=e.detail)


class AuditListOut(BaseModel):
    entries: list[AuditEntryOut]


# ------------------------------------------------------------------ API keys


class KeyIn(_In):
    """A new key of the caller's tenant (``POST /v1/keys``, admin)."""

    role: Literal["ingest", "agent", "supervisor", "admin", "metrics"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class KeyOut(BaseModel):
    """A key as listed: never the key itself (only shown once, when created)."""

    id: str
    tenant: str
    role: str
    name: str | None
    active: bool
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, k: ApiKey) -> KeyOut:
        return cls(id=k.id, tenant=k.tenant, role=k.role, name=k.name, active=k.active,
                   created_at=k.created_at.replace(tzinfo=UTC),
                   revoked_at=_utc(k.revoked_at), last_used_at=_utc(k.last_used_at))


class KeyCreatedOut(KeyOut):
    key: str  # shown this once: only its digest is stored


class KeyListOut(BaseModel):
    keys: list[KeyOut]


class LoginIn(_In):
    """``POST /login``: the key the user pasted, and the page to go to."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    next: Annotated[str, StringConstraints(max_length=200)] | None = None


# ------------------------------------------------------------------ stats


class ChannelOut(BaseModel):
    channel: str
    messages: int
    abusive: int
    frustrated: int


class HourOut(BaseModel):
    hour: str
    messages: int
    abusive: int
    frustrated: int


class PeriodOut(BaseModel):
    start: str
    messages: int
    abusive: int
    frustrated: int
    escalations: int
    queues: dict[str, int]  # route -> customer messages


class StatsOut(BaseModel):
    """Customer messages received in the window (agent and bot messages not counted)."""

    window: str
    bucket: str
    channel: str | None
    since: datetime
    until: datetime
    messages: int
    abusive: int
    frustrated: int
    abuse_rate: float
    frustration_rate: float
    escalations: int  # conversations that reached an urgent queue in the window
    escalations_by_queue: dict[str, int]
    top_channels: list[ChannelOut]
    hourly: list[HourOut]
    series: list[PeriodOut]  # every hour or day (``bucket``) of the window

    @classmethod
    def of(cls, window: str, s: Stats, bucket: str = "hour",
           channel: str | None = None) -> StatsOut:
        def rate(n: int) -> float:
            return round(n / s.messages, 4) if s.messages else 0.0

        def channel_out(b: Bucket) -> ChannelOut:
            return ChannelOut(channel=b.key, messages=b.messages, abusive=b.abusive,
                              frustrated=b.frustrated)

        return cls(window=window, bucket=bucket, channel=channel, since=s.since.replace(tzinfo=UTC),
                   until=s.until.replace(tzinfo=UTC), messages=s.messages, abusive=s.abusive,
                   frustrated=s.frustrated, abuse_rate=rate(s.abusive),
                   frustration_rate=rate(s.frustrated),
                   escalations=sum(s.escalations.values()), escalations_by_queue=s.escalations,
                   top_channels=[channel_out(b) for b in s.channels],
                   hourly=[HourOut(hour=b.key, messages=b.messages, abusive=b.abusive,
                                   frustrated=b.frustrated) for b in s.hourly],
                   series=[PeriodOut(start=p.key, messages=p.messages, abusive=p.abusive,
                                     frustrated=p.frustrated, escalations=p.escalations,
                                     queues=p.queues) for p in s.series])


# ------------------------------------------------------------------ errors


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorBody


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
