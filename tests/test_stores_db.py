"""`get_owned`, the one tenant-scoped fetch: the owner gets its row; another tenant and a missing id get the
same NotFound with the caller's message and pointer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
