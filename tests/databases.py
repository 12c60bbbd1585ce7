"""Fresh databases for tests: SQLite files by default, or uniquely named PostgreSQL databases.

Setting `INFERLINE_TEST_DATABASE_URL` to a PostgreSQL URL (e.g. the one `scripts/postgres.sh` prints) runs the
suite's tests that use a database on PostgreSQL (tests/conftest.py skips the others): every `new()` creates
its own database on that server (copied from template1, which has pgvector) and `drop_all()` removes them, so
runs never see each other's rows.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import make_url


class DatabaseFactory:
    """Hands out URLs of empty databases of the configured kind."""

    def __init__(self, base_url: str | None, tmp_dir: Path) -> None:
        self.base_url = make_url(base_url) if base_url else None
        self.tmp_dir = tmp_dir
        self._created: list[str] = []

    @property
    def postgres(self) -> bool:
        return self.base_url is not None and self.base_url.get_backend_name() == "postgresql"

    def new(self, label: str) -> str:
        """The URL of a new, empty database (`label` only makes its name readable)."""
        if self.base_url is None:
            return f"sqlite:///{self.tmp_dir / f'{label}-{uuid.uuid4().hex[:8]}.db'}"
        if not self.postgres:
            raise RuntimeError(f"INFERLINE_TEST_DATABASE_URL must be sqlite or postgresql: {self.base_url}")
        name = f"inferline_test_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._admin(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.base_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        while self._created:
            drop_database(self._admin, self._created.pop())

    def _admin(self, sql: str) -> None:
        import psycopg

        assert self.base_url is not None
        url = self.base_url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def drop_database(admin: Callable[[str], None], name: str, attempts: int = 20) -> None:
    """`DROP DATABASE … WITH (FORCE)`, retried while PostgreSQL refuses to terminate a backend of no role: an
    autovacuum worker that started on the database races the drop ("permission denied to terminate process"
    for a non-superuser); it exits on its own within moments."""
    import psycopg

    for attempt in range(attempts):
        try:
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
