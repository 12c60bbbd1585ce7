"""Embeddings and similarity search.

* texts/s through `POST /v2/ai/openai/embeddings` (batches of 32, base64 and float) vs the MiniLM ONNX model
  called directly (onnxruntime + tokenizers, batch padded to its longest text, mean pooling);
* single-text latency through the API vs the direct call, measured alternately (API, direct, API, …) so load
  from other processes hits both alike; the API calls go through a minimal keep-alive HTTP client
  (`common.RawHttp`), so the figure is the server's and not httpx's (which runs in this process, beside the
  server); the same latency through httpx is shown beside it;
* 8 concurrent single-text clients vs one client in its steady sequence, through the API (texts/s), with the
  mean number of requests each model run served (the micro-batcher, `engines.micro_batch`; ideal: 8), the
  latency of the first request after the 8 clients stop beside one in the steady sequence (no cliff: the
  same), and, as the ceiling batching can reach, the direct model's 8 texts in one batch vs 8 single calls;
* similarity search is measured by `bench_search.py`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from bench.common import BENCH_KEY, RawHttp, Row, live_server, pick
from inferline import catalog
from inferline.container import Container

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "engineers", "measure"]
BATCH, ROUNDS = 32, pick(6, 1)
CLIENTS = 8  # concurrent single-text clients (micro-batched by the engine)


def _texts(n: int, words: int = 60, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=words)) for _ in range(n)]


def _direct_embedder(container: Container, spinning: bool = True) -> Callable[[list[str]], np.ndarray]:
    """The ONNX model used directly: one padded batch, mean pooling, L2 normalisation (`spinning`: whether
    onnxruntime's intra-op threads spin between operators, its default, or sleep). Spinning threads stop when
    a call returns (`session.force_spinning_stop`; as fast, measured): left spinning on, they would take
    the cores from the API call measured right after."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    folder = catalog.model_dir(container.settings.models_dir, catalog.find(MINILM))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.enable_padding()
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def embed(texts: list[str]) -> np.ndarray:
        enc = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        (states,) = session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )
        pooled = (states * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    return embed


def _rate(call: Callable[[], object], items: int, rounds: int = ROUNDS) -> float:
    call()  # warm-up
    started = time.perf_counter()
    for _ in range(rounds):
        call()
    return items * rounds / (time.perf_counter() - started)


def _paired_ms(api: Callable[[], object], direct: Callable[[], object]) -> tuple[float, float]:
    """Median milliseconds of each, measured in alternating blocks of 10 calls (API, direct, API, …) after a
    warm-up block each: load from other processes hits both alike, and within a block each keeps its own
    model session hot in the CPU caches, as a server does (alternating every call, each evicted the other's
    weights and both ran ~15% slower)."""
    timings: tuple[list[float], list[float]] = ([], [])
    for round_ in range(pick(5, 2)):
        for call, out in ((api, timings[0]), (direct, timings[1])):
            for _ in range(pick(10, 2)):
                started = time.perf_counter()
                call()
                if round_:  # the first round warms up
                    out.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings[0]), statistics.median(timings[1])


