"""Start-up warm-up (`ops.warmup`): an API process loads its default models before `/ready` answers 200, so
the first requests do not pay for loading them; `INFERLINE_WARMUP` picks the kinds."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pydantic
import pytest
import uvicorn
from fastapi.testclient import TestClient

from inferline.app import create_app
from inferline.config import WARMUP_KINDS, Settings, warmup_kinds
from inferline.container import build_container
from inferline.ops.warmup import Step, Warmup
from tests.conftest import API_KEY, LiveServer, free_port, own_settings

DEFAULTS = {
    "embeddings": "sentence-transformers/all-MiniLM-L6-v2",
    "tts": "rhasspy/piper-en_US-joe-medium",
    "stt": "openai/whisper-tiny.en",
    "chat": "HuggingFaceTB/SmolLM2-135M-Instruct",
}


@contextmanager
def _serve(settings: Settings) -> Iterator[LiveServer]:
    container = build_container(settings)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(settings, container), port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", container, API_KEY, API_KEY)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        container.close()


def _ready(url: str, timeout: float = 240) -> tuple[set[str], dict]:
    """The statuses of the warm-up check seen until `/ready` answered 200, and that 200's body."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/ready", timeout=30)
        body = answer.json()
        seen.update(c["status"] for c in body["checks"] if c["name"] == "warmup")
        if answer.status_code == 200:
            return seen, body
        time.sleep(0.1)
    raise AssertionError(f"/ready did not answer 200 within {timeout} s: {body}")


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with _serve(own_settings(tmp_path_factory.mktemp("warm"), "all")) as server:
        yield server


def test_the_default_models_are_loaded_before_the_server_is_ready(warm: LiveServer) -> None:
    _, body = _ready(warm.url)
    (check,) = [c for c in body["checks"] if c["name"] == "warmup"]
    assert check["status"] == "ok"
    assert [(m["kind"], m["model"], m["status"]) for m in check["models"]] == [
        (kind, DEFAULTS[kind], "ok") for kind in WARMUP_KINDS
    ]
    assert all(m["seconds"] > 0 for m in check["models"])
    assert set(DEFAULTS.values()) <= set(body["loaded"])  # held in memory, and no request has been made


def test_first_requests_after_the_warm_up_use_the_warmed_models(warm: LiveServer) -> None:
    _, before = _ready(warm.url)
    oai = openai.OpenAI(api_key=warm.key_a, base_url=warm.v2 + "/ai/openai", max_retries=0, timeout=300)
    reply = oai.chat.completions.create(
        model=DEFAULTS["chat"], messages=[{"role": "user", "content": "Say hi."}], max_tokens=4
    )
    assert reply.choices[0].message.content
    vectors = oai.embeddings.create(model=DEFAULTS["embeddings"], input="warm")
    assert len(vectors.data[0].embedding) == 384
    after = httpx.get(f"{warm.url}/ready", timeout=30).json()
    assert after["loaded"] == before["loaded"]  # served by the engines the warm-up loaded: none was added
    engine = warm.container.chat.pool.default_engine()
    assert engine is not None and engine.name == DEFAULTS["chat"]


def test_only_the_kinds_asked_for_are_warmed(tmp_path: Path) -> None:
    with _serve(own_settings(tmp_path, "embeddings")) as server:
        _, body = _ready(server.url)
        (check,) = [c for c in body["checks"] if c["name"] == "warmup"]
        assert [m["kind"] for m in check["models"]] == ["embeddings"]
        assert body["loaded"] == [DEFAULTS["embeddings"]]


def test_no_warm_up_check_when_warm_up_is_off(tmp_path: Path) -> None:
    app = create_app(own_settings(tmp_path, "none"))
    with TestClient(app) as client:
        answer = client.get("/ready")
        assert answer.status_code == 200
        assert [c["name"] for c in answer.json()["checks"]] == ["database"]
        assert answer.json()["loaded"] == []


def test_ready_is_503_while_a_model_warms_and_200_once_it_is_warm(tmp_path: Path) -> None:
    release = threading.Event()
    app = create_app(own_settings(tmp_path, "none"))
    with TestClient(app) as client:
        warmup = Warmup([Step("chat", "slow/model", lambda: release.wait(60))])
        app.state.container.warmup = warmup
        warmup.start()
        answer = client.get("/ready")
        assert answer.status_code == 503
        (check,) = [c for c in answer.json()["checks"] if c["name"] == "warmup"]
        assert check["status"] == "warming"
        assert check["models"] == [{"kind": "chat", "model": "slow/model", "status": "warming"}]
        release.set()
        warmup.stop()
        answer = client.get("/ready")
        assert answer.status_code == 200
        (check,) = [c for c in answer.json()["checks"] if c["name"] == "warmup"]
        assert check["status"] == "ok" and check["models"][0]["status"] == "ok"


def test_a_model_that_fails_to_warm_is_reported_and_the_others_still_warm(tmp_path: Path) -> None:
    warmed: list[str] = []

    def broken() -> None:
        raise RuntimeError("the weights are truncated")

    app = create_app(own_settings(tmp_path, "none"))
    with TestClient(app) as client:
        warmup = Warmup(
            [Step("tts", "bad/voice", broken), Step("chat", "good/model", lambda: warmed.append("x"))]
        )
        app.state.container.warmup = warmup
        warmup.start()
        warmup.stop()
        answer = client.get("/ready")
        assert answer.status_code == 200  # the failure is its requests' error; the replica serves the rest
        (check,) = [c for c in answer.json()["checks"] if c["name"] == "warmup"]
        bad, good = check["models"]
        assert bad["status"] == "failed" and "the weights are truncated" in bad["detail"]
        assert good["status"] == "ok" and warmed == ["x"]


def test_stop_starts_no_further_model(tmp_path: Path) -> None:
    release, second = threading.Event(), threading.Event()
    warmup = Warmup([Step("embeddings", "a", lambda: release.wait(60)), Step("chat", "b", second.set)])
    warmup.start()
    while warmup.steps[0].status != "warming":
        time.sleep(0.01)
    threading.Timer(0.2, release.set).start()
    warmup.stop()  # waits for the step under way, starts no other
    assert warmup.steps[0].status == "ok"
    assert warmup.steps[1].status == "pending" and not second.is_set()


def test_kinds_parse_in_warming_order_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    assert warmup_kinds("all") == WARMUP_KINDS
    assert warmup_kinds("none") == warmup_kinds("") == ()
    assert warmup_kinds(" Chat , embeddings") == ("embeddings", "chat")
    with pytest.raises(pydantic.ValidationError, match="unknown model kind 'gpu'"):
        own_settings(tmp_path, "chat,gpu")


def test_the_start_up_objects_are_left_out_of_later_collections(tmp_path: Path) -> None:
    """Python's full collection walked every object of the start-up (~90 to 120 ms, every request stopped);
    in `inferline serve` (`freeze_start_up`) they are frozen once the warm-up ends, with or without models
    to warm."""
    gc.unfreeze()  # the servers other tests started in this process froze theirs
    with TestClient(create_app(own_settings(tmp_path, "none"), freeze_start_up=True)) as client:
        assert client.get("/ready").status_code == 200
        assert gc.get_freeze_count() > 0
    gc.unfreeze()
    warmup = Warmup([Step("chat", "quick/model", lambda: None)], freeze=True)
    warmup.start()
    warmup.stop()
    assert warmup.done and gc.get_freeze_count() > 0
    gc.unfreeze()  # the rest of this test process collects as before
