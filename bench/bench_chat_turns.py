"""Chat multi-turn: time to first token per turn of ~2k-token conversations through the API (prompt prefix
reuse: llama.cpp keeps each slot's KV cache and a RAM prompt cache, and picks the idle slot whose cached
prompt shares the longest prefix) vs the same conversation on xllamacpp in-process without reuse
(`cache_prompt: false`, every turn re-reads the whole conversation) and with its own prompt cache.

Conversations run two at a time, turns interleaved (A1 B1 A2 B2 ...), so each turn N must find the slot (or
the RAM cache entry) that holds its turn N-1. Every turn adds ~190 prompt tokens and keeps the model's own
greedy reply, as a client would; turn 10 is ~2k tokens. Each API turn is followed by the same messages on
the baselines, so both see the same machine load. Medians over the conversations are reported. SmolLM2
runs two pairs; the default Qwen2.5-Coder-1.5B, where installed, one pair (it decodes ~10x slower).
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import httpx

from bench.bench_chat import _direct_server
from bench.common import BENCH_KEY, SMOKE, Row, live_server, pick
from inferline import catalog
from inferline.container import Container

MODELS = {  # model -> pairs of interleaved conversations (the 1.5B model decodes ~10x slower: one pair)
    "HuggingFaceTB/SmolLM2-135M-Instruct": pick(2, 1),
    "Qwen/Qwen2.5-Coder-1.5B-Instruct": 1,
}
TURNS = pick(10, 3)
FACTS = pick(12, 3)  # sentences per user turn (12: ~190 tokens)
MAX_TOKENS = pick(16, 4)


def user_turn(conversation: int, turn: int) -> str:
    facts = " ".join(
        f"Log {turn}.{k} lists {k * 7 % 31} crates of item {(k + conversation) * 13 % 17}."
        for k in range(FACTS)
    )
    return f"Harbour {conversation}, shift {turn}: {facts} Summarise the shift in one line."


def _api_turn(
    http: httpx.Client, model: str, messages: list[dict[str, Any]]
) -> tuple[float, str, dict[str, Any]]:
    """(ttft ms, reply, usage) of one streamed turn through the API."""
    body = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True}
    body["stream_options"] = {"include_usage": True}
    start, first, text, usage = time.perf_counter(), None, "", {}
    with http.stream("POST", "/ai/openai/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            delta = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
            if delta:
                first = first or time.perf_counter()
                text += delta
            usage = chunk.get("usage") or usage
    assert first is not None, "no token streamed"
    return (first - start) * 1000, text, usage


def reused(usage: dict[str, Any]) -> float:
    """The share of the prompt's tokens read from the cache, in %."""
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return 100 * cached / max(1, int(usage.get("prompt_tokens") or 0))


def _direct_turn(server: Any, messages: list[dict[str, Any]], *, cache: bool) -> tuple[float, float]:
    """(ttft ms, % of the prompt reused) of the same turn on a direct xllamacpp server."""
    body = {"messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True}
    body.update(stream_options={"include_usage": True}, cache_prompt=cache)
    first: list[float] = []
    usage: dict[str, Any] = {}

    def on_chunk(chunk: dict[str, Any]) -> bool:
        if not first and chunk.get("choices") and (chunk["choices"][0].get("delta") or {}).get("content"):
            first.append(time.perf_counter())
        usage.update(chunk.get("usage") or {})
        return False

    start = time.perf_counter()
    server.handle_chat_completions(body, on_chunk)
    assert first, "no token streamed"
    return (first[0] - start) * 1000, reused(usage)


def run() -> list[Row]:
    rows: list[Row] = []
    with live_server() as (url, container):
        installed = {e.id for e in container.models.installed("chat")}
        for model, pairs in MODELS.items():
            if model in installed and not (SMOKE and rows):
                rows += _model_rows(url, container, model, pairs)
    return rows


def _model_rows(url: str, container: Container, model: str, pairs: int) -> list[Row]:
    """The turns of `pairs` pairs of conversations on `model`, through the API and on the baselines."""
    entry = catalog.find(model)
    gguf = str(catalog.model_dir(container.models.models_dir, entry) / entry.main_file)
    engine = container.chat.pool.engine(container.chat.pool.resolve("bench", model))
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
        _api_turn(
            http, model, [{"role": "user", "content": "Hello"}]
        )  # loads it: its thread count is measured
    cached = _direct_server(gguf, engine.parallel, engine.context, engine.threads)
    uncached = _direct_server(gguf, engine.parallel, engine.context, engine.threads)
    api: dict[int, list[float]] = {}
    hit: dict[int, list[float]] = {}
    direct: dict[int, list[float]] = {}
    direct_hit: dict[int, list[float]] = {}
    plain: dict[int, list[float]] = {}
    prompt_tokens: list[int] = []
    with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
        for pair in range(pairs):
            chats = [[{"role": "system", "content": "You are a terse harbour clerk."}] for _ in range(2)]
            for turn in range(1, TURNS + 1):
                for side, messages in enumerate(chats):
                    messages.append({"role": "user", "content": user_turn(2 * pair + side, turn)})
                    ttft, reply, usage = _api_turn(http, model, messages)
                    api.setdefault(turn, []).append(ttft)
                    hit.setdefault(turn, []).append(reused(usage))
                    base, base_hit = _direct_turn(cached, messages, cache=True)
                    direct.setdefault(turn, []).append(base)
                    direct_hit.setdefault(turn, []).append(base_hit)
                    if turn in (1, TURNS):
                        plain.setdefault(turn, []).append(_direct_turn(uncached, messages, cache=False)[0])
                    if turn == TURNS:
                        prompt_tokens.append(int(usage["prompt_tokens"]))
                    messages.append({"role": "assistant", "content": reply})
    cached = uncached = None  # frees the baselines
    last, size = statistics.median, int(statistics.median(prompt_tokens))
    name = model.split("/")[-1]
    return [
        Row(
            f"chat TTFT turn {TURNS} ({size} tok) vs turn 1, {name}",
            last(api[TURNS]),
            last(api[1]),
            "ms",
            "turn 1 of the same conversations through the API (goal: ratio ≥ 0.77)",
            higher_is_better=False,
        ),
        Row(
            f"xllamacpp direct TTFT turn {TURNS} vs turn 1 (its prompt cache), {name}",
            last(direct[TURNS]),
            last(direct[1]),
            "ms",
            "the same at turn 1: what attention over the longer context costs with any cache",
            higher_is_better=False,
        ),
        Row(
            f"chat TTFT turn {TURNS}, prefix reuse vs none, {name}",
            last(api[TURNS]),
            last(plain[TURNS]),
            "ms",
            "xllamacpp in-process, same messages, cache_prompt false (no reuse)",
            higher_is_better=False,
        ),
        Row(
            f"chat TTFT turn {TURNS} vs direct with its prompt cache, {name}",
            last(api[TURNS]),
            last(direct[TURNS]),
            "ms",
            "xllamacpp in-process, same messages and threads, cache_prompt true",
            higher_is_better=False,
        ),
        Row(
            f"chat prompt tokens reused at turn {TURNS}, {name}",
            last(hit[TURNS]),
            last(direct_hit[TURNS]),
            "%",
            "xllamacpp in-process with its prompt cache, same messages",
        ),
    ]
