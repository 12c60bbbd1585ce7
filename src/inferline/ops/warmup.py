"""`Warmup`: an API process loads its default models at start-up, so the first requests find them hot.

Engines load their weights on first use. Without this, the first request of each kind after a start paid the
load and the engine's first run (quiet 2-core machine, test profile: chat 2.4 s instead of 30 ms, the
llama.cpp load and its thread-count measurement; embeddings 343 ms instead of 5; speech 440 instead of 61;
transcription 492 instead of 193). A daemon thread started with the process loads each kind's default model
and runs it once on a tiny input, shortest first (embeddings, speech, transcription, chat). `GET /ready`
answers 503 `warming` until it is done, so a load balancer sends traffic to warm replicas; requests that
arrive meanwhile are served (each waits for the load it needs, as before). A model that fails to load is
reported in `/ready` but does not hold readiness back: its requests answer the load's error, as they would.

Then, in `inferline serve`, the objects alive after the start-up are left out of Python's later garbage
collections (`freeze_start_up_objects`), with or without steps. Not where the app is built by other code (the
tests build many apps in one process, and a cycle among frozen objects, such as a closed container, is never
collected).

`INFERLINE_WARMUP` picks the kinds: `all` (the default), `none`, or a comma list of `chat`, `embeddings`,
`stt`, `tts`. Kinds with no installed model, and remote models (nothing to load here), are skipped.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferline.engines.chat import EngineRequest
from inferline.engines.stt import SAMPLE_RATE

log = logging.getLogger("inferline")
# What speech warms on: a sentence as long as most a voice agent says. onnxruntime grows its memory for the
# largest tensors it has met; warmed on "Ready." the first 40-character sentence took 5 to 8 ms longer than
# the next ones (Piper, 2-core machine), warmed on this one it does not.
SPEECH = "Thanks for waiting; your replacement card will arrive at your home address on Monday."


@dataclass
class Step:
    """One model to warm: its kind, its id, and the call that loads it and runs it once."""

    kind: str
    model_id: str
    warm: Callable[[], None]
    status: str = "pending"  # pending, warming, ok or failed
    seconds: float | None = None
    detail: str | None = None

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "model": self.model_id, "status": self.status}
        if self.seconds is not None:
            out["seconds"] = round(self.seconds, 2)
        if self.detail:
            out["detail"] = self.detail
        return out


class Warmup:
    """Runs `steps` one after another in a daemon thread (`start`), then, with `freeze`, freezes the objects
    of the start-up (`freeze_start_up_objects`); `check()` is its `/ready` entry."""

    def __init__(self, steps: list[Step], freeze: bool = False) -> None:
        self.steps = steps
        self.freeze = freeze
        self._stop = threading.Event()
        self._settled = threading.Event()  # set once the steps have ended and, with `freeze`, the freeze ran
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None and self.steps:
            self._thread = threading.Thread(target=self.run, name="inferline-warmup", daemon=True)
            self._thread.start()
        elif not self.steps:
            self._settle()

    def run(self) -> None:
        for step in self.steps:
            if self._stop.is_set():
                return
            step.status, started = "warming", time.perf_counter()
            try:
                step.warm()
            except Exception as exc:  # its requests meet the same error; the others still warm
                step.status, step.detail = "failed", f"{type(exc).__name__}: {exc}"[:300]
                log.warning("warm-up of %s model %s failed: %s", step.kind, step.model_id, step.detail)
            else:
                step.status = "ok"
            step.seconds = time.perf_counter() - started
        self._settle()
        log.info(
            "warm-up done: %s",
            ", ".join(f"{s.model_id} {s.status} in {s.seconds or 0:.1f} s" for s in self.steps),
        )

    def _settle(self) -> None:
        if self.freeze:
            freeze_start_up_objects()
        self._settled.set()

    @property
    def done(self) -> bool:
        """Every step ended, and the freeze ran (so `/ready` turns 200 after that collection's pause)."""
        return self._settled.is_set() and all(s.status in ("ok", "failed") for s in self.steps)

    def check(self) -> dict[str, Any]:
        """`ok` once every model is warm or has failed; `warming` before."""
        return {
            "name": "warmup",
            "status": "ok" if self.done else "warming",
            "models": [s.report() for s in self.steps],
        }

    def stop(self, timeout: float = 60.0) -> None:
        """No further step starts; waits (at most `timeout`) for the one loading now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def freeze_start_up_objects() -> None:
    """Collects the garbage of the start-up, then leaves what remains out of every later collection
    (`gc.freeze`): the modules, models and app a server holds for its whole life. Python's full collection
    walks every tracked object, and a started server holds ~200,000 (test profile): a full collection took
    90 to 120 ms, with every request stopped meanwhile; after the freeze it takes 0.3 ms (2-core machine).
    Frozen objects are still freed when their last reference goes; only a cycle among them would stay."""
    gc.collect()
    gc.freeze()


def warmup_steps(container: Any, kinds: tuple[str, ...]) -> list[Step]:
    """The default model of each of `kinds` that this process runs itself, with its warming call."""
    installed = {kind: {e.id for e in container.models.installed(kind)} for kind in kinds}
    steps: list[Step] = []
    for kind in kinds:
        if not installed[kind]:
            continue
        try:
            step = _step(container, kind, installed[kind])
        except Exception as exc:  # e.g. a default voice that is not installed: its requests say so
            log.warning("warm-up of the %s model skipped: %s", kind, exc)
            continue
        if step is not None:
            steps.append(step)
    return steps


def _step(container: Any, kind: str, installed: set[str]) -> Step | None:
    """The warming step of `kind`'s default model; None when it does not run in this process."""
    if kind == "embeddings":
        embedder = container.embeddings.engine
        if embedder.model_id not in installed:
            return None
        return Step(kind, embedder.model_id, lambda: embedder.embed(["Warm-up."]))
    if kind == "tts":
        voice = container.speech.default()
        return Step(kind, voice.engine.model_id, lambda: _drain(voice.engine.synthesize(SPEECH)))
    if kind == "stt":
        entry = container.models.default("stt")
        stt = container.transcription.engine(entry)
        silence = np.zeros(SAMPLE_RATE, dtype=np.float32)  # one second: the encoder and one decoder pass
        return Step(kind, entry.id, lambda: stt.transcribe(silence))
    chat = container.chat.pool.default_engine()
    if chat is None:
        return None
    hello = EngineRequest([{"role": "user", "content": "Hello"}], {"max_tokens": 1, "temperature": 0})
    return Step(kind, chat.name, lambda: chat.stream(hello, lambda _chunk: False))


def _drain(chunks: Any) -> None:
    for _ in chunks:
        pass
