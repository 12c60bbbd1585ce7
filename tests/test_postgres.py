"""PostgreSQL mode: the server really runs on PostgreSQL, pgvector works, job claims skip locked rows.

These run in the PostgreSQL pass of `make test` (INFERLINE_TEST_DATABASE_URL from scripts/postgres.sh); in the
SQLite pass they are skipped, with that reason.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from inferline.jobs import JobQueue
from inferline.stores.db import Database
from tests.conftest import LiveServer
from tests.databases import DatabaseFactory

pytestmark = pytest.mark.skipif(
    not (os.environ.get("INFERLINE_TEST_DATABASE_URL") or "").startswith("postgresql"),
    reason="PostgreSQL pass only: set INFERLINE_TEST_DATABASE_URL (make test-postgres does)",
)


@pytest.fixture
def db(databases: DatabaseFactory) -> Iterator[Database]:
    database = Database(databases.new("pg"))
    database.migrate()
    yield database
    database.dispose()


def test_live_server_runs_on_postgresql(server: LiveServer) -> None:
    assert server.container.db.engine.dialect.name == "postgresql"
    with server.container.db.session() as s:
        assert s.execute(text("SELECT count(*) FROM api_keys")).scalar_one() >= 2


def test_pgvector_nearest_neighbours(db: Database) -> None:
    with db.session() as s:
        version = s.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
        assert version is not None, "pgvector is not installed in the test database"
        s.execute(text("CREATE TABLE probe (id int PRIMARY KEY, v vector(3))"))
        s.execute(text("INSERT INTO probe VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]')"))
        nearest = s.execute(text("SELECT id FROM probe ORDER BY v <=> '[1,0.05,0]' LIMIT 2")).scalars().all()
        assert nearest == [1, 3]
        s.execute(text("CREATE INDEX ON probe USING hnsw (v vector_cosine_ops)"))


def test_claim_skips_a_job_locked_by_another_transaction(db: Database) -> None:
    queue = JobQueue(db, lease_seconds=30)
    first = queue.enqueue("work", {"n": 1}, "t1")
    second = queue.enqueue("work", {"n": 2}, "t1", delay_seconds=-1)  # due earlier: claimed first if free
    with db.engine.connect() as other:
        locker = other.begin()
        other.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": second})
        started = time.monotonic()
        claimed = queue.claim("w1", ["work"])
        assert time.monotonic() - started < 5, "the claim waited for the lock instead of skipping the row"
        assert claimed is not None and claimed.id == first
        assert queue.claim("w2", ["work"]) is None  # the locked job stays invisible, nothing blocks
        locker.rollback()
    claimed = queue.claim("w2", ["work"])
    assert claimed is not None and claimed.id == second


def test_many_connections_claim_each_job_exactly_once(db: Database) -> None:
    queue = JobQueue(db, lease_seconds=30)
    ids = {queue.enqueue("work", {"i": i}, "t1") for i in range(60)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        while (job := queue.claim(f"w{n}", ["work"])) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == sorted(ids)
