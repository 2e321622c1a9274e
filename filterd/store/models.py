"""The tables, as SQLAlchemy Core metadata (the migrations create them; tests compare the two).

Times are naive UTC. Only masked, PII-redacted text is stored in the clear:
``messages.text_masked`` and the verdict JSON (which holds ``text_masked`` and span offsets,
never the original). With ``FILTERD_STORE_ORIGINALS`` on, ``message_originals`` holds the
original as a Fernet token (see :mod:`filterd.originals`); ``audit_log`` records who read it.

Tenants (migration 0003): conversations are keyed by ``(tenant, id)`` and messages carry the
tenant too, so two tenants may both have a conversation "c1". ``api_keys`` holds the SHA-256
digest of each API key, never the key (see :mod:`filterd.apikeys`).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Named constraints, so migrations on PostgreSQL and SQLite (batch mode) can refer to them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
ID_LEN = 200  # conversation, message and sender ids
NAME_LEN = 64  # channels, queues, categories
TENANT_LEN = 64
KEY_ID_LEN = 32

conversations = Table(
    "conversations",
    metadata,
    Column("tenant", String(TENANT_LEN), primary_key=True),
    Column("id", String(ID_LEN), primary_key=True),
    Column("channel", String(NAME_LEN), nullable=False),
    Column("messages", Integer, nullable=False),  # every role; the next message's seq
    Column("customer_messages", Integer, nullable=False),
    Column("frustration", Float, nullable=False),
    Column("strikes", Integer, nullable=False),
    Column("escalated", String(NAME_LEN), nullable=True),
    Column("queue", String(NAME_LEN), nullable=True),  # route of the latest customer message
    Column("category", String(NAME_LEN), nullable=True),  # of the latest customer message
    Column("version", Integer, nullable=False),  # optimistic concurrency, +1 per write
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False, index=True),
    Index("ix_conversations_tenant_updated_at", "tenant", "updated_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("tenant", String(TENANT_LEN), nullable=False),
    Column("conversation_id", String(ID_LEN), nullable=False),
    Column("message_id", String(ID_LEN), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("channel", String(NAME_LEN), nullable=False),
    Column("role", String(16), nullable=False),
    Column("sender_id", String(ID_LEN), nullable=False),
    Column("text_masked", Text, nullable=False),
    Column("category", String(NAME_LEN), nullable=False),
    Column("level", Integer, nullable=False),
    Column("intensity", Float, nullable=False),
    Column("flags", JSON, nullable=False),
    Column("queue", String(NAME_LEN), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("escalated_here", Boolean, nullable=False),
    Column("verdict", JSON, nullable=False),
    Column("state_after", JSON, nullable=False),
    Column("meta", JSON, nullable=True),
    Column("sent_at", DateTime, nullable=True),
    Column("received_at", DateTime, nullable=False, index=True),
    Column("hour", Integer, nullable=False),  # whole hours since the epoch, for /v1/stats
    ForeignKeyConstraint(["tenant", "conversation_id"],
                         ["conversations.tenant", "conversations.id"]),
    UniqueConstraint("tenant", "conversation_id", "message_id"),
    Index("ix_messages_tenant_received_at", "tenant", "received_at"),
    Index("ix_messages_tenant_sender_id", "tenant", "sender_id"),  # erasure (0004)
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_pk", BigId, ForeignKey("messages.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # console | alert
    Column("url", Text, nullable=False),
    Column("idempotency_key", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("delivered_at", DateTime, nullable=True),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_pk", BigId, ForeignKey("messages.id"), nullable=False, index=True),
    Column("category", String(NAME_LEN), nullable=False),
    Column("flags", JSON, nullable=False),
    Column("note", Text, nullable=True),
    Column("by", String(ID_LEN), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# One row, rewritten by /readyz to prove the store takes writes.
heartbeat = Table(
    "heartbeat",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("beat_at", DateTime, nullable=False),
)

# Opt-in (FILTERD_STORE_ORIGINALS): the original text, encrypted; never plaintext.
message_originals = Table(
    "message_originals",
    metadata,
    Column("message_pk", BigId, ForeignKey("messages.id"), primary_key=True,
           autoincrement=False),
    Column("sealed", Text, nullable=False),  # a Fernet token
)

# Every attempt to read an original (granted, denied, not found); never the text itself.
# No foreign keys: an attempt on an unknown message is recorded too. Erasures are recorded
# here too (action "erase"); an erased conversation's id is pseudonymised in its entries.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("tenant", String(TENANT_LEN), nullable=False),
    Column("who", String(ID_LEN), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(NAME_LEN), nullable=False),
    Column("conversation_id", String(ID_LEN), nullable=False),
    Column("message_id", String(ID_LEN), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", JSON, nullable=True),  # erase: customer pseudonym and counts (0004)
    Index("ix_audit_log_tenant_id", "tenant", "id"),
    Index("ix_audit_log_tenant_conversation_id", "tenant", "conversation_id"),  # (0004)
)

# API keys: the key is shown once at creation; only its SHA-256 digest is kept.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(KEY_ID_LEN), primary_key=True),  # the public part of the key
    Column("tenant", String(TENANT_LEN), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("name", String(ID_LEN), nullable=True),
    Column("digest", String(64), nullable=False),  # hex SHA-256 of the whole key
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
    Column("last_used_at", DateTime, nullable=True),
)
