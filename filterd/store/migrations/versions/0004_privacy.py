"""Privacy: indexes for the right to erasure, and the erasure's record in the audit log.

``messages (tenant, sender_id)`` finds a customer's conversations; ``audit_log (tenant,
conversation_id)`` finds the entries whose conversation id an erasure pseudonymises (and
serves ``GET /v1/audit?conversation_id=``). ``audit_log.detail`` (JSON, nullable) holds an
erasure's customer pseudonym and counts. The retention purge needs no new index: it reads
``messages.received_at`` and ``audit_log.at``, both indexed already.

Adding a nullable column and indexes needs no table rebuild, on SQLite either.

Revision ID: 0004
Revises: 0003
Create Date: 2025-03-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_tenant_sender_id", "messages", ["tenant", "sender_id"])
    op.create_index("ix_audit_log_tenant_conversation_id", "audit_log",
                    ["tenant", "conversation_id"])
    with op.batch_alter_table("audit_log") as b:
        b.add_column(sa.Column("detail", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drops the erasure counts (the erase entries themselves stay, as ids and outcomes)."""
    with op.batch_alter_table("audit_log") as b:
        b.drop_column("detail")
    op.drop_index("ix_audit_log_tenant_conversation_id", "audit_log")
    op.drop_index("ix_messages_tenant_sender_id", "messages")
