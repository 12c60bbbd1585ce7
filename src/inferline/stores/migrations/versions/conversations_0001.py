"""Conversations, messages, insight templates/groups, insight runs, webhook deliveries and signing key.

Revision ID: conversations_0001
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "conversations_0001"
down_revision = "0002"
branch_labels = ("conversations",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(500), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        _ts("created_at"),
        _ts("last_message_at", nullable=True),
    )
    op.create_index("ix_conversations_tenant_created", "conversations", ["tenant_id", "created_at"])
    op.create_table(
        "conversation_messages",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column(
            "conversation_id",
            sa.String(36),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        _ts("sent_at", nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("tool_calls", sa.JSON(), nullable=True),
        sa.Column("tool_call_id", sa.String(200), nullable=True),
        sa.Column("tool_choice", sa.JSON(), nullable=True),
        _ts("created_at"),
    )
    op.create_table(
        "insight_templates",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("json_schema", sa.JSON(), nullable=True),
        sa.Column("webhook", sa.Text(), nullable=False),
        sa.Column("insight_type", sa.String(16), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "insight_groups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("webhook", sa.Text(), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "insight_group_members",
        sa.Column(
            "group_id",
            sa.String(36),
            sa.ForeignKey("insight_groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "insight_id",
            sa.String(36),
            sa.ForeignKey("insight_templates.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        _ts("created_at"),
    )
    op.create_table(
        "insight_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column(
            "conversation_id",
            sa.String(36),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("group_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("templates", sa.JSON(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("webhook", sa.Text(), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("finished_at", nullable=True),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("run_id", sa.String(36), nullable=True, index=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("job_id", sa.String(36), nullable=True),
        _ts("created_at"),
        _ts("delivered_at", nullable=True),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            sa.String(36),
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "webhook_signing_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("private_key", sa.String(100), nullable=False),
        sa.Column("public_key", sa.String(100), nullable=False),
        _ts("created_at"),
    )


def downgrade() -> None:
    for table in (
        "webhook_signing_keys",
        "webhook_attempts",
        "webhook_deliveries",
        "insight_runs",
        "insight_group_members",
        "insight_groups",
        "insight_templates",
        "conversation_messages",
        "conversations",
    ):
        op.drop_table(table)
