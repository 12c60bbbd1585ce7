"""Grounded insights: `insight_templates.evidence` (a template asks for evidence; off by default).

Revision ID: conversations_0004
Revises: conversations_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "conversations_0004"
down_revision = "conversations_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("insight_templates") as batch:
        batch.add_column(sa.Column("evidence", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("insight_templates") as batch:
        batch.drop_column("evidence")
