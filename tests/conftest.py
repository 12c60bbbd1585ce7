"""Conformance harness: one real inferline server per test session, driven through the official clients."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import telnyx
import uvicorn

from inferline.app import create_app
from inferline.config import Settings
from inferline.container import Container, build_container
from inferline.keys import s3_credentials
from tests.databases import DatabaseFactory

REPO = Path(__file__).resolve().parent.parent
MODELS_DIR = Path(os.environ.get("INFERLINE_MODELS_DIR", REPO / "data" / "models"))
API_KEY = "KEYtest-tenant-a-0123456789"
# Servers the tests start (in this process or as `inferline serve` children) load models when a test needs
# them, not all at start-up: tests/test_warmup.py covers the warm-up.
os.environ.setdefault("INFERLINE_WARMUP", "none")


def s3_auth(api_key: str) -> dict[str, str]:
    """boto3 credentials of an API key: its S3 access key id and S3 secret (never the API key itself)."""
    access_key_id, secret = s3_credentials(api_key)
    return {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret}


def own_settings(root: Path, warmup: str) -> Settings:
    """Settings of a server of one's own (its data under `root`, the test profile, no embedded worker)
    with `warmup` (`INFERLINE_WARMUP`)."""
    return Settings(
        data_dir=root,
        INFERLINE_MODELS_DIR=MODELS_DIR,
        profile="test",
        api_key=API_KEY,
        embedded_worker=False,
        chat_threads=1,
        log_level="warning",
        warmup=warmup,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A running server: its base URL, its container, and one API key per test tenant."""

    url: str
    container: Container
    key_a: str
    key_b: str

    @property
    def v2(self) -> str:
        return self.url + "/v2"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass (`INFERLINE_TEST_DATABASE_URL`) runs only the tests that use the test database
    (the `databases` fixture, directly or through `settings`, `server` and the clients): the others never
    see it, so they would run exactly as in the SQLite pass, twice the time for nothing."""
    if not os.environ.get("INFERLINE_TEST_DATABASE_URL"):
        return
    once = pytest.mark.skip(reason="uses no test database: the SQLite pass runs it (once per CI run)")
    for item in items:
        if "databases" not in getattr(item, "fixturenames", ()):
            item.add_marker(once)


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    """Empty databases on demand: SQLite, or PostgreSQL when INFERLINE_TEST_DATABASE_URL is set."""
    base_url = os.environ.get("INFERLINE_TEST_DATABASE_URL") or None
    factory = DatabaseFactory(base_url, tmp_path_factory.mktemp("db"))
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Settings:
    data = tmp_path_factory.mktemp("data")
    return Settings(
        data_dir=data,
        INFERLINE_MODELS_DIR=MODELS_DIR,
        database_url=databases.new("server"),
        profile="test",
        api_key=API_KEY,
        max_request_bytes=2 * 1024 * 1024,
        s3_max_body_bytes=16 * 1024 * 1024,
        webhook_allowed_hosts="127.0.0.1",
        log_level="warning",
        # One llama.cpp thread: the test client, the server and other test processes share the cores, and
        # llama.cpp's spinning threads slow down sharply when the cores are oversubscribed.
        chat_threads=1,
        # Piper speaks without its sampling noise: the round trips (speech transcribed back, words compared
        # exactly) hear the same samples every run. With it, Whisper tiny.en now and then dropped a short
        # word ("how", "is": twice in about twenty full runs).
        tts_variation=0.0,
    )


@pytest.fixture(scope="session")
def server(settings: Settings) -> Iterator[LiveServer]:
    container = build_container(settings)
    _, key_b = container.keys.create("tenant-b", name="second tenant")
    port = free_port()
    config = uvicorn.Config(create_app(settings, container), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("inferline test server did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", container, API_KEY, key_b)
    uv.should_exit = True
    thread.join(timeout=10)
    container.close()


@pytest.fixture(scope="session")
def client(server: LiveServer) -> telnyx.Telnyx:
    """The official Telnyx SDK in strict response-validation mode, as tenant A."""
    return telnyx.Telnyx(
        api_key=server.key_a, base_url=server.v2, _strict_response_validation=True, max_retries=0
    )


@pytest.fixture(scope="session")
def client_b(server: LiveServer) -> telnyx.Telnyx:
    """The same SDK as tenant B, to prove isolation."""
    return telnyx.Telnyx(
        api_key=server.key_b, base_url=server.v2, _strict_response_validation=True, max_retries=0
    )


@pytest.fixture(scope="session")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    """Plain HTTP as tenant A, for what the SDKs cannot express (bad input, raw envelopes)."""
    with httpx.Client(
        base_url=server.v2, headers={"Authorization": f"Bearer {server.key_a}"}, timeout=120
    ) as c:
        yield c
