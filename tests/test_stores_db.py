"""`get_owned`, the one tenant-scoped fetch: the owner gets its row; another tenant and a missing id get the
same NotFound with the caller's message and pointer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, text

from inferline.errors import NotFound
from inferline.stores.conversations_tables import Conversation
from inferline.stores.db import Database, get_owned
from tests.databases import DatabaseFactory


@pytest.fixture
def db(databases: DatabaseFactory) -> Iterator[Database]:
    database = Database(databases.new("stores_db"))
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def conversation_id(db: Database) -> str:
    with db.session() as s:
        row = Conversation(tenant_id="owner", name="mine", meta={})
        s.add(row)
        s.flush()
        return row.id


def test_owner_gets_the_row(db: Database, conversation_id: str) -> None:
    with db.session() as s:
        row = get_owned(s, Conversation, conversation_id, "owner", "unused")
        assert isinstance(row, Conversation) and row.id == conversation_id and row.name == "mine"


@pytest.mark.parametrize("tenant", ["other", ""])
def test_other_tenant_gets_not_found(db: Database, conversation_id: str, tenant: str) -> None:
    with db.session() as s, pytest.raises(NotFound) as err:
        get_owned(s, Conversation, conversation_id, tenant, f"Conversation {conversation_id} not found.")
    assert err.value.detail == f"Conversation {conversation_id} not found."
    assert err.value.status == 404 and err.value.pointer is None


def test_missing_id_gets_the_same_not_found_with_pointer(db: Database, conversation_id: str) -> None:
    def failure(row_id: str, tenant: str) -> NotFound:
        with db.session() as s, pytest.raises(NotFound) as err:
            get_owned(s, Conversation, row_id, tenant, "Job 'x' does not exist.", pointer="/job_id")
        return err.value

    missing, foreign = failure("no-such-id", "owner"), failure(conversation_id, "other")
    for error in (missing, foreign):
        assert (error.detail, error.pointer, error.code) == ("Job 'x' does not exist.", "/job_id", "10005")


def test_sqlite_keeps_a_connection_per_concurrent_session(tmp_path: Path) -> None:
    """12 threads holding sessions at once, five times over, open 12 SQLite connections in all. SQLAlchemy's
    default pool kept 5 and closed the rest on return (40 opened here), so every request beyond 5 concurrent
    ones opened a connection and ran its pragmas: 15 % of the server's CPU under 20 search clients."""
    database = Database(f"sqlite:///{tmp_path / 'pool.db'}")
    database.migrate()
    opened = []
    event.listen(database.engine, "connect", lambda *_: opened.append(1))
    together, failures = threading.Barrier(12), []

    def hold() -> None:
        try:
            for _ in range(5):
                with database.session() as s:
                    s.execute(text("SELECT 1"))
                    together.wait(timeout=30)  # all 12 hold one
                together.wait(timeout=30)  # all 12 gave theirs back
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=hold) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    database.dispose()
    assert not failures, failures
    assert len(opened) <= 12, f"{len(opened)} connections opened for 12 concurrent sessions"


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_an_in_memory_sqlite_database_still_opens(url: str) -> None:
    """The pool sizes above are for a database file; SQLAlchemy refuses them for an in-memory one."""
    database = Database(url)
    with database.session() as s:
        assert s.execute(text("SELECT 1")).scalar() == 1
    database.dispose()
