"""`MicroBatcher`: concurrent small embedding calls share one model run (items: texts, or their encodings).

No timer and no background thread: a call that finds the model idle runs at once (a lone request pays
nothing); calls that arrive while a run is in progress queue up, and when that run ends the oldest of them
runs the whole queue (up to `max_texts` texts) as one batch for everybody.

Under concurrency the callers of a batch are answered when it ends and come back with their next call a little
later, while the next batch already starts with the others: batches would settle at a fraction of the callers.
So a leader that finds fewer calls queued than the recent batches served waits for the rest, at most `linger`
times the last run's duration (and `max_linger` seconds); a wait that times out lowers that expectation to
what arrived, so a lone caller after a burst pays it at most once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inferline.engines.embeddings import WouldWait

MAX_LINGER_SECONDS = 0.02


@dataclass
class _Call:
    texts: list[Any]
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # set when this call must run the next batch
    result: np.ndarray | None = None
    error: BaseException | None = None


class MicroBatcher:
    """Runs `run(texts) -> rows` for concurrent callers, combining the calls that wait into one batch."""

    def __init__(
        self,
        run: Callable[[list[Any]], np.ndarray],
        max_texts: int = 32,
        linger: float = 0.5,
        max_linger: float = MAX_LINGER_SECONDS,
    ) -> None:
        self.run = run
        self.max_texts = max_texts
        self.linger = linger
        self.max_linger = max_linger
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified when a call is queued
        self._queue: list[_Call] = []
        self._busy = False  # a batch is running; invariant: not busy => the queue is empty
        self._expected = 1  # calls a batch is expected to gather (the recent batches' size)
        self._last_seconds = 0.0  # how long the last run took
        self.runs = 0  # model runs made and the calls they served (runs made by one leader at a time)
        self.calls = 0

    @property
    def crowded(self) -> bool:
        """Whether calls overlap now: some are queued, or the recent batches gathered several."""
        return self._expected > 1 or bool(self._queue)

    def __call__(self, texts: list[Any]) -> np.ndarray:
        call = _Call(list(texts))
        with self._lock:
            self._queue.append(call)
            self._arrived.notify()
            lead = not self._busy
            self._busy = True
        if not lead:
            call.done.wait()
            if not call.lead:
                return self._outcome(call)
        with self._lock:  # this call leads and is the oldest queued: it runs the queue's head as one batch
            self._gather()
            batch, size = [], 0
            while self._queue and (not batch or size + len(self._queue[0].texts) <= self.max_texts):
                size += len(self._queue[0].texts)
                batch.append(self._queue.pop(0))
            self._expected = max(self._expected, len(batch))
        try:
            self._run(batch)
        finally:
            self._hand_over()
            for member in batch:
                if member.result is None and member.error is None:
                    member.error = RuntimeError("The embedding batch was interrupted.")
                if member is not call:
                    member.done.set()
        return self._outcome(call)

    def now(self, texts: list[Any]) -> np.ndarray:
        """`run(texts)` in the calling thread at once, as a batch of its own; `WouldWait` when a batch is
        running."""
        with self._lock:
            if self._busy:
                raise WouldWait("an embedding batch is running")
            self._busy = True
        call = _Call(list(texts))
        try:
            self._run([call])
        finally:
            self._hand_over()
        return self._outcome(call)

    @property
    def busy(self) -> bool:
        """Whether a batch is running (calls made now would wait for it)."""
        return self._busy

    def _hand_over(self) -> None:
        """After a batch: the oldest waiting call leads the next one, else the batcher is idle."""
        with self._lock:
            if self._queue:
                self._queue[0].lead = True
                self._queue[0].done.set()
            else:
                self._busy = False

    def _gather(self) -> None:
        """With the lock held: wait (briefly, see the module docstring) for the calls the batch expects."""
        if len(self._queue) >= self._expected:
            return
        deadline = time.monotonic() + min(self._last_seconds * self.linger, self.max_linger)
        while len(self._queue) < self._expected and sum(len(c.texts) for c in self._queue) < self.max_texts:
            left = deadline - time.monotonic()
            if left <= 0:
                self._expected = len(self._queue)  # fewer callers now: do not wait for them again
                return
            self._arrived.wait(left)

    def _run(self, batch: list[_Call]) -> None:
        """Fill each call's result (or its error); a failing batch is retried call by call."""
        started = time.monotonic()
        try:
            rows = self.run([t for c in batch for t in c.texts])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            for member in batch:
                self._run([member])
            return
        self._last_seconds = time.monotonic() - started
        self.runs, self.calls = self.runs + 1, self.calls + len(batch)
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
