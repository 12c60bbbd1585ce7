"""A lone single-text embedding request runs on the event loop, at once; anything that would wait (another
request in flight, a batch running, chat decoding, the model not loaded) runs in a worker thread as before.
`MicroBatcher.now`, the ONNX engine's `embed_now`, the in-flight count, and the route's choice."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

import numpy as np
import openai
import pytest

from inferline import catalog
from inferline.engines.cpu import SHARES
from inferline.engines.embeddings import WouldWait
from inferline.engines.micro_batch import MicroBatcher
from inferline.engines.onnx_embeddings import NOW_TOKENS, OnnxEmbeddingEngine
from inferline.ops.context import IN_FLIGHT
from inferline.ops.middleware import OpsMiddleware
from tests.conftest import MODELS_DIR, LiveServer
from tests.test_embeddings_batching import _vectors, _wait_for

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def test_now_runs_in_the_calling_thread_unless_a_batch_is_running() -> None:
    threads: list[str] = []
    release = threading.Event()

    def run(texts: list[str]) -> np.ndarray:
        threads.append(threading.current_thread().name)
        if texts == ["held"]:
            release.wait(10)
        return _vectors(texts)

    batcher = MicroBatcher(run)
    assert batcher.now(["alone"]).tolist() == _vectors(["alone"]).tolist()
    assert threads == [threading.current_thread().name]
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(batcher, ["held"])
        _wait_for(lambda: batcher.busy, "the held batch")
        with pytest.raises(WouldWait):
            batcher.now(["refused"])
        release.set()
        held.result()
    assert not batcher.busy
    assert batcher.now(["again"]).tolist() == _vectors(["again"]).tolist()


def test_calls_queued_during_a_run_now_get_the_next_batch() -> None:
    runs: list[list[str]] = []
    batcher: MicroBatcher

    def run(texts: list[str]) -> np.ndarray:
        runs.append(list(texts))
        if len(runs) == 1:  # the `now` run: hold it until two calls queue behind it
            _wait_for(lambda: len(batcher._queue) == 2, "the other calls to queue")
        return _vectors(texts)

    batcher = MicroBatcher(run)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(batcher.now, ["a"])
        _wait_for(lambda: len(runs) == 1, "the first run")
        rest = [pool.submit(batcher, [t]) for t in ("bb", "ccc")]
        assert first.result().tolist() == _vectors(["a"]).tolist()
        assert [f.result().tolist() for f in rest] == [_vectors([t]).tolist() for t in ("bb", "ccc")]
    assert runs == [["a"], ["bb", "ccc"]]
    assert not batcher.busy


def test_the_onnx_engine_embeds_now_only_when_it_would_not_wait() -> None:
    entry = catalog.find(MINILM)
    engine = OnnxEmbeddingEngine(MINILM, catalog.model_dir(MODELS_DIR, entry))
    text = "a lighthouse keeper counts the ships"
    with pytest.raises(WouldWait):  # not loaded yet: loading is never done in place of a wait
        engine.embed_now([text])
    assert not engine.ready_now()
    expected = engine.embed([text])
    assert engine.ready_now()
    assert np.allclose(engine.embed_now([text]), expected, atol=1e-5)
    with SHARES.foreground():  # a chat generation decoding: batches yield to it, in a worker thread
        assert not engine.ready_now()
        with pytest.raises(WouldWait):
            engine.embed_now([text])
    long = " ".join(["the"] * (NOW_TOKENS - 1))  # one token per word, plus [CLS] and [SEP]
    assert engine.count_tokens([long]) == [NOW_TOKENS + 1]
    with pytest.raises(WouldWait):  # a longer run would stall the HTTP loop
        engine.embed_now([long])
    with pytest.raises(WouldWait):
        engine.embed_now([text] * 17)  # 8 tokens each


def test_requests_and_websocket_sessions_count_as_in_flight() -> None:
    seen: list[int] = []

    async def inner(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(IN_FLIGHT.count)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async def nothing(message) -> None:  # type: ignore[no-untyped-def]
        return None

    async def receive() -> dict[str, str]:
        return {"type": "http.disconnect"}

    middleware = OpsMiddleware(inner)
    before = IN_FLIGHT.count
    for kind in ("http", "websocket", "lifespan"):
        asyncio.run(middleware({"type": kind, "path": "/x", "method": "GET"}, receive, nothing))
    assert seen == [before + 1, before + 1, before]
    assert IN_FLIGHT.count == before


@contextmanager
def _request_in_flight(server: LiveServer) -> Iterator[None]:
    """A request the server is serving, waiting for the rest of its body, until the block ends."""
    parts = urlsplit(server.url)
    before = IN_FLIGHT.count
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            b"POST /v2/ai/openai/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + server.key_a.encode() + b"\r\nContent-Length: 100\r\n\r\n{"
        )
        _wait_for(lambda: IN_FLIGHT.count > before, "the request to be in flight")
        yield
    _wait_for(lambda: IN_FLIGHT.count == before, "the request to end")


def test_a_lone_single_text_runs_on_the_event_loop_and_others_in_a_worker(server: LiveServer) -> None:
    oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0)
    engine = server.container.embeddings.engine
    assert isinstance(engine, OnnxEmbeddingEngine)
    oai.embeddings.create(model=MINILM, input="warm up")  # the model is loaded
    on_loop: list[bool] = []
    original_now, original_embed = engine.embed_now, engine.embed

    def loop_running() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def embed_now(texts: list[str]) -> np.ndarray:
        on_loop.append(loop_running())
        return original_now(texts)

    def embed(texts: list[str]) -> np.ndarray:
        on_loop.append(loop_running())
        return original_embed(texts)

    text = "the harbour freezes over in a hard winter"
    engine.embed_now, engine.embed = embed_now, embed  # type: ignore[method-assign]
    try:
        _wait_for(lambda: engine.ready_now() and IN_FLIGHT.count == 0, "the server to be idle")
        alone = oai.embeddings.create(model=MINILM, input=text).data[0].embedding
        assert on_loop == [True]
        with _request_in_flight(server):
            beside = oai.embeddings.create(model=MINILM, input=[text]).data[0].embedding
        assert on_loop == [True, False]
        _wait_for(lambda: engine.ready_now() and IN_FLIGHT.count == 0, "the server to be idle")
        two = oai.embeddings.create(model=MINILM, input=[text, "a second text"]).data
        assert on_loop == [True, False, False]
    finally:
        engine.embed_now, engine.embed = original_now, original_embed  # type: ignore[method-assign]
    assert np.allclose(alone, beside, atol=1e-5)
    assert np.allclose(alone, two[0].embedding, atol=1e-5)
