"""The first requests after a start (`ops.warmup`): each kind's first request on a fresh `inferline serve`
once `/ready` answers 200, next to the median of the same server's next four (warm), with the start-up
warm-up on (`STARTS` starts: the medians of their first requests and of their warm ones) and off
(`INFERLINE_WARMUP=none`: `/ready` answers at once, models load at their first request; one start); and the
seconds from start to `/ready` each way.

Per profile whose models are all installed: `test` (SmolLM2-135M, whisper tiny.en) always, `default`
(Qwen2.5-Coder-1.5B, whisper base) when installed (not in smoke mode). Requests: a streamed chat completion
(time to first token; each with its own prompt, so none reads another's from llama.cpp's prompt cache), one
embedded sentence, a spoken sentence (WAV), a 2-second transcription (a tone: the encoder and decoder run
the same as on speech). The requests go in rounds, each kind once per round (the first round is the first
requests, the next four the warm ones), each starts `SETTLE` after the previous one ended, and the first
one's input is of the warm ones' size (see `SENTENCES`). Until 2026-11-27 each kind's first request was
followed by its four warm ones: the first embeddings request came right after the chats, whose weights had
evicted MiniLM's from the CPU caches (with Qwen2.5-Coder-1.5B: 12.8 against 5.9 ms), and started while the
last chat generation was still ending; and the first speech had the shortest sentence. That showed a first
embeddings request at 0.4 of the warm ones and a first speech at 1.4.
"""

from __future__ import annotations

import io
import os
import statistics
import time
import wave
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from bench.common import BENCH_KEY, REPO, SMOKE, Row, pick, server_process
from inferline import catalog

KINDS = ("chat", "embeddings", "tts", "stt")
# Seconds of quiet before each timed request: the one before it has ended (a chat is read to its last chunk)
# and its engine's threads have stopped spinning, so no request pays for the previous one, warm or first.
SETTLE = pick(0.2, 0.0)
# Starts with the warm-up on: a first request happens once per start, so one start gives one sample of it.
STARTS = pick(3, 1)
# Each request its own input, as in real traffic (a chat prompt another one cached, or an input shape
# onnxruntime already planned, would be faster than a new one), of about the same size: the first one is
# in the middle of the others (MiniLM tokens 10 against 8, 9, 11, 12; characters 42 against 38 to 47), so
# the warm median is not shorter or longer work than the first request.
PROMPTS = ("Say hello to Ann.", "Say goodbye to Bo.", "Name a red fruit.", "Name a city.", "Count to four.")
SENTENCES = (
    "Your parcel will arrive on Monday morning.",
    "Your technician arrives tomorrow morning.",
    "We moved your appointment to Thursday.",
    "The courier will call you before noon tomorrow.",
    "Your refund will reach your account on Friday.",
)


def _wav() -> bytes:
    """Two seconds of a 440 Hz tone at 16 kHz, 16-bit mono."""
    rate = 16_000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate) * 32767).astype(np.int16)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone.tobytes())
    return out.getvalue()


def _requests(http: httpx.Client, profile: str, n: int) -> dict[str, Callable[[], float]]:
    """The `n`th request of each kind, each returning its milliseconds (chat: to the first token)."""
    models = {e.kind: e.id for e in catalog.for_profile(profile)}
    audio = _wav()
    prompt, sentence = PROMPTS[n], SENTENCES[n]

    def chat() -> float:
        time.sleep(SETTLE)
        body = {"model": models["chat"], "messages": [{"role": "user", "content": prompt}], "max_tokens": 8,
                "temperature": 0, "stream": True}  # fmt: skip
        started = time.perf_counter()
        first = None
        with http.stream("POST", "/v2/ai/openai/chat/completions", json=body) as answer:
            answer.raise_for_status()
            for line in answer.iter_lines():
                if first is None and line.startswith("data: {") and '"content":"' in line.replace(" ", ""):
                    first = (time.perf_counter() - started) * 1000
        assert first is not None, "no token streamed"
        return first

    def timed(path: str, **kwargs: object) -> Callable[[], float]:
        def call() -> float:
            time.sleep(SETTLE)
            started = time.perf_counter()
            http.post(path, **kwargs).raise_for_status()  # type: ignore[arg-type]
            return (time.perf_counter() - started) * 1000

        return call

    return {
        "chat": chat,
        "embeddings": timed(
            "/v2/ai/openai/embeddings", json={"model": models["embeddings"], "input": sentence}
        ),
        "tts": timed(
            "/v2/ai/openai/audio/speech",
            json={
                "model": "tts-1",
                "voice": "alloy",
                "input": sentence,
                "response_format": "wav",
            },
        ),
        "stt": timed(
            "/v2/ai/openai/audio/transcriptions",
            data={"model": "whisper-1"},
            files={"file": ("t.wav", audio)},
        ),
    }


def _start(profile: str, warmup: str) -> tuple[float, list[dict[str, float]]]:
    """(seconds from start to `/ready` 200, the milliseconds of each kind's request in each round)."""
    started = time.monotonic()
    with server_process({"INFERLINE_PROFILE": profile, "INFERLINE_WARMUP": warmup}) as (url, _pid):
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
            while http.get("/ready").status_code != 200:
                time.sleep(0.05)
            ready = time.monotonic() - started
            # Round by round (each kind once per round), so that each warm request follows the same kinds as
            # the first one did: a chat streams the model's weights through the CPU caches, and the request
            # after it finds its own weights evicted whether it is the first one or not.
            rounds = [_requests(http, profile, n) for n in range(len(PROMPTS))]
            return ready, [{kind: calls[kind]() for kind in KINDS} for calls in rounds]


def _first_and_warm(starts: list[tuple[float, list[dict[str, float]]]]) -> dict[str, tuple[float, float]]:
    """kind -> (median of the first requests of `starts`, median of their later ones)."""
    return {
        kind: (
            statistics.median(took[0][kind] for _, took in starts),
            statistics.median(t[kind] for _, took in starts for t in took[1:]),
        )
        for kind in KINDS
    }


def _installed(profile: str) -> bool:
    models = Path(os.environ.get("INFERLINE_MODELS_DIR", str(REPO / "data" / "models")))
    return all(catalog.is_installed(models, e) for e in catalog.for_profile(profile))


def run() -> list[Row]:
    rows: list[Row] = []
    for profile in ("test",) if SMOKE else ("test", "default"):
        if not _installed(profile):
            continue
        starts = [_start(profile, "all") for _ in range(STARTS)]
        ready_on, on = statistics.median(ready for ready, _ in starts), _first_and_warm(starts)
        cold = _start(profile, "none")  # once: seconds, not milliseconds, apart
        ready_off, off = cold[0], _first_and_warm([cold])
        names = {e.kind: e.id.split("/")[-1] for e in catalog.for_profile(profile)}
        for kind in KINDS:
            what = "first chat token" if kind == "chat" else f"first {kind} request"
            rows.append(
                Row(
                    f"{what} after start, warm-up on ({names[kind]}, median of {STARTS} starts)",
                    on[kind][0],
                    on[kind][1],
                    "ms",
                    "the same servers' next 4 rounds (warm, median)",
                    False,
                )
            )
            rows.append(
                Row(
                    f"  the same, warm-up off ({names[kind]})",
                    off[kind][0],
                    off[kind][1],
                    "ms",
                    "the same server's next 4 rounds (warm, median)",
                    False,
                )
            )
        rows.append(
            Row(
                f"start to /ready, warm-up on ({profile} profile)",
                ready_on,
                ready_off,
                "s",
                "the same, warm-up off (models load at their first request)",
                False,
            )
        )
    return rows
