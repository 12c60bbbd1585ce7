"""Concurrent single-text embedding requests share one model run (`engines.micro_batch.MicroBatcher`); each
caller still gets exactly its own vector, and one caller's failure is only that caller's."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import openai
import pytest

from inferline.engines.micro_batch import MicroBatcher
from tests.conftest import LiveServer

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _vectors(texts: list[str]) -> np.ndarray:
    """A stand-in model: row i is (len(text), first character code)."""
    return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def _wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def test_calls_waiting_during_a_run_go_together_in_the_next_run() -> None:
    runs: list[list[str]] = []
    batcher: MicroBatcher

    def run(texts: list[str]) -> np.ndarray:
        runs.append(list(texts))
        if len(runs) == 1:  # hold the first run until the 7 other calls are queued behind it
            _wait_for(lambda: len(batcher._queue) == 7, "the other calls to queue")
        return _vectors(texts)

    batcher = MicroBatcher(run, max_texts=32)
    texts = [f"{chr(97 + i)}{'x' * i}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher, [texts[0]])
        _wait_for(lambda: len(runs) == 1, "the first run")
        rest = [pool.submit(batcher, [t]) for t in texts[1:]]
        results = [first.result(), *(f.result() for f in rest)]
    assert [len(r) for r in runs] == [1, 7]
    for text, result in zip(texts, results, strict=True):
        assert result.tolist() == _vectors([text]).tolist()


def test_batches_hold_at_most_max_texts_and_multi_text_calls_stay_whole() -> None:
    runs: list[int] = []
    batcher: MicroBatcher

    def run(texts: list[str]) -> np.ndarray:
        runs.append(len(texts))
        if len(runs) == 1:
            _wait_for(lambda: len(batcher._queue) == 4, "the other calls to queue")
        return _vectors(texts)

    batcher = MicroBatcher(run, max_texts=5)
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(batcher, ["a"])
        _wait_for(lambda: len(runs) == 1, "the first run")
        calls = [["b", "bb", "bbb"], ["c", "cc"], ["d"], ["e", "ee", "eee", "eeee"]]
        futures = [pool.submit(batcher, c) for c in calls]
        results = [f.result() for f in futures]
    first.result()
    assert runs == [1, 5, 5]  # [b*3 + c*2], then [d + e*4]: calls in order, never split
    for call, result in zip(calls, results, strict=True):
        assert result.tolist() == _vectors(call).tolist()


def test_a_failing_call_fails_alone() -> None:
    batcher: MicroBatcher
    started = threading.Event()

    def run(texts: list[str]) -> np.ndarray:
        if not started.is_set():
            started.set()
            _wait_for(lambda: len(batcher._queue) == 3, "the other calls to queue")
        if "bad" in texts:
            raise ValueError("bad input")
        return _vectors(texts)

    batcher = MicroBatcher(run)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher, ["first"])
        started.wait(10)
        good = [pool.submit(batcher, [t]) for t in ("good", "fine")]
        bad = pool.submit(batcher, ["bad"])
        assert first.result().tolist() == _vectors(["first"]).tolist()
        for future, text in zip(good, ("good", "fine"), strict=True):
            assert future.result().tolist() == _vectors([text]).tolist()
        with pytest.raises(ValueError, match="bad input"):
            bad.result()
    assert batcher(["after"]).tolist() == _vectors(["after"]).tolist()  # the batcher is idle and usable again


def test_concurrent_single_text_requests_each_get_their_own_vector(server: LiveServer) -> None:
    oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0)
    texts = [f"sentence number {i} about {topic}" for i, topic in enumerate(["ships", "bread", "ice"] * 6)]

    def one(text: str) -> np.ndarray:
        return np.array(oai.embeddings.create(model=MINILM, input=text).data[0].embedding)

    alone = [one(t) for t in texts]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(one, texts))
    for a, b in zip(alone, together, strict=True):
        assert float(a @ b) > 0.999  # the same vector (a batch pads, so the last digits may differ)
    assert float(alone[0] @ alone[1]) < 0.99  # and the texts' vectors do differ


def test_a_lone_call_right_after_a_burst_runs_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first request after a burst of concurrent ones must not wait for company that may never come: it
    paid 7 to 19 ms on top of a 3 ms request when the leader waited for the burst's callers to come back."""
    runs: list[list[str]] = []
    batcher: MicroBatcher

    def run(texts: list[str]) -> np.ndarray:
        runs.append(list(texts))
        if len(runs) == 1:  # hold the first run until two other calls are queued behind it
            _wait_for(lambda: len(batcher._queue) == 2, "the other calls to queue")
        return _vectors(texts)

    batcher = MicroBatcher(run)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(batcher, ["a"])
        _wait_for(lambda: len(runs) == 1, "the first run")
        burst = [pool.submit(batcher, [t]) for t in ("b", "c")]
        first.result(), [f.result() for f in burst]
    assert [len(r) for r in runs] == [1, 2]

    caller = threading.get_ident()
    wait = threading.Condition.wait
    patched = False
    bystander: list[BaseException] = []  # e.g. the session server's usage writer, killed by the patch once

    def wait_elsewhere() -> None:
        while not patched:
            time.sleep(0.001)
        try:
            threading.Event().wait(0.001)
        except BaseException as exc:
            bystander.append(exc)

    other = threading.Thread(target=wait_elsewhere)
    other.start()

    def no_waiting(self: threading.Condition, timeout: float | None = None) -> bool:
        if threading.get_ident() != caller:  # the patch is process-wide: other threads (the server's) wait
            return wait(self, timeout)
        raise AssertionError(f"the lone call waited for company (up to {timeout} s)")

    monkeypatch.setattr(threading.Condition, "wait", no_waiting)
    patched = True
    assert batcher(["d"]).tolist() == _vectors(["d"]).tolist()  # in this thread, without waiting
    assert runs[2:] == [["d"]]
    other.join()  # a lock, not a Condition
    assert not bystander
