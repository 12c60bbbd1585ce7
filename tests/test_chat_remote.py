"""The remote engine against a real OpenAI-compatible server on loopback (llama.cpp's HTTP server from
xllamacpp, serving SmolLM2): streaming and not, constraints checked, upstream errors 502, timeouts 504."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import openai
import pytest
import uvicorn

from inferline.app import create_app
from inferline.config import RemoteModel, Settings
from inferline.container import build_container
from tests.conftest import API_KEY, MODELS_DIR, LiveServer, free_port

GGUF = MODELS_DIR / "HuggingFaceTB--SmolLM2-135M-Instruct" / "model.gguf"
ASK = [{"role": "user", "content": "Hello, world!"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """llama.cpp's own OpenAI-compatible HTTP server on a free loopback port."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(GGUF)
    params.n_parallel = 2
    params.n_ctx = 4096
    params.cpuparams.n_threads = 1
    params.port = free_port()
    params.verbosity = 0
    upstream_server = xllamacpp.Server(params)
    yield upstream_server.listening_address
    del upstream_server


@pytest.fixture(scope="module")
def silent() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def remote_server(
    tmp_path_factory: pytest.TempPathFactory, upstream: str, silent: int
) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("remote")),
        INFERLINE_MODELS_DIR=MODELS_DIR,
        profile="test",
        api_key=API_KEY,
        embedded_worker=False,
        remote_chat_models={
            "remote/smol": RemoteModel(url=upstream + "/v1", model="smollm2"),
            "remote/silent": RemoteModel(url=f"http://127.0.0.1:{silent}/v1", timeout_seconds=1),
            "remote/broken": RemoteModel(url=upstream + "/no-such-api"),
        },
    )
    container = build_container(settings)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(settings, container), port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", container, API_KEY, API_KEY)
    uv.should_exit = True
    thread.join(timeout=10)
    container.close()


@pytest.fixture(scope="module")
def oai(remote_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=API_KEY, base_url=remote_server.v2 + "/ai/openai", max_retries=0, timeout=120
    )


def test_remote_completion_and_stream(oai: openai.OpenAI) -> None:
    whole = oai.chat.completions.create(model="remote/smol", messages=ASK, max_tokens=6, temperature=0)
    assert whole.model == "remote/smol" and whole.choices[0].message.content
    assert 0 < whole.usage.completion_tokens <= 6
    chunks = list(
        oai.chat.completions.create(
            model="remote/smol", messages=ASK, max_tokens=6, temperature=0, stream=True
        )
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == whole.choices[0].message.content
    )
    assert chunks[-1].usage is not None and {c.model for c in chunks} == {"remote/smol"}


def test_remote_json_schema_is_checked(oai: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"mood": {"enum": ["happy", "sad"]}, "level": {"type": "integer"}},
        "required": ["mood", "level"],
    }
    result = oai.chat.completions.create(
        model="remote/smol", messages=ASK, max_tokens=40, temperature=0, extra_body={"guided_json": schema}
    )
    jsonschema.validate(json.loads(result.choices[0].message.content), schema)


def test_remote_models_are_in_the_404_list_and_beam_is_refused(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.chat.completions.create(model="remote/nope", messages=ASK, max_tokens=2)
    assert "remote/smol" in caught.value.response.text
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(
            model="remote/smol", messages=ASK, max_tokens=2, extra_body={"use_beam_search": True}
        )


def test_upstream_error_is_502_and_timeout_is_504(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as broken:
        oai.chat.completions.create(model="remote/broken", messages=ASK, max_tokens=2)
    assert broken.value.status_code == 502
    with pytest.raises(openai.APIStatusError) as slow:
        oai.chat.completions.create(model="remote/silent", messages=ASK, max_tokens=2)
    assert slow.value.status_code == 504
    with pytest.raises(openai.APIStatusError) as slow_stream:
        oai.chat.completions.create(model="remote/silent", messages=ASK, max_tokens=2, stream=True)
    assert slow_stream.value.status_code == 504
