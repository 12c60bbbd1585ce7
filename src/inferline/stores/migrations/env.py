"""Alembic environment: runs on the connection handed over by `Database.migrate`."""

from alembic import context
from sqlalchemy import create_engine

from inferline.stores.tables import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # `alembic` CLI use, e.g. autogenerate
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        _run(conn)
