"""Embeddings and similarity search.

* texts/s through `POST /v2/ai/openai/embeddings` (batches of 32, base64 and float) vs the MiniLM ONNX model
  called directly (onnxruntime + tokenizers, batch padded to its longest text, mean pooling);
* single-text latency through the API vs the direct call;
* search latency at 10k and 100k chunks (synthetic unit vectors): `ExactVectorIndex.search` (warm cache) and
  `POST /v2/ai/embeddings/similarity-search` (query embedding included) vs numpy brute force over the same
  in-memory matrix.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable

import httpx
import numpy as np
from sqlalchemy import delete

from bench.common import BENCH_KEY, Row, live_server, pick
from inferline import catalog
from inferline.container import Container
from inferline.stores.db import Database
from inferline.stores.embeddings_tables import EmbeddedBucket, EmbeddingChunk
from inferline.stores.vectors import ChunkRecord, PgVectorIndex, VectorIndex, has_pgvector

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


def _fill(
    db: Database, index: VectorIndex, bucket: str, n: int, tenant: str = "default", dims: int = 384
) -> np.ndarray:
    """Index `n` synthetic chunks (unit vectors) in `bucket` of `tenant`; returns the matrix."""
    rng = np.random.default_rng(n)
    matrix = rng.standard_normal((n, dims)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    with db.session() as s:
        s.add(
            EmbeddedBucket(
                tenant_id=tenant,
                bucket=bucket,
                embedding_model=MINILM,
                chunk_size=1024,
                chunk_overlap=512,
                loader="default",
                generation=0,
            )
        )
    per_file = 2000
    for start in range(0, n, per_file):
        rows = matrix[start : start + per_file]
        chunks = [
            ChunkRecord(f"f{start}.txt", i, f"chunk {start + i}", "0" * 32, "s3://b/f", MINILM)
            for i in range(len(rows))
        ]
        with db.session() as s:
            index.replace_file(s, tenant, bucket, f"f{start}.txt", chunks, rows)
    return matrix


def _brute(matrix: np.ndarray, query: np.ndarray) -> Callable[[], object]:
    def search() -> object:
        scores = matrix @ query
        top = np.argpartition(-scores, 4)[:5]
        return top[np.argsort(-scores[top])]

    return search


def _pgvector_rows(query: np.ndarray) -> list[Row]:
    """pgvector search latency, when INFERLINE_BENCH_PG_URL names a PostgreSQL database with pgvector."""
    url = os.environ.get("INFERLINE_BENCH_PG_URL")
    if not url:
        return []
    db = Database(url)
    db.migrate()
    if not has_pgvector(db):
        return []
    index, tenant, rows = PgVectorIndex(db), f"bench-{uuid.uuid4().hex[:8]}", []
    try:
        for n in (10_000, 100_000):
            bucket = f"pg-{n // 1000}k"
            matrix = _fill(db, index, bucket, n, tenant=tenant)
            latency = _latency_ms(lambda bucket=bucket: index.search(tenant, bucket, query, 5), rounds=10)
            base = _latency_ms(_brute(matrix, query))
            rows.append(
                Row(
                    f"pgvector search top-5, {n // 1000}k chunks",
                    latency,
                    base,
                    "ms",
                    "numpy in memory",
                    False,
                )
            )
    finally:
        with db.session() as s:
            s.execute(delete(EmbeddingChunk).where(EmbeddingChunk.tenant_id == tenant))
            s.execute(delete(EmbeddedBucket).where(EmbeddedBucket.tenant_id == tenant))
        db.dispose()
    return rows


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

        query = container.embeddings.engine.embed(["latency of vector search"])[0]
        for n in pick((10_000, 100_000), (4_000,)):
            bucket = f"bench-{n // 1000}k"
            matrix = _fill(container.db, container.vectors, bucket, n)
            started = time.perf_counter()
            container.vectors.search("default", bucket, query, 5)
            cold = (time.perf_counter() - started) * 1000
            brute = _brute(matrix, query)
            warm = _latency_ms(lambda bucket=bucket: container.vectors.search("default", bucket, query, 5))
            base = _latency_ms(brute)
            rows.append(
                Row(
                    f"index search top-5, {n // 1000}k chunks (warm)",
                    warm,
                    base,
                    "ms",
                    "numpy in memory",
                    False,
                )
            )
            rows.append(
                Row(
                    f"index search top-5, {n // 1000}k chunks (cold load)",
                    cold,
                    base,
                    "ms",
                    "numpy in memory",
                    False,
                )
            )
            changed = matrix[:2000][
                ::-1
            ].copy()  # one file's chunks replaced: the cache refreshes incrementally
            records = [
                ChunkRecord("f0.txt", i, f"changed {i}", "1" * 32, "s3://b/f", MINILM) for i in range(2000)
            ]
            with container.db.session() as s:
                container.vectors.replace_file(s, "default", bucket, "f0.txt", records, changed)
            started = time.perf_counter()
            container.vectors.search("default", bucket, query, 5)
            refresh = (time.perf_counter() - started) * 1000
            rows.append(
                Row(
                    f"index search top-5, {n // 1000}k chunks (2k changed)",
                    refresh,
                    base,
                    "ms",
                    "numpy in memory",
                    False,
                )
            )
            payload = {"bucket_name": bucket, "query": "latency of vector search", "num_of_docs": 5}
            api = _latency_ms(
                lambda payload=payload: http.post(
                    "/ai/embeddings/similarity-search", json=payload
                ).raise_for_status(),
                rounds=15,
            )
            rows.append(
                Row(f"similarity-search API, {n // 1000}k chunks", api, base, "ms", "numpy in memory", False)
            )
    return rows + _pgvector_rows(query)
