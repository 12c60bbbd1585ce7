"""Audio: speech-to-text usage records and legacy STT batch reports.

Revision ID: audio_0001
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "audio_0001"
down_revision = "0002"
branch_labels = ("audio",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stt_usage_records",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("requested_model", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("audio_seconds", sa.Float(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("billed_seconds", sa.Float(), nullable=False),
        sa.Column("processing_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_stt_usage_tenant_created", "stt_usage_records", ["tenant_id", "created_at"])
    op.create_table(
        "stt_reports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("stt_reports")
    op.drop_index("ix_stt_usage_tenant_created", table_name="stt_usage_records")
    op.drop_table("stt_usage_records")
