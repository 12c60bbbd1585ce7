"""The model registry: models added from files, directories or hub repositories.

Revision ID: models_0001
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "models_0001"
down_revision = "0002"
branch_labels = ("models",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("slug", sa.String(250), nullable=False, unique=True),
        sa.Column("linked", sa.Boolean(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("registered_models")
