"""Audio: stored speech (`output_type: audio_id`) and its chunks.

Revision ID: audio_0003
Revises: audio_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "audio_0003"
down_revision = "audio_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tts_audio",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("voice_id", sa.String(200), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tts_audio_expires", "tts_audio", ["expires_at"])
    op.create_table(
        "tts_audio_chunks",
        sa.Column("audio_id", sa.String(36), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tts_audio_chunks")
    op.drop_index("ix_tts_audio_expires", "tts_audio")
    op.drop_table("tts_audio")
