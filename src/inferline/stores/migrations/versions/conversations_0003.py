"""Indexes for the conversation filters users run: `order=last_message_at.*` and the documented metadata keys.

`order=created_at.*` already has (tenant_id, created_at) from conversations_0001. `last_message_at` is
`coalesce(last_message_at, created_at)` in queries, so its index is on that expression. Each documented
metadata filter key (`metadata->assistant_id`, `call_control_id`, `telnyx_agent_target`,
`telnyx_end_user_target`, `telnyx_conversation_channel`) gets (tenant_id, <the key's text, exactly as queries
render it>, created_at): an equality filter then reads its rows already in the default order. Queries render
the key as a literal (`stores.tables.KeyLiteralJSON`), which lets these expression indexes match on SQLite and
PostgreSQL.

Revision ID: conversations_0003
Revises: conversations_0002
"""

from alembic import op

revision = "conversations_0003"
down_revision = "conversations_0002"
branch_labels = None
depends_on = None

METADATA_KEYS = (
    "assistant_id",
    "call_control_id",
    "telnyx_agent_target",
    "telnyx_end_user_target",
    "telnyx_conversation_channel",
)


def _key_text(dialect: str, key: str) -> str:
    """The SQL that `Conversation.meta[key].as_string()` renders (index expressions must match it)."""
    if dialect == "sqlite":
        return f"CAST(JSON_EXTRACT(metadata, '$.\"{key}\"') AS VARCHAR)"
    return f"CAST((metadata ->> '{key}') AS VARCHAR)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(
        "CREATE INDEX ix_conversations_tenant_last ON conversations "
        "(tenant_id, coalesce(last_message_at, created_at))"
    )
    for key in METADATA_KEYS:
        op.execute(
            f"CREATE INDEX ix_conversations_meta_{key} ON conversations "
            f"(tenant_id, ({_key_text(dialect, key)}), created_at)"
        )


def downgrade() -> None:
    for key in METADATA_KEYS:
        op.drop_index(f"ix_conversations_meta_{key}", table_name="conversations")
    op.drop_index("ix_conversations_tenant_last", table_name="conversations")
