"""Chat under concurrent load: streamed decode and time to first token through the API while another client
keeps the embeddings or the transcription engine busy, next to xllamacpp in-process under the same load.

The load is one client in its own process sending requests back to back to the same server (single 60-word
embeddings, or a 10 s mp3 transcription). The baseline is xllamacpp at the thread count that decodes fastest
under that load (swept under it, since the best count can change when other work holds a core). API and
baseline rounds alternate, and so does which of them goes first, so the load hits both alike; each round
starts `SETTLE` seconds after the one before, as in `bench_chat` (the other side's OpenMP threads spin for
a moment after its last token). Through the API the engines share the CPU by the
`CpuShares` policy (engines/cpu.py); beside the baseline the load runs as the server runs it, without that
policy's pauses (the baseline holds no `SHARES.foreground()`) but with Whisper's threads at their lowered
niceness (`INFERLINE_TRANSCRIPTION_NICENESS`), which helps the baseline's decode as much as ours.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.bench_chat import SETTLE, Round, _api_round, _direct_round, _direct_server, thread_counts
from bench.common import BENCH_KEY, RawHttp, Row, live_server, pick
from inferline import catalog
from inferline.areas.audio import codec as audio_codec
from inferline.engines.cpu import physical_cores

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ROUNDS = pick(8, 1)
SWEEP_ROUNDS = pick(3, 1)
# Prompt tokens an API round may read from the cache beyond the baseline's: slots holding other prompts
# can share a token or two more of "Story <n>" with the next one.
REUSE_SLACK = 4
TEXT = " ".join(f"word{i} harbour crane lifts the container" for i in range(10))  # ~60 words

LOAD_CLIENT = """
import sys, httpx
url, key, kind, payload = sys.argv[1:5]
with httpx.Client(base_url=url, headers={"Authorization": "Bearer " + key}, timeout=300) as http:
    audio = open(payload, "rb").read() if kind == "transcription" else b""
    while True:
        if kind == "embeddings":
            reply = http.post("/ai/openai/embeddings", json={"model": payload, "input": sys.argv[5]})
        else:
            reply = http.post("/ai/audio/transcriptions", files={"file": ("call.mp3", audio)})
        reply.raise_for_status()
"""


@contextmanager
def load(url: str, kind: str, *args: str) -> Iterator[None]:
    """One client process keeping `kind` busy until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", LOAD_CLIENT, url, BENCH_KEY, kind, *args])
    try:
        time.sleep(1.0)  # its first requests are under way
        assert proc.poll() is None, f"the {kind} load client stopped"
        yield
        assert proc.poll() is None, f"the {kind} load client stopped"
    finally:
        proc.kill()
        proc.wait()


def _pair(raw: RawHttp, direct: Any, n: int, api_first: bool) -> tuple[Round, Round]:
    """An API round and a baseline round on prompt `n`, in the order given, each `SETTLE` after the last."""
    done: dict[str, Round] = {}
    for side in ("api", "direct") if api_first else ("direct", "api"):
        time.sleep(SETTLE)
        done[side] = _api_round(raw, MODEL, n) if side == "api" else _direct_round(direct, n)
    return done["api"], done["direct"]


def run() -> list[Row]:
    with live_server() as (url, container):
        if MODEL not in {e.id for e in container.models.installed("chat")}:
            return []
        entry = catalog.find(MODEL)
        gguf = str(catalog.model_dir(container.models.models_dir, entry) / entry.main_file)
        speech = container.speech.default()
        sentences = ["Thank you for calling, how can I help you today?"] * pick(3, 1)
        samples = np.concatenate([c for s in sentences for c in speech.engine.synthesize(s)])
        mp3 = audio_codec.encode(samples, speech.engine.sample_rate, "mp3")
        embeddings_model = container.models.default("embeddings").id
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        rows: list[Row] = []
        with (
            tempfile.TemporaryDirectory() as tmp,
            httpx.Client(base_url=url, headers=headers, timeout=600) as http,
        ):
            audio = Path(tmp) / "call.mp3"
            audio.write_bytes(mp3)
            raw = RawHttp(url, headers)
            _api_round(raw, MODEL, -1)  # loads the chat model: its thread count is measured
            engine = container.chat.pool.engine(container.chat.pool.resolve("bench", MODEL))
            http.post(
                "/ai/openai/embeddings", json={"model": embeddings_model, "input": TEXT}
            ).raise_for_status()
            loads = {
                "embeddings": ("embeddings", embeddings_model, TEXT),
                "transcription": ("transcription", str(audio)),
            }
            for phase, (label, args) in enumerate(loads.items()):
                # Prompts no earlier round sent: the API's server keeps its prompt cache between the
                # phases, the baseline is a new server each phase.
                first = 100 * (phase + 1)
                with load(url, *args):
                    best: tuple[float, int] = (-1.0, 1)
                    for threads in thread_counts(physical_cores()):
                        server = _direct_server(gguf, engine.parallel, engine.context, threads)
                        _direct_round(server, -1)
                        rate = statistics.median(
                            _direct_round(server, 500 + i)[1] for i in range(SWEEP_ROUNDS)
                        )
                        best = max(best, (rate, threads))
                        server = None
                    direct = _direct_server(gguf, engine.parallel, engine.context, best[1])
                    _direct_round(direct, -1)
                    pairs = [_pair(raw, direct, first + i, api_first=i % 2 == 0) for i in range(ROUNDS)]
                    direct = None
                reused = [(p[0][3], p[1][3]) for p in pairs]
                assert all(api <= direct + REUSE_SLACK for api, direct in reused), (
                    f"with {label} load the API read more of its prompts from llama.cpp's cache than the "
                    f"baseline (tokens per round, API vs baseline: {reused}): a prompt was sent twice"
                )
                baseline = f"xllamacpp in-process under the same load, {best[1]} threads (its best under it)"
                rows += [
                    Row(
                        f"chat decode with {label} load, {MODEL.split('/')[-1]}",
                        statistics.median(p[0][1] for p in pairs),
                        statistics.median(p[1][1] for p in pairs),
                        "tok/s",
                        baseline,
                    ),
                    Row(
                        f"chat time to first token with {label} load",
                        statistics.median(p[0][0] for p in pairs),
                        statistics.median(p[1][0] for p in pairs),
                        "ms",
                        baseline,
                        higher_is_better=False,
                    ),
                    Row(
                        f"  prompt tokens read from the cache per round, {label} load",
                        statistics.median(r[0] for r in reused),
                        statistics.median(r[1] for r in reused),
                        "tokens",
                        "the baseline's, same prompts (the shared template prefix; more would be a repeat)",
                    ),
                ]
        return rows
