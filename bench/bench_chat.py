"""Chat: decode tokens/s, time to first token and 4-client throughput of streamed completions through the API
(default settings) vs the same GGUF on a second xllamacpp server called directly in-process at its best
thread count, measured in the same run (a sweep over 1..physical cores picks the fastest decode, and for
the time to first token the count with the shortest one, when that is another).

Single streams go through a minimal keep-alive HTTP client (`common.RawHttp`): the client runs in this
process, beside the server, where httpx's own Python work per chunk took ~1 ms of the time to first token
and a core share from decoding; the concurrent streams go through httpx. Rounds alternate API and direct
so both see the same machine load; each round uses a fresh prompt (no prompt
cache hit on either side) and greedy decoding, so both generate the same tokens. Medians are reported. Each
timed round starts `SETTLE` seconds after the one before: after its last token a llama.cpp server's OpenMP
threads keep spinning (libgomp's 300,000-iteration wait, engines/openmp.py) and would take a core from the
other side's next round, a cost of running two servers in one process that neither has alone. Decode
is also shown as a fraction of the memory-bandwidth limit: bandwidth measured in the run (numpy copy of a
large array) ÷ the GGUF's bytes, which every decoded token reads once.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx

from bench.common import BENCH_KEY, RawHttp, Row, live_server, pick
from inferline import catalog
from inferline.container import Container
from inferline.engines.cpu import physical_cores

ROUNDS = pick(12, 1)
SWEEP_ROUNDS = pick(4, 1)  # per thread count, to pick the baseline's best
MAX_TOKENS = pick(64, 16)
CLIENTS = pick(4, 2)
SETTLE = 0.05  # seconds between timed rounds (see the module docstring)
MODELS = ("HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-Coder-1.5B-Instruct")
# `BENCH_CHAT_MODELS=SmolLM2`: only the models whose id contains one of these comma-separated names.
ONLY = [name for name in os.environ.get("BENCH_CHAT_MODELS", "").split(",") if name]


def _prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Story {i}: tell a long story about a lighthouse keeper."}]


Round = tuple[float, float, int, int]  # (ttft ms, decode tokens/s, tokens, prompt tokens read from the cache)


def _timing(first: float | None, last: float | None, start: float, usage: dict[str, Any]) -> Round:
    """A round's figures from client-side timestamps and the last chunk's usage."""
    tokens = usage.get("completion_tokens", 0)
    assert first is not None and last is not None and tokens > 1, "no tokens streamed"
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return (first - start) * 1000, (tokens - 1) / (last - first), tokens, cached


def _api_round(client: RawHttp | httpx.Client, model: str, i: int) -> Round:
    """One streamed completion through the API: through `RawHttp` for the single-stream figures (so the
    client's own Python work, in this process beside the server, stays out of them), through httpx for the
    concurrent streams."""
    body = {
        "model": model,
        "messages": _prompt(i),
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
    }
    state: dict[str, Any] = {"first": None, "last": None, "usage": {}}

    def on_event(data: bytes | str) -> None:
        if data[:1] not in ("{", b"{"):
            return
        chunk = json.loads(data)
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            now = time.perf_counter()
            state["first"] = state["first"] or now
            state["last"] = now
        if chunk.get("usage"):
            state["usage"] = chunk["usage"]

    start = time.perf_counter()
    if isinstance(client, RawHttp):
        client.stream("/ai/openai/chat/completions", body, on_event)
    else:
        with client.stream("POST", "/ai/openai/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: "):
                    on_event(line[6:])
    return _timing(state["first"], state["last"], start, state["usage"])


def _direct_server(gguf: str, parallel: int, context: int, threads: int) -> Any:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.n_parallel = parallel
    params.n_ctx = context * parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.port = 0
    params.verbosity = 0
    return xllamacpp.Server(params)


def _direct_round(server: Any, i: int) -> Round:
    body = {"messages": _prompt(i), "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True}
    body["stream_options"] = {"include_usage": True}
    state: dict[str, Any] = {"first": None, "last": None, "usage": {}}

    def on_chunk(chunk: dict[str, Any]) -> bool:
        if chunk.get("choices") and (chunk["choices"][0].get("delta") or {}).get("content"):
            now = time.perf_counter()
            state["first"] = state["first"] or now
            state["last"] = now
        if chunk.get("usage"):
            state["usage"] = chunk["usage"]
        return False

    start = time.perf_counter()
    server.handle_chat_completions(body, on_chunk)
    return _timing(state["first"], state["last"], start, state["usage"])


def thread_counts(cores: int) -> list[int]:
    """The thread counts the baseline sweep tries: 1, powers of two, the cores and the cores less one."""
    counts = {1, cores, max(1, cores - 1)} | {2**k for k in range(1, cores.bit_length()) if 2**k < cores}
    return sorted(counts)


def best_direct(gguf: str, parallel: int, context: int) -> tuple[tuple[Any, int], tuple[Any, int]]:
    """The direct server at the thread count with the fastest median decode, and the one with the shortest
    median time to first token (the same server when one count wins both), each with its count: on a model
    as small as SmolLM2 one thread can decode as fast as two while its prompt takes half as long again."""
    sweep: list[tuple[int, float, float]] = []  # (threads, decode tok/s, ttft ms)
    for threads in thread_counts(physical_cores()):
        server = _direct_server(gguf, parallel, context, threads)
        _direct_round(server, -1)  # load + warm up
        rounds = [_direct_round(server, 500 + i) for i in range(SWEEP_ROUNDS)]
        sweep.append(
            (threads, statistics.median(r[1] for r in rounds), statistics.median(r[0] for r in rounds))
        )
        server = None  # frees it before the next one loads
    decode_threads = max(sweep, key=lambda s: s[1])[0]
    ttft_threads = min(sweep, key=lambda s: s[2])[0]
    decode = _direct_server(gguf, parallel, context, decode_threads)
    ttft = decode if ttft_threads == decode_threads else _direct_server(gguf, parallel, context, ttft_threads)
    return (decode, decode_threads), (ttft, ttft_threads)


def memory_bandwidth() -> float:
    """Bytes/s of a numpy copy of a large array (read + write), best of 3."""
    import numpy as np

    source = np.ones(pick(512, 32) * 2**20 // 8)
    target = np.empty_like(source)
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        np.copyto(target, source)
        best = max(best, 2 * source.nbytes / (time.perf_counter() - started))
    return best


def _aggregate(one: Any, clients: int) -> float:
    """Total decoded tokens/s of `clients` concurrent streams, each `one(i) -> Round`."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(1000, 1000 + clients)))  # fresh prompts (no cache hit)
    return sum(r[2] for r in results) / (time.perf_counter() - started)


def _model_rows(http: httpx.Client, raw: RawHttp, container: Container, model: str) -> list[Row]:
    entry = catalog.find(model)
    gguf = str(catalog.model_dir(container.models.models_dir, entry) / entry.main_file)
    engine = container.chat.pool.engine(container.chat.pool.resolve("bench", model))
    (direct, best_threads), (first_direct, first_threads) = best_direct(gguf, engine.parallel, engine.context)
    baseline = f"xllamacpp in-process, same GGUF, {best_threads} threads (its best)"
    first_baseline = f"xllamacpp in-process, same GGUF, {first_threads} threads (its best first token)"
    _api_round(raw, model, -1)  # load + warm up both
    _direct_round(direct, -1)
    if first_direct is not direct:
        _direct_round(first_direct, -1)
    api: list[Round] = []
    base: list[Round] = []
    first_base: list[Round] = []

    def api_round(i: int) -> None:
        api.append(_api_round(raw, model, i))

    def direct_round(i: int) -> None:
        base.append(_direct_round(direct, i))
        if first_direct is not direct:  # the other thread count, for the time to first token
            time.sleep(SETTLE)
            first_base.append(_direct_round(first_direct, i))

    for i in range(ROUNDS):  # alternate which side goes first
        first, second = (direct_round, api_round) if i % 2 else (api_round, direct_round)
        time.sleep(SETTLE)
        first(i)
        time.sleep(SETTLE)
        second(i)
    time.sleep(SETTLE)
    api_total = _aggregate(partial(_api_round, http, model), CLIENTS)
    time.sleep(SETTLE)
    direct_total = _aggregate(partial(_direct_round, direct), CLIENTS)
    direct = first_direct = None  # frees the baseline models before the next one loads
    name = model.split("/")[-1]
    api_decode = statistics.median(a[1] for a in api)
    bandwidth, weights = memory_bandwidth(), os.path.getsize(gguf)
    limit = f"{bandwidth / 1e9:.1f} GB/s (numpy copy) ÷ {weights / 1e6:.0f} MB of weights per token"
    return [
        Row(
            f"chat decode {name} (stream, {MAX_TOKENS} tok)",
            api_decode,
            statistics.median(b[1] for b in base),
            "tok/s",
            baseline,
        ),
        Row(
            f"chat time to first token {name}",
            statistics.median(a[0] for a in api),
            statistics.median(b[0] for b in (first_base or base)),
            "ms",
            first_baseline,
            higher_is_better=False,
        ),
        Row(f"chat {CLIENTS} concurrent streams {name}", api_total, direct_total, "tok/s", baseline),
        Row(f"chat decode {name} vs memory-bandwidth limit", api_decode, bandwidth / weights, "tok/s", limit),
        Row(f"chat threads {name} (default vs baseline's best)", engine.threads, best_threads, "threads", ""),
    ]


def run() -> list[Row]:
    rows: list[Row] = []
    with live_server() as (url, container):
        installed = {e.id for e in container.models.installed("chat")}
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        raw = RawHttp(url, headers)
        with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
            for model in (m for m in MODELS if m in installed and (not ONLY or any(n in m for n in ONLY))):
                rows += _model_rows(http, raw, container, model)
        raw.close()
    return rows
