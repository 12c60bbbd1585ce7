"""A model whose GGUF metadata is not ASCII (a chat template with « » — ✓) registers on a PostgreSQL database
created with `ENCODING 'SQL_ASCII'` and reads back unchanged.

PostgreSQL pass only (INFERLINE_TEST_DATABASE_URL, as tests/test_postgres.py). Only the core and models
migrations are applied: pgvector, which the embeddings branch needs, can be created in a database copied from
template0 by a superuser only, and the test role is not one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import make_url, text

from inferline.areas.models.registry import ModelRegistry
from inferline.stores.db import MIGRATIONS_DIR, Database
from tests.databases import DatabaseFactory, drop_database

BASE_URL = os.environ.get("INFERLINE_TEST_DATABASE_URL") or ""
pytestmark = pytest.mark.skipif(
    not BASE_URL.startswith("postgresql"),
    reason="PostgreSQL pass only: set INFERLINE_TEST_DATABASE_URL (make test-postgres does)",
)
TEMPLATE = "{% for m in messages %}«{{ m.content }}» \u2014 ✓ {% endfor %}"
NAME = "tiny \u2013 ünïcode"


def _admin(sql: str) -> None:
    url = make_url(BASE_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture
def ascii_db(databases: DatabaseFactory) -> Iterator[Database]:
    """A database of its own, on the test PostgreSQL server (`databases`), in SQL_ASCII."""
    assert databases.base_url is not None
    name = f"inferline_test_ascii_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    url = databases.base_url.set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        with db.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "models@head")
        yield db
    finally:
        db.dispose()
        drop_database(_admin, name)


def tiny_gguf(path: Path) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(NAME)
    writer.add_chat_template(TEMPLATE)
    writer.add_context_length(128)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_non_ascii_gguf_metadata_on_a_sql_ascii_database(ascii_db: Database, tmp_path: Path) -> None:
    with ascii_db.session() as s:
        assert s.execute(text("SHOW server_encoding")).scalar_one() == "SQL_ASCII"
    registry = ModelRegistry(ascii_db, tmp_path / "models")
    record = registry.add(str(tiny_gguf(tmp_path / "tïny.gguf")), model_id="acme/tiny")
    again = registry.get(record.id)
    assert again is not None
    assert again.info["chat_template"] == TEMPLATE and again.info["name"] == NAME
    assert again.source.endswith("tïny.gguf")
    assert [r.id for r in registry.all()] == [record.id]
