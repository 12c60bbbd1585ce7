"""`MicroBatcher`: concurrent small embedding calls share one model run.

No timer and no background thread: a call that finds the model idle runs at once (a lone request pays
nothing); calls that arrive while a run is in progress queue up, and when that run ends the oldest of them
runs the whole queue (up to `max_texts` texts) as one batch for everybody. Under concurrency, batches form by
themselves from the requests that arrived during the previous run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Call:
    texts: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # set when this call must run the next batch
    result: np.ndarray | None = None
    error: BaseException | None = None


class MicroBatcher:
    """Runs `run(texts) -> rows` for concurrent callers, combining the calls that wait into one batch."""

    def __init__(self, run: Callable[[list[str]], np.ndarray], max_texts: int = 32) -> None:
        self.run = run
        self.max_texts = max_texts
        self._lock = threading.Lock()
        self._queue: list[_Call] = []
        self._busy = False  # a batch is running; invariant: not busy => the queue is empty

    def __call__(self, texts: list[str]) -> np.ndarray:
        call = _Call(list(texts))
        with self._lock:
            self._queue.append(call)
            lead = not self._busy
            self._busy = True
        if not lead:
            call.done.wait()
            if not call.lead:
                return self._outcome(call)
        with self._lock:  # this call leads and is the oldest queued: it runs the queue's head as one batch
            batch, size = [], 0
            while self._queue and (not batch or size + len(self._queue[0].texts) <= self.max_texts):
                size += len(self._queue[0].texts)
                batch.append(self._queue.pop(0))
        try:
            self._run(batch)
        finally:
            with self._lock:
                if self._queue:  # hand the lead to the oldest waiting call
                    self._queue[0].lead = True
                    self._queue[0].done.set()
                else:
                    self._busy = False
            for member in batch:
                if member.result is None and member.error is None:
                    member.error = RuntimeError("The embedding batch was interrupted.")
                if member is not call:
                    member.done.set()
        return self._outcome(call)

    def _run(self, batch: list[_Call]) -> None:
        """Fill each call's result (or its error); a failing batch is retried call by call."""
        try:
            rows = self.run([t for c in batch for t in c.texts])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            for member in batch:
                self._run([member])
            return
        start = 0
        for member in batch:
            member.result = rows[start : start + len(member.texts)]
            start += len(member.texts)

    @staticmethod
    def _outcome(call: _Call) -> np.ndarray:
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result
