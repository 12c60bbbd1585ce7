"""The first request after a start (`web.first_request`): FastAPI's per-endpoint source lookup and the
statements of the key lookup and the limits read are done at start-up, not in that request."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine.default import CACHE_MISS

from inferline.app import create_app
from tests.conftest import API_KEY, own_settings


def test_the_first_request_does_not_read_its_endpoints_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FastAPI caches each endpoint's source line for the whole process: start from an empty cache, as a
    # freshly started server does (other tests in this process have served these endpoints).
    monkeypatch.setattr(fastapi.routing, "_endpoint_context_cache", {}, raising=False)
    read: list[Any] = []
    getsourcelines = inspect.getsourcelines
    with TestClient(create_app(own_settings(tmp_path, "none"))) as client:
        monkeypatch.setattr(inspect, "getsourcelines", lambda obj: read.append(obj) or getsourcelines(obj))
        headers = {"Authorization": f"Bearer {API_KEY}"}
        assert client.get("/v2/ai/openai/models", headers=headers).status_code == 200
        assert client.get("/v2/ai/conversations", headers=headers).status_code == 200
    assert read == []


KEY_OR_LIMITS = ("FROM api_keys", "FROM tenant_limits")


def embed_and_record(
    client: TestClient, key: str, keep: Callable[[str, Any], bool] = lambda statement, context: True
) -> list[str]:
    """POSTs one embeddings request with `key` (asserting a 200); returns the key and limits statements the
    database ran meanwhile that `keep(statement, context)` accepts."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if any(table in statement for table in KEY_OR_LIMITS) and keep(statement, context):
            statements.append(statement)

    engine = client.app.state.container.db.engine  # type: ignore[attr-defined]
    event.listen(engine, "after_cursor_execute", record)
    try:
        answer = client.post(
            "/v2/ai/openai/embeddings",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "sentence-transformers/all-MiniLM-L6-v2", "input": "A first request."},
        )
    finally:
        event.remove(engine, "after_cursor_execute", record)
    assert answer.status_code == 200
    return statements


def test_the_first_request_finds_the_key_and_limits_statements_compiled(tmp_path: Path) -> None:
    # No configured key: seeding one would run the key lookup at start-up anyway; keys made with
    # `inferline keys create` are not read before their first request.
    app = create_app(own_settings(tmp_path, "none").model_copy(update={"api_key": None}))
    with TestClient(app) as client:
        container = app.state.container
        container.cache_refresher.stop()  # its own reads would run beside the request's
        _, secret = container.keys.create("tenant-first", name="first request")
        assert embed_and_record(client, secret, keep=lambda _, context: context.cache_hit is CACHE_MISS) == []


def test_a_keys_first_read_brings_its_limits_so_its_first_limited_request_reads_none(tmp_path: Path) -> None:
    # A GET needs no limits; reading the key, its first request also reads them (one thread hop, not two),
    # so the key's first POST that limits apply to is admitted from the cache, without a database read.
    app = create_app(own_settings(tmp_path, "none").model_copy(update={"api_key": None}))
    with TestClient(app) as client:
        container = app.state.container
        container.cache_refresher.stop()  # its own reads would run beside the requests
        # What the GET reads stays fresh however slow the machine: entries are trusted for 1 s, and on a slow
        # machine the POST came later than that (its model's first load) and rightly read them again.
        container.keys.cache_seconds = container.limits.cache_seconds = 3600
        _, secret = container.keys.create("tenant-limits", name="first limited request")
        assert (
            client.get("/v2/ai/openai/models", headers={"Authorization": f"Bearer {secret}"}).status_code
            == 200
        )
        assert embed_and_record(client, secret) == []


def test_the_configured_keys_first_request_reads_neither_the_key_nor_its_limits(tmp_path: Path) -> None:
    # The key of INFERLINE_API_KEY is seeded at start-up, where it and its limits are read into the caches
    # (kept fresh by the refresh thread): its first request waits for no thread hop and no database read.
    # The refresh thread's own reads run beside the request, so statements are counted in other threads.
    app = create_app(own_settings(tmp_path, "none"))
    with TestClient(app) as client:
        refresher = app.state.container.cache_refresher._thread
        assert (
            embed_and_record(client, API_KEY, keep=lambda *_: threading.current_thread() is not refresher)
            == []
        )


def test_a_revoked_configured_key_stays_refused_after_a_restart(tmp_path: Path) -> None:
    settings = own_settings(tmp_path, "none")
    app = create_app(settings)
    with TestClient(app) as client:
        (seeded,) = [k for k in app.state.container.keys.list() if k.name == "seeded"]
        app.state.container.keys.revoke(seeded.id)
    app = create_app(settings)  # start-up reads the configured key into the cache: it must not accept it
    with TestClient(app) as client:
        answer = client.get("/v2/ai/openai/models", headers={"Authorization": f"Bearer {API_KEY}"})
        assert answer.status_code == 401
        assert "revoked" in answer.json()["errors"][0]["detail"]
