"""Fine-tuning jobs and their events.

Revision ID: fine_tuning_0001
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "fine_tuning_0001"
down_revision = "0002"
branch_labels = ("fine_tuning",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "fine_tuning_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("training_file", sa.String(1200), nullable=False),
        sa.Column("n_epochs", sa.Integer(), nullable=False),
        sa.Column("suffix", sa.String(64), nullable=True),
        sa.Column("fine_tuned_model", sa.String(300), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("queue_job_id", sa.String(36), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("trained_tokens", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("adapter_path", sa.String(500), nullable=True),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
    )
    op.create_index("ix_fine_tuning_jobs_tenant_created", "fine_tuning_jobs", ["tenant_id", "created_at"])
    op.create_table(
        "fine_tuning_events",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("loss", sa.Float(), nullable=True),
        _ts("created_at"),
    )


def downgrade() -> None:
    op.drop_table("fine_tuning_events")
    op.drop_table("fine_tuning_jobs")
