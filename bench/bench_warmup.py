"""The first requests after a start (`ops.warmup`): each kind's first request on a fresh `inferline serve`
once `/ready` answers 200, next to the median of the same server's next four (warm), with the start-up
warm-up on and off (`INFERLINE_WARMUP=none`: `/ready` answers at once, models load at their first request);
and the seconds from start to `/ready` each way.

Per profile whose models are all installed: `test` (SmolLM2-135M, whisper tiny.en) always, `default`
(Qwen2.5-Coder-1.5B, whisper base) when installed (not in smoke mode). Requests: a streamed chat completion
(time to first token; each with its own prompt, so none reads another's from llama.cpp's prompt cache), one
embedded sentence, a spoken sentence (WAV), a 2-second transcription (a tone: the encoder and decoder run
the same as on speech).
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

from bench.common import BENCH_KEY, REPO, SMOKE, Row, server_process
from inferline import catalog

KINDS = ("chat", "embeddings", "tts", "stt")
# Each request its own input, as in real traffic (a chat prompt another one cached, or an input shape
# onnxruntime already planned, would be faster than a new one).
PROMPTS = ("Say hello to Ann.", "Say goodbye to Bo.", "Name a red fruit.", "Name a city.", "Count to four.")
SENTENCES = (
    "The first request.",
    "Where is my parcel?",
    "I would like to change the delivery address, please.",
    "Thanks for calling.",
    "Can you tell me when the replacement part will arrive at the depot?",
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
        body = {"model": models["chat"], "messages": [{"role": "user", "content": prompt}], "max_tokens": 8,
                "temperature": 0, "stream": True}  # fmt: skip
        started = time.perf_counter()
        with http.stream("POST", "/v2/ai/openai/chat/completions", json=body) as answer:
            answer.raise_for_status()
            for line in answer.iter_lines():
                if line.startswith("data: {") and '"content":"' in line.replace(" ", ""):
                    return (time.perf_counter() - started) * 1000
        raise AssertionError("no token streamed")

    def timed(path: str, **kwargs: object) -> Callable[[], float]:
        def call() -> float:
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


def _start(profile: str, warmup: str) -> tuple[float, dict[str, tuple[float, float]]]:
    """(seconds from start to `/ready` 200, kind -> (first request ms, second request ms))."""
    started = time.monotonic()
    with server_process({"INFERLINE_PROFILE": profile, "INFERLINE_WARMUP": warmup}) as (url, _pid):
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
            while http.get("/ready").status_code != 200:
                time.sleep(0.05)
            ready = time.monotonic() - started
            calls = [_requests(http, profile, n) for n in range(len(PROMPTS))]
            return ready, {
                kind: (calls[0][kind](), statistics.median(c[kind]() for c in calls[1:])) for kind in KINDS
            }


def _installed(profile: str) -> bool:
    models = Path(os.environ.get("INFERLINE_MODELS_DIR", str(REPO / "data" / "models")))
    return all(catalog.is_installed(models, e) for e in catalog.for_profile(profile))


def run() -> list[Row]:
    rows: list[Row] = []
    for profile in ("test",) if SMOKE else ("test", "default"):
        if not _installed(profile):
            continue
        ready_on, on = _start(profile, "all")
        ready_off, off = _start(profile, "none")
        names = {e.kind: e.id.split("/")[-1] for e in catalog.for_profile(profile)}
        for kind in KINDS:
            what = "first chat token" if kind == "chat" else f"first {kind} request"
            rows.append(
                Row(
                    f"{what} after start, warm-up on ({names[kind]})",
                    on[kind][0],
                    on[kind][1],
                    "ms",
                    "the same server's next 4 requests (warm, median)",
                    False,
                )
            )
            rows.append(
                Row(
                    f"  the same, warm-up off ({names[kind]})",
                    off[kind][0],
                    off[kind][1],
                    "ms",
                    "the same server's next 4 requests (warm, median)",
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
