"""Tenants and hashed API keys.

Conversations are keyed by ``(tenant, id)``; messages and audit entries carry the tenant;
existing rows become the tenant ``default`` (the open service's tenant). ``api_keys`` holds
one row per key with the SHA-256 digest of the key, never the key.

On SQLite every step is a batch (the table is copied), run with foreign keys off and checked
before commit (see ``SqlStore.migrate``).

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TENANT = sa.String(64)  # a frozen copy of models.TENANT_LEN
_DEFAULT = "default"


def _tenant_column() -> sa.Column[str]:
    # The server default fills the existing rows; it is dropped again right after, so a
    # write that forgets the tenant fails instead of landing in the default tenant.
    return sa.Column("tenant", _TENANT, nullable=False, server_default=_DEFAULT)


def _sqlite_foreign_keys_off() -> None:
    """SQLite rebuilds a table to alter it, which leaves references dangling for a moment;
    it cannot defer that check across a rebuild, so foreign keys must be off (outside the
    transaction): ``SqlStore.migrate`` does that and checks every key before commit."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("Migration 0003 rebuilds SQLite tables: run it with `filterd db "
                           "upgrade` (foreign keys off, checked before commit).")


def upgrade() -> None:
    _sqlite_foreign_keys_off()
    # 1. messages lets go of conversations.id (PostgreSQL: before that key changes)
    with op.batch_alter_table("messages") as b:
        b.drop_constraint("fk_messages_conversation_id_conversations", type_="foreignkey")
        b.drop_constraint("uq_messages_conversation_id_message_id", type_="unique")
        b.add_column(_tenant_column())
    # 2. conversations: keyed by (tenant, id)
    with op.batch_alter_table("conversations") as b:
        b.add_column(_tenant_column())
        b.drop_constraint("pk_conversations", type_="primary")
        b.create_primary_key("pk_conversations", ["tenant", "id"])
    with op.batch_alter_table("conversations") as b:
        b.alter_column("tenant", existing_type=_TENANT, existing_nullable=False,
                       server_default=None)
    op.create_index("ix_conversations_tenant_updated_at", "conversations",
                    ["tenant", "updated_at"])
    # 3. messages: unique and referring per tenant
    with op.batch_alter_table("messages") as b:
        b.alter_column("tenant", existing_type=_TENANT, existing_nullable=False,
                       server_default=None)
        b.create_unique_constraint("uq_messages_tenant_conversation_id_message_id",
                                   ["tenant", "conversation_id", "message_id"])
        b.create_foreign_key("fk_messages_tenant_conversations", "conversations",
                             ["tenant", "conversation_id"], ["tenant", "id"])
    op.create_index("ix_messages_tenant_received_at", "messages", ["tenant", "received_at"])
    # 4. the audit log
    with op.batch_alter_table("audit_log") as b:
        b.add_column(_tenant_column())
    with op.batch_alter_table("audit_log") as b:
        b.alter_column("tenant", existing_type=_TENANT, existing_nullable=False,
                       server_default=None)
    op.create_index("ix_audit_log_tenant_id", "audit_log", ["tenant", "id"])
    # 5. API keys
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant", _TENANT, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])


def downgrade() -> None:
    """Back to one tenant: refused while another tenant holds data (ids could collide)."""
    others = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM conversations WHERE tenant <> :t"), {"t": _DEFAULT}).scalar()
    if others:
        raise RuntimeError(f"{others} conversation(s) belong to tenants other than "
                           f"{_DEFAULT!r}; migration 0003 cannot be undone without losing "
                           "them. Export or delete them first.")
    _sqlite_foreign_keys_off()
    op.drop_table("api_keys")
    op.drop_index("ix_audit_log_tenant_id", "audit_log")
    with op.batch_alter_table("audit_log") as b:
        b.drop_column("tenant")
    op.drop_index("ix_messages_tenant_received_at", "messages")
    with op.batch_alter_table("messages") as b:
        b.drop_constraint("fk_messages_tenant_conversations", type_="foreignkey")
        b.drop_constraint("uq_messages_tenant_conversation_id_message_id", type_="unique")
    op.drop_index("ix_conversations_tenant_updated_at", "conversations")
    with op.batch_alter_table("conversations") as b:
        b.drop_constraint("pk_conversations", type_="primary")
        b.create_primary_key("pk_conversations", ["id"])
    with op.batch_alter_table("conversations") as b:
        b.drop_column("tenant")
    with op.batch_alter_table("messages") as b:
        b.drop_column("tenant")
        b.create_unique_constraint("uq_messages_conversation_id_message_id",
                                   ["conversation_id", "message_id"])
        b.create_foreign_key("fk_messages_conversation_id_conversations", "conversations",
                             ["conversation_id"], ["id"])