def _single_text_rates(url: str, texts: list[str], batcher: Any) -> dict[str, float]:
    """Single-text requests: texts/s of one client in sequence (`sequential`, in its steady state: timed from
    its third request on) and of `CLIENTS` clients at once (`concurrent`), in alternating rounds (medians), so
    load from other processes hits both alike; the requests each model run served while the `CLIENTS`
    clients ran (`served`); and the milliseconds of the first request after they stopped (`after_burst`),
    beside those of a request in the steady sequence (`alone`)."""
    import asyncio

    async def drive() -> dict[str, float]:
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as http:

            async def client(k: int, n: int) -> list[float]:
                took = []
                for j in range(n):
                    body = {"model": MINILM, "input": texts[(k * n + j) % len(texts)]}
                    started = time.perf_counter()
                    (await http.post("/ai/openai/embeddings", json=body)).raise_for_status()
                    took.append(time.perf_counter() - started)
                return took

            await asyncio.gather(*(client(k, 2) for k in range(CLIENTS)))  # warm: connections, threads
            out: dict[str, list[float]] = {"sequential": [], "concurrent": [], "after_burst": [], "alone": []}
            runs, calls = 0, 0
            per_client = pick(8, 2)
            for _ in range(pick(4, 1)):
                out["after_burst"] += await client(1, 1)
                await client(2, 1)
                took = await client(0, per_client)
                out["sequential"].append(per_client / sum(took))
                out["alone"] += took
                before = (batcher.runs, batcher.calls)
                started = time.perf_counter()
                await asyncio.gather(*(client(k, per_client) for k in range(CLIENTS)))
                out["concurrent"].append(CLIENTS * per_client / (time.perf_counter() - started))
                runs, calls = runs + batcher.runs - before[0], calls + batcher.calls - before[1]
            result = {key: statistics.median(values) for key, values in out.items()}
            result["after_burst"] *= 1000
            result["alone"] *= 1000
            return {**result, "served": calls / max(runs, 1)}

    return asyncio.run(drive())


def run() -> list[Row]:
    rows: list[Row] = []
    texts = _texts(BATCH)
    with (
        live_server() as (url, container),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=300) as http,
    ):
        # The baseline at its best on this machine: onnxruntime with spinning threads (its default) or not.
        candidates = [_direct_embedder(container, spinning) for spinning in (True, False)]
        direct = max(candidates, key=lambda d: _rate(lambda: d(texts[:1]), 1))
        for fmt in ("base64", "float"):
            body = {"model": MINILM, "input": texts, "encoding_format": fmt}
            api = _rate(
                lambda body=body: http.post("/ai/openai/embeddings", json=body).raise_for_status(), BATCH
            )
            base = _rate(lambda: direct(texts), BATCH)
            rows.append(
                Row(f"embeddings batch {BATCH}x60 words ({fmt})", api, base, "texts/s", "ONNX direct")
            )
        one = {"model": MINILM, "input": texts[0], "encoding_format": "base64"}
        raw = RawHttp(url, {"Authorization": f"Bearer {BENCH_KEY}"})
        api_ms, base_ms = _paired_ms(
            lambda: raw.post("/ai/openai/embeddings", one), lambda: direct(texts[:1])
        )
        raw.close()
        rows.append(Row("embeddings single text latency (60 words)", api_ms, base_ms, "ms", "ONNX direct",
                        False))  # fmt: skip
        api_ms, base_ms = _paired_ms(
            lambda: http.post("/ai/openai/embeddings", json=one).raise_for_status(), lambda: direct(texts[:1])
        )
        rows.append(Row("  the same through httpx (in this process)", api_ms, base_ms, "ms", "ONNX direct",
                        False))  # fmt: skip
        batcher = container.embeddings.engine._batcher  # type: ignore[attr-defined]
        for words in (12, 60):
            some = _texts(200, words, seed=words)
            rates = _single_text_rates(url, some, batcher)
            batch = some[:CLIENTS]
            one_by_one = _rate(lambda batch=batch: [direct([t]) for t in batch], CLIENTS)
            batched = _rate(lambda batch=batch: direct(batch), CLIENTS)
            rows += [
                Row(f"embeddings single texts ({words} words), {CLIENTS} concurrent clients",
                    rates["concurrent"], rates["sequential"], "texts/s",
                    "1 client, same API (in sequence, steady); goal 3x"),
                Row(f"  requests per model run, {CLIENTS} clients ({words} words)", rates["served"], 1.0,
                    "requests", "no micro-batching"),
                Row(f"  first single text right after the {CLIENTS} clients ({words} words)",
                    rates["after_burst"], rates["alone"], "ms", "one in steady sequence, same API", False),
                Row(f"  ONNX direct: {CLIENTS} texts in one batch ({words} words)", batched, one_by_one,
                    "texts/s", f"ONNX direct, {CLIENTS} single-text calls (batching's ceiling)"),
            ]  # fmt: skip

    return rows
