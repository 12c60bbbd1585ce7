"""Per-tenant settings: `tenant_settings.redact` (personal-data redaction on by default for a tenant).

Revision ID: conversations_0005
Revises: conversations_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "conversations_0005"
down_revision = "conversations_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_settings",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("redact", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenant_settings")
