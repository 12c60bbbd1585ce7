"""Embeddings and similarity search.

* texts/s through `POST /v2/ai/openai/embeddings` (batches of 32, base64 and float) vs the MiniLM ONNX model
  called directly (onnxruntime + tokenizers, batch padded to its longest text, mean pooling);
* single-text latency through the API vs the direct call;
* similarity search is measured by `bench_search.py`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import httpx
import numpy as np

from bench.common import BENCH_KEY, Row, live_server, pick
from inferline import catalog
from inferline.container import Container

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "engineers", "measure"]
BATCH, ROUNDS = 32, pick(6, 1)
CLIENTS = 8  # concurrent single-text clients (micro-batched by the engine)


def _texts(n: int, words: int = 60, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=words)) for _ in range(n)]


def _direct_embedder(container: Container) -> Callable[[list[str]], np.ndarray]:
    """The ONNX model used directly: one padded batch, mean pooling, L2 normalisation."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    folder = catalog.model_dir(container.settings.models_dir, catalog.find(MINILM))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.enable_padding()
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])

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


def _latency_ms(call: Callable[[], object], rounds: int = 30) -> float:
    call()
    times = []
    for _ in range(pick(rounds, 2)):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _single_text_rates(url: str, texts: list[str]) -> tuple[float, float]:
    """Texts/s of single-text requests: one client in sequence, then `CLIENTS` clients at once."""
    import asyncio

    async def drive(clients: int, per_client: int) -> float:
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as http:

            async def client(k: int) -> None:
                for j in range(per_client):
                    body = {"model": MINILM, "input": texts[(k * per_client + j) % len(texts)]}
                    (await http.post("/ai/openai/embeddings", json=body)).raise_for_status()

            await client(0)  # warm
            started = time.perf_counter()
            await asyncio.gather(*(client(k) for k in range(clients)))
            return clients * per_client / (time.perf_counter() - started)

    sequential = asyncio.run(drive(1, pick(48, 4)))
    return sequential, asyncio.run(drive(CLIENTS, pick(12, 2)))


def run() -> list[Row]:
    rows: list[Row] = []
    texts = _texts(BATCH)
    with (
        live_server() as (url, container),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=300) as http,
    ):
        direct = _direct_embedder(container)
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
        api_ms = _latency_ms(lambda: http.post("/ai/openai/embeddings", json=one).raise_for_status())
        base_ms = _latency_ms(lambda: direct(texts[:1]))
        rows.append(Row("embeddings single text latency", api_ms, base_ms, "ms", "ONNX direct", False))
        for words in (12, 60):
            sequential, concurrent = _single_text_rates(url, _texts(200, words, seed=words))
            rows.append(
                Row(
                    f"embeddings single texts ({words} words), {CLIENTS} concurrent clients",
                    concurrent,
                    sequential,
                    "texts/s",
                    "1 client, same API (sequential)",
                )
            )

    return rows
