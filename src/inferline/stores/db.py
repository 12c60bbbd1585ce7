"""The relational database: SQLite file by default, PostgreSQL by URL. Schema changes go through Alembic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import ColumnElement, Engine, create_engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from inferline.errors import NotFound

Row = TypeVar("Row")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x1F3E_11E0  # pg_advisory_xact_lock key held while migrating
# SQLite connections kept open: every thread that may hold a session at once (anyio's 40 request threads, the
# process's job workers and background writers). SQLAlchemy's default keeps 5 and closes each one beyond when
# it is returned, so 20 concurrent searches opened a connection (and ran its pragmas) per request: 15 % of the
# server's CPU. A kept connection costs three file descriptors and its page cache.
SQLITE_POOL_SIZE = 48
SQLITE_POOL_OVERFLOW = 16


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL (SQLite's advice for WAL): a commit is not fsync'ed (~4 ms each, on the latency path of
    # every metered request); still atomic and kept if the process dies, only a power loss may undo the last.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """Owns the SQLAlchemy engine and hands out sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.sqlite_file: str | None = None  # the SQLite database's file (None: PostgreSQL or in memory)
        if self.is_sqlite:
            path = url.removeprefix("sqlite:///")
            on_disk = bool(path) and path != ":memory:" and url != "sqlite://"
            if on_disk and "?" not in path:
                self.sqlite_file = path
            if on_disk:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # An in-memory database lives in one connection per thread (SQLAlchemy's SingletonThreadPool).
            pool = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_OVERFLOW} if on_disk else {}
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            # UTF-8 on the wire whatever the database's encoding: on a SQL_ASCII database the driver would
            # otherwise hand back bytes (nothing works) and could not send non-ASCII text (model metadata).
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=10,
                connect_args={"client_encoding": "utf8"},
            )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the newest revision of every branch (one Alembic branch per API area)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self._migration_lock(), self.engine.begin() as connection:
            if not self.is_sqlite:
                # Replicas starting together: the first migrates, the others wait and find nothing to do.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "heads")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """On SQLite, an exclusive file lock beside the database serialises migrating processes."""
        path = self.url.removeprefix("sqlite:///")
        if not self.is_sqlite or not path or path == ":memory:":
            yield
            return
        import fcntl

        with open(f"{path}.migrate.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def driver_rows(s: Session, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Tuples of `sql` (qmark placeholders) straight from a DB-API cursor of the session's connection: for
    reads on a request's path, where building and compiling an ORM query costs more than running it (~200 µs
    against ~40 µs for one row on SQLite)."""
    conn = s.connection()
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def page_rows(
    session: Session,
    model: type[Row],
    where: ColumnElement[bool],
    *order_by: Any,
    offset: int,
    limit: int,
) -> tuple[list[Row], int]:
    """One page of `model` rows matching `where` in `order_by` order, and the total count of matches."""
    total = session.scalar(select(func.count()).select_from(model).where(where)) or 0
    rows = session.scalars(select(model).where(where).order_by(*order_by).offset(offset).limit(limit)).all()
    return list(rows), total


class TenantOwned(Protocol):
    """A row that belongs to one tenant."""

    tenant_id: Any


Owned = TypeVar("Owned", bound=TenantOwned)


def get_owned(
    session: Session,
    model: type[Owned],
    row_id: str,
    tenant_id: str,
    detail: str,
    *,
    pointer: str | None = None,
) -> Owned:
    """The `model` row `row_id` of `tenant_id`; a missing row and another tenant's row are the same
    `NotFound(detail, pointer=pointer)`, so ids never leak across tenants."""
    row = session.get(model, row_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(detail, pointer=pointer)
    return row
