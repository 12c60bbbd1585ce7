"""The ONNX embedder's two sessions (engines/onnx_embeddings.py): a lone request on a quiet process runs on
the session whose threads spin; a request while a chat generation decodes, or while other requests wait, runs
on the one whose threads sleep. Both give the same vectors. Nothing here asserts a duration."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import openai
import pytest

from inferline.engines.cpu import SHARES
from inferline.engines.micro_batch import MicroBatcher
from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ENDLESS = {"guided_regex": "[a-z ]{4000}"}  # decodes until the client closes the stream


class _Counted:
    """An onnxruntime session that counts its runs."""

    def __init__(self, session: Any) -> None:
        self.session, self.runs = session, 0

    def run(self, *args: Any) -> Any:
        self.runs += 1
        return self.session.run(*args)


@pytest.fixture
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


@pytest.fixture
def sessions(server: LiveServer, oai: openai.OpenAI) -> Iterator[tuple[_Counted, _Counted]]:
    """(spinning, sleeping) sessions of the default embedder, counting their runs."""
    engine: Any = server.container.embeddings.engine
    oai.embeddings.create(model=MINILM, input="load the model")
    spinning, sleeping = _Counted(engine._spinning), _Counted(engine._session)
    engine._spinning, engine._session = spinning, sleeping
    try:
        yield spinning, sleeping
    finally:
        engine._spinning, engine._session = spinning.session, sleeping.session


def _vector(oai: openai.OpenAI, text: str) -> np.ndarray:
    return np.array(
        oai.embeddings.create(model=MINILM, input=text, encoding_format="float").data[0].embedding
    )


def test_a_lone_request_spins_and_one_during_a_generation_sleeps(
    oai: openai.OpenAI, sessions: tuple[_Counted, _Counted]
) -> None:
    spinning, sleeping = sessions
    assert spinning.session is not sleeping.session
    quiet = _vector(oai, "a harbour crane lifts containers")
    assert (spinning.runs, sleeping.runs) == (1, 0)
    stream = oai.chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Write a long story."}],
        max_tokens=2000,
        temperature=0,
        stream=True,
        extra_body=ENDLESS,
    )
    with stream:
        assert next(c for c in stream if c.choices and c.choices[0].delta.content)
        assert SHARES.chat >= 1
        busy = _vector(oai, "a harbour crane lifts containers")
    assert (spinning.runs, sleeping.runs) == (1, 1)
    assert busy.tolist() == pytest.approx(quiet.tolist(), abs=1e-5)


def test_concurrent_requests_sleep_and_get_their_own_vectors(
    oai: openai.OpenAI, sessions: tuple[_Counted, _Counted]
) -> None:
    spinning, sleeping = sessions
    texts = [f"sentence {i} about {topic}" for i, topic in enumerate(["ships", "bread", "ice", "tides"] * 4)]
    alone = [_vector(oai, t) for t in texts]
    assert sleeping.runs == 0 and spinning.runs == len(texts)
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda t: _vector(oai, t), texts))
    assert sleeping.runs >= 1  # the batches that gathered several requests
    for a, b in zip(alone, together, strict=True):
        assert float(a @ b) > 0.999


def test_crowded_while_calls_overlap_and_not_after_a_lone_call() -> None:
    seen: list[bool] = []
    batcher: MicroBatcher
    release = threading.Event()

    def run(texts: list[str]) -> np.ndarray:
        seen.append(batcher.crowded)
        if len(seen) == 2:  # the second run (one call): hold it until two more calls queue behind it
            deadline = time.monotonic() + 10
            while len(batcher._queue) < 2:
                assert time.monotonic() < deadline, "timed out waiting for the calls to queue"
                time.sleep(0.001)
            seen.append(batcher.crowded)
            release.set()
        return np.zeros((len(texts), 2), dtype=np.float32)

    batcher = MicroBatcher(run)
    batcher(["alone"])
    assert seen == [False]
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(batcher, ["a"])
        while len(seen) < 2:
            time.sleep(0.001)
        rest = [pool.submit(batcher, [t]) for t in ("b", "c")]
        release.wait(10)
        first.result(), [f.result() for f in rest]
    assert seen == [False, False, True, True]  # the queued calls, then their batch of two
    batcher(["later"])  # runs alone
    assert not batcher.crowded


class _CountedTokenizer:
    """A tokenizer that counts the texts it encodes."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.texts = tokenizer, 0

    def encode_batch(self, texts: list[str]) -> Any:
        self.texts += len(texts)
        return self.tokenizer.encode_batch(texts)


def test_a_request_tokenizes_each_text_once_and_long_texts_still_truncate(
    server: LiveServer, oai: openai.OpenAI
) -> None:
    """The service counts tokens (to refuse texts over the limit) and then embeds: the encodings of the count
    serve the embed in the same thread (it used to tokenize every text twice). The vectors are the ones a
    fresh tokenization gives; a text over the limit embedded directly (bucket chunks, search queries) is
    still truncated, and a count for other texts is not reused."""
    engine: Any = server.container.embeddings.engine
    text = "The harbour crane lifts the blue container onto the ship."
    expected = _vector(oai, text)
    counter, tokenizer = _CountedTokenizer(engine._counter), _CountedTokenizer(engine._tokenizer)
    engine._counter, engine._tokenizer = counter, tokenizer
    try:
        assert np.allclose(_vector(oai, text), expected, atol=1e-6)
        assert (counter.texts, tokenizer.texts) == (1, 0)
        engine.count_tokens(["another text"])
        assert np.allclose(engine.embed([text])[0], expected, atol=1e-6)
        assert tokenizer.texts == 1
        long = " ".join(["container"] * 400)
        assert engine.count_tokens([long])[0] > engine.max_tokens
        truncated = engine.embed([long])
        assert tokenizer.texts == 2
        prefix = " ".join(["container"] * (engine.max_tokens - 2))  # [CLS] + 254 tokens + [SEP]
        assert np.allclose(truncated, engine.embed([prefix]), atol=1e-5)
    finally:
        engine._counter, engine._tokenizer = counter.tokenizer, tokenizer.tokenizer
