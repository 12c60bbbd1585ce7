"""The conversation filters users run are answered from indexes (stores/migrations conversations_0003): the
SQL a `GET /ai/conversations` runs is captured and its SQLite query plan read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import telnyx
from sqlalchemy import event

from tests.conftest import LiveServer


@contextmanager
def captured_selects(server: LiveServer) -> Iterator[list[tuple[str, object]]]:
    """The SELECTs on `conversations` the server runs meanwhile, with their parameters."""
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "FROM conversations" in statement:
            seen.append((statement, parameters))

    engine = server.container.db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def plan(server: LiveServer, params: dict[str, str], client: telnyx.Telnyx) -> str:
    """SQLite's plan of the listing query `params` makes the server run."""
    with captured_selects(server) as seen:
        client.get("/ai/conversations", cast_to=object, options={"params": params})
    (statement, parameters) = seen[-1]
    with server.container.db.engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()  # type: ignore[arg-type]
    return "\n".join(str(r[-1]) for r in rows)


@pytest.fixture
def sqlite_only(server: LiveServer) -> None:
    if not server.container.db.is_sqlite:
        pytest.skip("reads SQLite query plans (PostgreSQL picks plans from table statistics)")


@pytest.mark.usefixtures("sqlite_only")
@pytest.mark.parametrize(
    "key",
    [
        "assistant_id",
        "call_control_id",
        "telnyx_agent_target",
        "telnyx_end_user_target",
        "telnyx_conversation_channel",
    ],
)
def test_documented_metadata_filters_use_their_index(
    server: LiveServer, client: telnyx.Telnyx, key: str
) -> None:
    client.ai.conversations.create(metadata={key: "v-1"})
    query_plan = plan(server, {f"metadata->{key}": "eq.v-1"}, client)
    assert f"ix_conversations_meta_{key}" in query_plan, query_plan


@pytest.mark.usefixtures("sqlite_only")
def test_last_message_order_reads_its_index_instead_of_sorting(
    server: LiveServer, client: telnyx.Telnyx
) -> None:
    query_plan = plan(server, {"order": "last_message_at.desc", "limit": "5"}, client)
    assert "ix_conversations_tenant_last" in query_plan, query_plan
    assert "TEMP B-TREE FOR ORDER BY" not in query_plan, query_plan


def test_metadata_filters_still_match_exactly(client: telnyx.Telnyx) -> None:
    """Keys are now SQL literals: quoting and other tenants' rows behave as before."""
    mine = client.ai.conversations.create(metadata={"call_control_id": "v3:it's-1", "assistant_id": "x"})
    client.ai.conversations.create(metadata={"call_control_id": "v3:other"})
    found = client.get(
        "/ai/conversations",
        cast_to=object,
        options={"params": {"metadata->call_control_id": "eq.v3:it's-1", "metadata->>assistant_id": "eq.x"}},
    )
    assert [c["id"] for c in found["data"]] == [mine.id]  # type: ignore[index]
