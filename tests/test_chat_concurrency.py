"""Concurrency: parallel clients never mix outputs; a full queue answers 429 + Retry-After; a client that
disconnects (streamed or not) cancels its generation and frees the slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from inferline.app import create_app
from inferline.config import Settings
from inferline.container import build_container
from tests.conftest import API_KEY, MODELS_DIR, LiveServer, free_port

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ENDLESS = {"guided_regex": "[a-z ]{4000}", "max_tokens": 3000}  # far longer than any test waits for


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A second server with one chat slot and no queue."""
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("tight")),
        INFERLINE_MODELS_DIR=MODELS_DIR,
        profile="test",
        api_key=API_KEY,
        chat_parallel=1,
        chat_max_queue=0,
        chat_threads=1,
        embedded_worker=False,
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


def wait_idle(server: LiveServer, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while server.container.chat.in_flight():
        assert time.monotonic() < deadline, "the generation was not cancelled"
        time.sleep(0.05)


def ask(server: LiveServer, body: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.key_a}"}
    return httpx.post(server.v2 + "/ai/openai/chat/completions", json=body, headers=headers, timeout=300)


def test_parallel_clients_get_their_own_outputs(server: LiveServer) -> None:
    oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)
    sets = [[f"alpha{i}", f"beta{i}", f"gamma{i}"] for i in range(4)]

    def one(i: int) -> list[str]:
        kwargs = {
            "model": SMOL,
            "messages": [{"role": "user", "content": f"Pick one word (client {i})."}],
            "max_tokens": 8,
            "temperature": 1.0,
            "n": 2,
            "extra_body": {"guided_choice": sets[i]},
        }
        if i % 2:
            texts = {0: "", 1: ""}
            for chunk in oai.chat.completions.create(stream=True, **kwargs):
                for c in chunk.choices:
                    texts[c.index] += c.delta.content or ""
            return list(texts.values())
        return [c.message.content for c in oai.chat.completions.create(**kwargs).choices]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    for i, texts in enumerate(results):
        assert all(t in sets[i] for t in texts), (i, texts)


def test_full_queue_is_429_and_a_stream_disconnect_cancels(tight: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {tight.key_a}"}
    body = {"messages": [{"role": "user", "content": "Write."}], "stream": True, **ENDLESS}
    with (
        httpx.Client(timeout=300) as c,
        c.stream("POST", tight.v2 + "/ai/openai/chat/completions", json=body, headers=headers) as running,
    ):
        assert running.status_code == 200
        lines = running.iter_lines()
        assert next(lines).startswith("data: ")
        busy = ask(tight, {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
        assert busy.status_code == 429, busy.text
        assert int(busy.headers["Retry-After"]) >= 1
        assert busy.json()["errors"][0]["code"] == "10011"
        # leaving the block closes the connection mid-stream
    wait_idle(tight)
    after = ask(tight, {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert after.status_code == 200, after.text


def test_non_streamed_disconnect_cancels(tight: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {tight.key_a}"}
    body = {"messages": [{"role": "user", "content": "Write."}], **ENDLESS}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(tight.v2 + "/ai/openai/chat/completions", json=body, headers=headers, timeout=3)
    wait_idle(tight)


def test_least_recently_used_idle_engine_is_unloaded_busy_ones_stay(server: LiveServer) -> None:
    """Engine bookkeeping only (the engines are built, not loaded): at most `max_models` kept."""
    from inferline.areas.chat.engine_pool import EnginePool, Target

    c = server.container
    chat = EnginePool(c.models, max_models=2, tenant_models=c.fine_tuning)
    build = chat.resolve("tenant-a", SMOL).build
    a, b, c = (Target(f"m{i}", ("llamacpp", "same.gguf", (f"adapter{i}.gguf",)), build) for i in range(3))
    first = chat.engine(a)
    chat.engine(b)
    assert chat.engine(a) is first  # cached, and now the most recently used
    chat.engine(c)
    assert chat.loaded() == [a.key, c.key]  # b was the least recently used
    chat.gate(a).admit()  # a request holds a
    chat.engine(b)
    assert chat.loaded() == [a.key, b.key]  # c went, a stayed although older
    chat.close()
