"""Audio: asynchronous transcriptions.

Revision ID: audio_0002
Revises: audio_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "audio_0002"
down_revision = "audio_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stt_transcription_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("file_url", sa.Text(), nullable=True),
        sa.Column("audio", sa.LargeBinary(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_stt_transcription_jobs_tenant_created", "stt_transcription_jobs", ["tenant_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_stt_transcription_jobs_tenant_created", "stt_transcription_jobs")
    op.drop_table("stt_transcription_jobs")
