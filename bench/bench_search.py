"""Similarity search at 100k chunks (1M with BENCH_SEARCH_1M=1; a few thousand with BENCH_SMOKE=1).

Synthetic 384-d unit vectors with cluster structure (a 64-d latent mixture projected to 384-d plus noise, the
shape real sentence embeddings have), indexed through the server's own vector index, then:

* `POST /v2/ai/embeddings/similarity-search` p50 (query embedding included) vs the baseline's best in-process:
  the same ONNX query embedding plus numpy brute force over the same float32 matrix held in memory;
* index search p50 (one query repeated, and distinct queries) and recall@10 against exact search (200
  held-out queries from the same distribution);
* first search after a restart (a new index object and database engine over the same files);
* first search after one file's 2,000 chunks are replaced (median of 9 changes; through the index, then
  through the API, each beside its warm p50 of the same run): replaced by this process (its index takes the
  change at commit), and by another process (a writer on its own engine), searched once the index's follower
  thread caught up in the background and, for comparison, searched at once (the search catches up); beside
  them, the control: the first search after a pause as long as a change, with nothing changed (what any
  search after a moment of other work costs on the machine: cold CPU caches, idle cores waking);
* bytes of index per million chunks vs the float32 matrix exact search keeps in memory;
* with INFERLINE_BENCH_PG_URL (PostgreSQL + pgvector): pgvector HNSW p50 and recall@10 at the same size.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import delete, select

from bench.common import BENCH_KEY, Row, live_server
from inferline.container import Container
from inferline.stores.db import Database
from inferline.stores.embeddings_tables import EmbeddedBucket, EmbeddingChunk
from inferline.stores.vectors import ChunkRecord, LocalVectorIndex, PgVectorIndex, VectorIndex, has_pgvector

SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")
SIZES = [4_000] if SMOKE else [100_000] + ([1_000_000] if os.environ.get("BENCH_SEARCH_1M") == "1" else [])
ANN_MIN = 1_000 if SMOKE else 20_000
PER_FILE = 2_000
QUERIES = 20 if SMOKE else 200
ROUNDS = 5 if SMOKE else 50
CHANGES = 1 if SMOKE else 9  # changes of 2,000 chunks whose first search is timed
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
EXACT = "numpy exact, in memory"
TENANT = "default"


def clustered(n: int, queries: int, dims: int = 384, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` unit vectors and `queries` held-out ones from the same mixture (64-d latent clusters -> 384-d)."""
    rng = np.random.default_rng(seed)
    latent = 64
    centers = rng.standard_normal((max(n // 200, 8), latent))
    basis = np.linalg.qr(rng.standard_normal((dims, latent)))[0].T

    def sample(m: int) -> np.ndarray:
        z = centers[rng.integers(0, len(centers), m)] + 0.7 * rng.standard_normal((m, latent))
        x = (z @ basis + 0.08 * rng.standard_normal((m, dims))).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    matrix = np.concatenate([sample(min(50_000, n - s)) for s in range(0, n, 50_000)])
    return matrix, sample(queries)


def _p50_ms(call: Callable[[], object], rounds: int = ROUNDS) -> float:
    call()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _once_ms(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def _cpu_ms(call: Callable[[], object], rounds: int = 1) -> float:
    """Process CPU time of `call` (what a quiet machine's wall time would be, near enough, on a busy one)."""
    started = time.process_time()
    for _ in range(rounds):
        call()
    return (time.process_time() - started) * 1000 / rounds


def _exact(matrix: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = matrix @ query
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def _fill(db: Database, index: VectorIndex, tenant: str, bucket: str, matrix: np.ndarray) -> None:
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
    for start in range(0, len(matrix), PER_FILE):
        rows = matrix[start : start + PER_FILE]
        chunks = [
            ChunkRecord(f"f{start}.txt", i, str(start + i), "0" * 32, "s3://b/f", MINILM)
            for i in range(len(rows))
        ]
        with db.session() as s:
            index.replace_file(s, tenant, bucket, f"f{start}.txt", chunks, rows)


def _recall(index: VectorIndex, tenant: str, bucket: str, matrix: np.ndarray, queries: np.ndarray) -> float:
    found = []
    for q in queries:
        truth = {int(i) for i in _exact(matrix, q, 10)}
        got = {int(h.chunk.text) for h in index.search(tenant, bucket, q, 10) if h.chunk.text.isdigit()}
        found.append(len(truth & got) / 10)
    return float(np.mean(found))


def _local_rows(url: str, container: Container, http: httpx.Client, n: int) -> list[Row]:
    index = container.vectors
    assert isinstance(index, LocalVectorIndex), "the benchmark runs the embedded (SQLite) mode"
    label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
    bucket = f"search-{label}".lower()
    matrix, queries = clustered(n, QUERIES)
    _fill(container.db, index, TENANT, bucket, matrix)
    index.sync(TENANT, bucket, 384)  # what the background thread does after the first search: build the graph
    text = "latency of vector search"
    query = container.embeddings.engine.embed([text])[0]
    embed = container.embeddings.engine.embed
    payload = {"bucket_name": bucket, "query": text, "num_of_docs": 5}

    def api() -> None:
        http.post("/ai/embeddings/similarity-search", json=payload).raise_for_status()

    base_api = _p50_ms(lambda: _exact(matrix, embed([text])[0], 5))
    base = _p50_ms(lambda: _exact(matrix, query, 5))
    api_warm = _p50_ms(api)
    warm = _p50_ms(lambda: index.search(TENANT, bucket, query, 5))
    warm_cpu = _cpu_ms(lambda: index.search(TENANT, bucket, query, 5), ROUNDS)
    distinct = iter(list(queries) * (ROUNDS // len(queries) + 2))  # each search a query not searched before
    warm_distinct = _p50_ms(
        lambda: index.search(TENANT, bucket, next(distinct), 5), min(ROUNDS, len(queries) - 1)
    )
    recall = _recall(index, TENANT, bucket, matrix, queries)

    restarted_db = Database(container.db.url)
    restarted = LocalVectorIndex(restarted_db, index.files.directory if index.files else None)
    gc.collect()  # a single-shot figure must not carry a collection of earlier garbage
    started = time.process_time()
    restart = _once_ms(lambda: restarted.search(TENANT, bucket, query, 5))
    restart_cpu = (time.process_time() - started) * 1000
    restarted.close()  # its follower would otherwise keep catching up, in this process, during later figures
    restarted_db.dispose()

    change_seconds: list[float] = []

    def change(tag: str) -> None:  # one file's 2,000 chunks replaced (same vectors, new ids)
        started = time.perf_counter()
        chunks = [ChunkRecord("f0.txt", i, str(i), tag * 32, "s3://b/f", MINILM) for i in range(PER_FILE)]
        with container.db.session() as s:
            index.replace_file(s, TENANT, bucket, "f0.txt", chunks, matrix[:PER_FILE])
        change_seconds.append(time.perf_counter() - started)

    def first_after_change(call: Callable[[], object], tag: str) -> tuple[float, float]:
        """(wall ms, process CPU ms) of the first `call` after a change, median of a few changes."""
        walls, cpus = [], []
        for i in range(CHANGES):
            change(f"{tag}{i}")
            gc.collect()  # a single-shot figure must not carry a collection of earlier garbage
            started = time.process_time()
            walls.append(_once_ms(call))
            cpus.append((time.process_time() - started) * 1000)
        index.sync(TENANT, bucket, 384)  # the changes folded into the graph
        return statistics.median(walls), statistics.median(cpus)

    changed, changed_cpu = first_after_change(lambda: index.search(TENANT, bucket, query, 5), "a")
    api_changed, _ = first_after_change(api, "b")

    def first_after_pause(call: Callable[[], object]) -> float:
        """Wall ms of the first `call` after a pause as long as a change, nothing changed (the control)."""
        pause, walls = statistics.median(change_seconds), []
        for _ in range(CHANGES):
            time.sleep(pause)
            gc.collect()
            walls.append(_once_ms(call))
        return statistics.median(walls)

    paused = first_after_pause(lambda: index.search(TENANT, bucket, query, 5))
    api_paused = first_after_pause(api)

    writer_db = Database(container.db.url)  # another process writing: its commits do not reach `index`
    writer = LocalVectorIndex(writer_db, None, follow_seconds=0)

    def first_after_other(wait: bool, tag: str) -> float:
        """Wall ms of the first search after another writer's change, median of a few changes; `wait`: once
        the follower caught up (a bounded wait), else at once."""
        walls = []
        for n in range(CHANGES):
            chunks = [
                ChunkRecord("f0.txt", i, str(i), f"{tag}{n}" * 16, "s3://b/f", MINILM)
                for i in range(PER_FILE)
            ]
            with writer_db.session() as s:
                writer.replace_file(s, TENANT, bucket, "f0.txt", chunks, matrix[:PER_FILE])
            with writer_db.session() as s:
                target = s.scalar(
                    select(EmbeddedBucket.generation).where(
                        EmbeddedBucket.tenant_id == TENANT, EmbeddedBucket.bucket == bucket
                    )
                )
            deadline = time.monotonic() + 30
            while wait and index.generation(TENANT, bucket, 384) != target and time.monotonic() < deadline:
                time.sleep(0.005)
            gc.collect()
            walls.append(_once_ms(lambda: index.search(TENANT, bucket, query, 5)))
        index.sync(TENANT, bucket, 384)
        return statistics.median(walls)

    other_followed = first_after_other(True, "c")
    other_at_once = first_after_other(False, "d")
    writer.close()
    writer_db.dispose()
    recall_after = _recall(index, TENANT, bucket, matrix, queries)

    directory = index.files.directory if index.files else Path()
    graph_bytes = sum(p.stat().st_size for p in directory.glob("*.usearch"))
    per_million = graph_bytes / n * 1e6 / 2**20
    return [
        Row(
            f"search API p50, {label} chunks (query embedded)",
            api_warm,
            base_api,
            "ms",
            f"embed + {EXACT}",
            False,
        ),
        Row(f"index search p50, {label} chunks", warm, base, "ms", EXACT, False),
        Row(f"index search p50, {label} chunks, distinct queries", warm_distinct, base, "ms", EXACT, False),
        Row(f"index recall@10, {label} chunks", recall, 1.0, "recall", "exact search"),
        Row(f"index recall@10, {label} chunks, after changes", recall_after, 1.0, "recall", "exact search"),
        Row(f"first search after restart, {label} chunks", restart, base, "ms", EXACT + " (warm)", False),
        Row(f"first search after restart, {label} (process CPU)", restart_cpu, warm_cpu, "ms", "warm", False),
        Row(f"first index search after 2k changed, {label}", changed, warm, "ms", "warm index p50", False),
        Row(
            f"first index search after 2k changed, {label} (CPU)", changed_cpu, warm_cpu, "ms", "warm", False
        ),
        Row(
            f"first API search after 2k changed, {label}", api_changed, api_warm, "ms", "warm API p50", False
        ),
        Row(f"first index search after a pause, nothing changed, {label}", paused, warm, "ms", "warm", False),
        Row(
            f"first API search after a pause, nothing changed, {label}",
            api_paused,
            api_warm,
            "ms",
            "warm API p50",
            False,
        ),
        Row(
            f"first search after 2k changed elsewhere, {label} (followed)",
            other_followed,
            warm,
            "ms",
            "warm index p50",
            False,
        ),
        Row(
            f"first search at once after 2k changed elsewhere, {label}",
            other_at_once,
            warm,
            "ms",
            "warm index p50",
            False,
        ),
        Row(
            "memory per 1M chunks (HNSW f16 file, mmap)",
            per_million,
            matrix.nbytes / n * 1e6 / 2**20,
            "MiB",
            "float32 matrix",
            False,
        ),
    ]


def _pgvector_rows(n: int) -> list[Row]:
    """pgvector HNSW, when INFERLINE_BENCH_PG_URL names a PostgreSQL database with pgvector."""
    url = os.environ.get("INFERLINE_BENCH_PG_URL")
    if not url:
        return []
    db = Database(url)
    db.migrate()
    if not has_pgvector(db):
        return []
    index, tenant, bucket = PgVectorIndex(db, ann_min_chunks=ANN_MIN), f"bench-{uuid.uuid4().hex[:8]}", "pg"
    label = f"{n // 1000}k"
    matrix, queries = clustered(n, QUERIES)
    try:
        _fill(db, index, tenant, bucket, matrix)
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE embedding_chunks")
            conn.commit()
        query = queries[0]
        latency = _p50_ms(lambda: index.search(tenant, bucket, query, 5), rounds=min(ROUNDS, 30))
        base = _p50_ms(lambda: _exact(matrix, query, 5))
        recall = _recall(index, tenant, bucket, matrix, queries[: min(QUERIES, 50)])
        return [
            Row(f"pgvector HNSW search p50, {label} chunks", latency, base, "ms", EXACT, False),
            Row(f"pgvector HNSW recall@10, {label} chunks", recall, 1.0, "recall", "exact search"),
        ]
    finally:
        with db.session() as s:
            s.execute(delete(EmbeddingChunk).where(EmbeddingChunk.tenant_id == tenant))
            s.execute(delete(EmbeddedBucket).where(EmbeddedBucket.tenant_id == tenant))
        db.dispose()


def run() -> list[Row]:
    os.environ["INFERLINE_VECTOR_ANN_MIN_CHUNKS"] = str(ANN_MIN)
    rows: list[Row] = []
    with (
        live_server() as (url, container),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=300) as http,
    ):
        for n in SIZES:
            rows.extend(_local_rows(url, container, http, n))
    return rows + _pgvector_rows(SIZES[0])
