"""S3 credentials of API keys: a public access key id and the derived S3 secret.

Keys created before this revision get them from `inferline keys s3-credentials --key KEY` (or, for the seeded
`INFERLINE_API_KEY`, at start-up): only the key holder can derive them.

Revision ID: keys_0001
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "keys_0001"
down_revision = "0002"
branch_labels = ("keys",)
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("s3_access_key_id", sa.String(20), nullable=True))
    op.add_column("api_keys", sa.Column("s3_secret", sa.String(64), nullable=True))
    op.create_index("ix_api_keys_s3_access_key_id", "api_keys", ["s3_access_key_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_api_keys_s3_access_key_id", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("s3_secret")
        batch.drop_column("s3_access_key_id")
