"""llama.cpp from PyPI on a CUDA GPU: the one CUDA build PyPI holds, beside the CPU (docs/DEVELOPING.md).

PyPI's `xllamacpp` (the chat engine's pinned build) is CPU-only. The only CUDA build of llama.cpp that
installs from PyPI as a binary is `xllamacpp-cuda12x` 0.1.6 (March 2025, CPython 3.11 only, CUDA 12 kernels
whose libraries must be loaded first, an older API: JSON strings in, two callbacks out, no cancelling).
This measures, on SmolLM2-135M (the test profile's chat model; the default Qwen2.5-Coder-1.5B is too large
to travel to the device machine):

- `legacy-gpu`: that build with every layer on the GPU (`n_gpu_layers=99`);
- `legacy-cpu`: the same build with no GPU visible (`CUDA_VISIBLE_DEVICES=`), at each thread count;
- `pypi-cpu`: the pinned xllamacpp 2026.10 on the CPU at each thread count (what users get today).

Each: decode tokens/s (256 greedy tokens, median of 3), time to first token on a ~1,000-token prompt (no
cached prefix, median of 3), both timed here from the stream's chunks; and the 64-token greedy text. Stdlib
only (the Python 3.11 carried to the device machine has nothing else). Results: scripts/gpu_check/results/.

Usage: `python chat.py MODEL OUT NAME [GPU_LAYERS THREADS...]`; writes OUT/gpu-chat-NAME.json.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

MODEL, OUT, NAME = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
GPU_LAYERS = int(sys.argv[4]) if len(sys.argv) > 4 else 0
THREADS = [int(t) for t in sys.argv[5:]] or [os.cpu_count() or 1]
RUNS = 3
SENTENCE = (
    "The harbour master wrote in the log that the morning tide came in early, that two fishing boats left "
    "before dawn, that the ferry from the island was delayed by fog for nearly an hour, and that the wind "
    "turned to the north-east by noon. "
)
LONG_PROMPT = SENTENCE * 18 + "In the afternoon he noted"  # ~1,000 tokens
SHORT_PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."

if NAME.startswith("legacy"):
    # The build's library names no CUDA library it needs (no DT_NEEDED): the driver's, CUDA 12's runtime's and
    # cuBLAS's symbols must already be in the process, so they are loaded first, global (CHAT_PRELOAD: paths).
    for library in ["libcuda.so.1", *filter(None, os.environ.get("CHAT_PRELOAD", "").split(":"))]:
        ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
import xllamacpp  # noqa: E402

LEGACY = not hasattr(xllamacpp, "get_device_info")


def server(threads: int) -> Any:
    params = xllamacpp.CommonParams()
    if LEGACY:
        params.model = str(MODEL)
    else:
        params.model.path = str(MODEL)
    params.n_parallel, params.n_ctx = 1, 4096
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
    params.n_gpu_layers = GPU_LAYERS
    return xllamacpp.Server(params)


def stream(svr: Any, body: dict[str, Any]) -> tuple[float, list[float], str]:
    """(start, one time per chunk with text, the text) of a streamed raw completion."""
    stamps: list[float] = []
    text: list[str] = []
    errors: list[Any] = []

    def chunk(data: Any) -> bool:
        data = json.loads(data) if isinstance(data, (str, bytes)) else data
        if "error" in data or "choices" not in data:
            errors.append(data)
            return True
        piece = "".join(c.get("text") or "" for c in data["choices"])
        if piece:
            stamps.append(time.perf_counter())
            text.append(piece)
        return False

    body = {**body, "stream": True, "temperature": 0, "cache_prompt": False}
    started = time.perf_counter()
    if LEGACY:
        svr.handle_completions(json.dumps(body), lambda e: errors.append(e), chunk)
    else:
        svr.handle_completions(body, chunk)
    if errors:
        raise RuntimeError(f"llama.cpp answered {errors[0]!r}")
    return started, stamps, "".join(text)


def measure(threads: int) -> dict[str, Any]:
    loaded = time.perf_counter()
    svr = server(threads)
    result: dict[str, Any] = {"threads": threads, "load_s": round(time.perf_counter() - loaded, 2)}
    stream(svr, {"prompt": SHORT_PROMPT, "max_tokens": 16})  # warm-up
    rates, ttfts = [], []
    for _ in range(RUNS):
        _start, stamps, _text = stream(svr, {"prompt": SHORT_PROMPT, "max_tokens": 256, "ignore_eos": True})
        rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
        start, stamps, _text = stream(svr, {"prompt": LONG_PROMPT, "max_tokens": 1})
        ttfts.append((stamps[0] - start) * 1000)
    result["decode_tok_s"] = [round(r, 1) for r in rates]
    result["decode_tok_s_median"] = round(statistics.median(rates), 1)
    result["ttft_1k_ms"] = [round(t, 1) for t in ttfts]
    result["ttft_1k_ms_median"] = round(statistics.median(ttfts), 1)
    result["greedy_64"] = stream(svr, {"prompt": SHORT_PROMPT, "max_tokens": 64, "ignore_eos": True})[2]
    del svr
    print(NAME, json.dumps(result), flush=True)
    return result


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "name": NAME,
        "xllamacpp": getattr(xllamacpp, "__version__", "?"),
        "python": platform.python_version(),
        "gpu_layers": GPU_LAYERS,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "runs": [],
        "errors": [],
    }
    for threads in THREADS:
        try:
            results["runs"].append(measure(threads))
        except Exception:
            text = traceback.format_exc()
            print(text, flush=True)
            results["errors"].append(text)
    (OUT / f"gpu-chat-{NAME}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
