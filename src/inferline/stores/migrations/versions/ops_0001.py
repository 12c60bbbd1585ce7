"""Operations: key scopes, tenant/key limits, shared rate-limit counters, in-flight slots, daily usage.

Revision ID: ops_0001
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "ops_0001"
down_revision = "0002"
branch_labels = ("ops",)
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("scope", sa.String(16), nullable=False, server_default="inference"))
    op.create_table(
        "tenant_limits",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("chat_requests", sa.Integer(), nullable=True),
        sa.Column("chat_tokens", sa.Integer(), nullable=True),
        sa.Column("embeddings_requests", sa.Integer(), nullable=True),
        sa.Column("embeddings_tokens", sa.Integer(), nullable=True),
        sa.Column("concurrent_transcriptions", sa.Integer(), nullable=True),
        sa.Column("storage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "rate_counters",
        sa.Column("subject", sa.String(160), primary_key=True),
        sa.Column("window_start", sa.BigInteger(), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "inflight_slots",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject", sa.String(160), nullable=False, index=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("metric", sa.String(40), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("quantity", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    for table in ("usage_daily", "inflight_slots", "rate_counters", "tenant_limits"):
        op.drop_table(table)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scope")
