"""Approximate (HNSW) similarity search: recall against exact search, deleted chunks never returned, graph
files that survive a restart, stale or damaged files rebuilt from the database, another process's writes seen;
pgvector's HNSW index on PostgreSQL. No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import telnyx
from sqlalchemy import select, text

from inferline.stores.db import Database
from inferline.stores.embeddings_tables import EmbeddedBucket
from inferline.stores.vectors import ChunkRecord, LocalVectorIndex, PgVectorIndex, has_pgvector
from tests.conftest import LiveServer
from tests.databases import DatabaseFactory

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
DIMS = 384
PER_FILE = 1000


OPENED: list[LocalVectorIndex] = []


def opened(*args: object, **kwargs: object) -> LocalVectorIndex:
    """A `LocalVectorIndex`, closed after the test (`close_opened`)."""
    OPENED.append(LocalVectorIndex(*args, **kwargs))  # type: ignore[arg-type]
    return OPENED[-1]


@pytest.fixture(autouse=True)
def close_opened() -> Iterator[None]:
    """Closes the indexes each test opened: an open one keeps a thread that follows the database, which
    outlived the tests and logged failures once the session dropped its PostgreSQL database."""
    yield
    while OPENED:
        OPENED.pop().close()


def clustered(n: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` unit vectors and `queries` held-out ones: a 64-d latent cluster mixture projected to 384-d."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(n // 200, 8), 64))
    basis = np.linalg.qr(rng.standard_normal((DIMS, 64)))[0].T

    def sample(m: int) -> np.ndarray:
        z = centers[rng.integers(0, len(centers), m)] + 0.7 * rng.standard_normal((m, 64))
        x = (z @ basis + 0.08 * rng.standard_normal((m, DIMS))).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return sample(n), sample(queries)


def add_bucket(db: Database, tenant: str, bucket: str) -> None:
    with db.session() as s:
        s.add(
            EmbeddedBucket(
                tenant_id=tenant,
                bucket=bucket,
                embedding_model=MINILM,
                chunk_size=100,
                chunk_overlap=0,
                loader="default",
                generation=0,
            )
        )


def put(
    db: Database, index: object, tenant: str, bucket: str, name: str, vectors: np.ndarray, tag: str
) -> None:
    """Make `vectors` the chunks of file `name`; chunk i's text is `<tag>:<i>`."""
    chunks = [ChunkRecord(name, i, f"{tag}:{i}", "0" * 32, "s3://x", MINILM) for i in range(len(vectors))]
    with db.session() as s:
        index.replace_file(s, tenant, bucket, name, chunks, vectors)  # type: ignore[attr-defined]


def fill(db: Database, index: object, tenant: str, bucket: str, matrix: np.ndarray) -> None:
    """Files `f0`, `f1000`, … of PER_FILE chunks; chunk j of the matrix has text `m:<j>`."""
    for start in range(0, len(matrix), PER_FILE):
        rows = matrix[start : start + PER_FILE]
        chunks = [
            ChunkRecord(f"f{start}", i, f"m:{start + i}", "0" * 32, "s3://x", MINILM)
            for i in range(len(rows))
        ]
        with db.session() as s:
            index.replace_file(s, tenant, bucket, f"f{start}", chunks, rows)  # type: ignore[attr-defined]


def recall_at_10(index: object, tenant: str, bucket: str, matrix: np.ndarray, queries: np.ndarray) -> float:
    found = []
    for q in queries:
        scores = matrix @ q
        truth = {f"m:{i}" for i in np.argsort(-scores)[:10]}
        hits = index.search(tenant, bucket, q, 10)  # type: ignore[attr-defined]
        found.append(len(truth & {h.chunk.text for h in hits}) / 10)
    return float(np.mean(found))


@pytest.fixture(scope="module")
def built(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """20,000 clustered chunks in one bucket, with its HNSW graph built (threshold lowered to 1,000)."""
    db = server.container.db
    directory = tmp_path_factory.mktemp("ann") / "vectors"
    tenant, bucket = f"ann-{uuid.uuid4().hex[:6]}", "big"
    index = opened(db, directory, ann_min_chunks=1000)
    matrix, queries = clustered(20_000, 60, seed=11)
    add_bucket(db, tenant, bucket)
    fill(db, index, tenant, bucket, matrix)
    index.sync(tenant, bucket, DIMS)
    return {
        "db": db,
        "dir": directory,
        "tenant": tenant,
        "bucket": bucket,
        "matrix": matrix,
        "queries": queries,
    }


def test_recall_at_10_against_exact(built: dict) -> None:
    index = opened(built["db"], built["dir"], ann_min_chunks=1000)
    recall = recall_at_10(index, built["tenant"], built["bucket"], built["matrix"], built["queries"])
    assert index.describe(built["tenant"], built["bucket"], DIMS)["graph"] == 20_000  # the graph answered
    assert recall >= 0.95


def test_restart_returns_the_same_results(built: dict) -> None:
    first = opened(built["db"], built["dir"], ann_min_chunks=1000)
    again = opened(Database(built["db"].url), built["dir"], ann_min_chunks=1000)
    for q in built["queries"][:20]:
        a = first.search(built["tenant"], built["bucket"], q, 10)
        b = again.search(built["tenant"], built["bucket"], q, 10)
        assert [h.chunk.text for h in a] == [h.chunk.text for h in b]
        assert [h.similarity for h in a] == [h.similarity for h in b]
        exact = [float(built["matrix"][int(h.chunk.text[2:])] @ q) for h in a]
        assert np.allclose([h.similarity for h in a], exact, atol=1e-5)  # re-scored in float32
    state = again.describe(built["tenant"], built["bucket"], DIMS)
    assert state["graph"] == 20_000 and state["exact"] == 0  # read from the file, not rebuilt


def test_deleted_and_replaced_chunks_are_never_returned(server: LiveServer, tmp_path: Path) -> None:
    db = server.container.db
    tenant, bucket = f"del-{uuid.uuid4().hex[:6]}", "b"
    index = opened(db, tmp_path / "vectors", ann_min_chunks=1000, compact_min=10**9)
    matrix, _ = clustered(5000, 1, seed=3)
    add_bucket(db, tenant, bucket)
    fill(db, index, tenant, bucket, matrix)
    index.sync(tenant, bucket, DIMS)
    assert index.describe(tenant, bucket, DIMS)["graph"] == 5000
    with db.session() as s:
        index.delete_file(s, tenant, bucket, "f0")  # m:0 … m:999 gone
    put(db, index, tenant, bucket, "f1000", matrix[1000:2000], "new")  # m:1000 … m:1999 replaced

    def check(idx: LocalVectorIndex) -> None:
        for j in (0, 5, 999, 1000, 1500, 1999):  # each query is a removed chunk's own vector
            hits = idx.search(tenant, bucket, matrix[j], 20)
            texts = [h.chunk.text for h in hits]
            assert len(hits) == 20
            assert not any(t.startswith("m:") and int(t[2:]) < 2000 for t in texts), texts
            if j >= 1000:
                assert texts[0] == f"new:{j - 1000}"  # its replacement, from the exact delta

    check(index)
    assert index.describe(tenant, bucket, DIMS)["dead"] == 2000  # filtered, not yet folded into the graph
    check(opened(db, tmp_path / "vectors", ann_min_chunks=1000))  # a fresh process: file + log
    compactor = opened(db, tmp_path / "vectors", ann_min_chunks=1000)  # default thresholds
    compactor.sync(tenant, bucket, DIMS)  # due: the graph is rewritten without them
    state = compactor.describe(tenant, bucket, DIMS)
    assert state["graph"] == 4000 and state["dead"] == 0 and state["exact"] == 0 and state["version"] == 2
    check(compactor)
    check(index)  # still on the old graph (its log entries are pruned now)
    with db.session() as s:
        index.delete_file(s, tenant, bucket, "f4000")  # a change: it must move to the new graph
    check(index)
    assert index.describe(tenant, bucket, DIMS)["version"] == 2
    check(opened(db, tmp_path / "vectors", ann_min_chunks=1000))


def test_stale_or_damaged_file_is_rebuilt(server: LiveServer, tmp_path: Path) -> None:
    db = server.container.db
    tenant, bucket = f"stale-{uuid.uuid4().hex[:6]}", "b"
    directory = tmp_path / "vectors"
    index = opened(db, directory, ann_min_chunks=1000)
    matrix, queries = clustered(3000, 10, seed=5)
    add_bucket(db, tenant, bucket)
    fill(db, index, tenant, bucket, matrix)
    index.sync(tenant, bucket, DIMS)
    # Rows removed behind the index's back (a restored backup, a manual fix): the file no longer matches.
    with db.session() as s:
        s.execute(
            text("DELETE FROM embedding_chunks WHERE tenant_id = :t AND bucket = :b AND filename = 'f0'"),
            {"t": tenant, "b": bucket},
        )
    fresh = opened(db, directory, ann_min_chunks=1000)
    hits = fresh.search(tenant, bucket, matrix[10], 5)
    assert "m:10" not in [h.chunk.text for h in hits]
    assert fresh.describe(tenant, bucket, DIMS) == {"graph": 0, "exact": 2000, "dead": 0, "version": 0}
    fresh.sync(tenant, bucket, DIMS)  # rebuilt from the database
    assert fresh.describe(tenant, bucket, DIMS)["graph"] == 2000
    described = json.loads(next(directory.glob("*.json")).read_text())
    assert described["size"] == 2000 and described["version"] == 2
    # A truncated graph file is never opened; search falls back to the rows.
    graph_file = directory / described["file"]
    with open(graph_file, "r+b") as handle:
        handle.truncate(100)
    again = opened(db, directory, ann_min_chunks=1000)
    expected = {f"m:{i}" for i in np.argsort(-(matrix[1000:] @ queries[0]))[:5] + 1000}
    assert {h.chunk.text for h in again.search(tenant, bucket, queries[0], 5)} == expected
    assert again.describe(tenant, bucket, DIMS)["graph"] == 0


def test_deleted_bucket_loses_its_graph(server: LiveServer, tmp_path: Path) -> None:
    db = server.container.db
    tenant, bucket = f"gone-{uuid.uuid4().hex[:6]}", "b"
    directory = tmp_path / "vectors"
    index = opened(db, directory, ann_min_chunks=1000)
    matrix, _ = clustered(2000, 1, seed=21)
    add_bucket(db, tenant, bucket)
    fill(db, index, tenant, bucket, matrix)
    index.sync(tenant, bucket, DIMS)
    assert index.describe(tenant, bucket, DIMS)["graph"] == 2000
    with db.session() as s:
        index.delete_bucket(s, tenant, bucket)
    assert not list(directory.glob("*.json")) and not list(directory.glob("*.usearch"))
    assert index.search(tenant, bucket, matrix[0], 5) == []
    put(db, index, tenant, bucket, "again", matrix[:3], "again")  # the bucket fills up anew
    hits = [h.chunk.text for h in index.search(tenant, bucket, matrix[0], 5)]
    assert hits[0] == "again:0" and sorted(hits) == ["again:0", "again:1", "again:2"]


def test_close_stops_a_pending_build(server: LiveServer, tmp_path: Path) -> None:
    """A build that fell due is abandoned by close() (the server closes the index before the database)."""
    db = server.container.db
    tenant, bucket = f"close-{uuid.uuid4().hex[:6]}", "b"
    index = opened(db, tmp_path / "vectors", ann_min_chunks=1000, compact_delay=60)
    matrix, _ = clustered(1500, 1, seed=23)
    add_bucket(db, tenant, bucket)
    fill(db, index, tenant, bucket, matrix)
    assert index.search(tenant, bucket, matrix[0], 1)[0].chunk.text == "m:0"  # exact, and a build falls due
    thread = index._thread
    assert thread is not None and thread.is_alive()
    index.close()
    assert not thread.is_alive()
    assert not list((tmp_path / "vectors").glob("*.json"))


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from inferline.stores.db import Database
    from inferline.stores.vectors import ChunkRecord, LocalVectorIndex
    url, directory, tenant, bucket = sys.argv[1:5]
    db = Database(url)
    index = LocalVectorIndex(db, directory)
    vectors = np.load(sys.stdin.buffer)
    chunks = [ChunkRecord("other", i, f"other:{i}", "0" * 32, "s3://x", "m") for i in range(len(vectors))]
    with db.session() as s:
        index.replace_file(s, tenant, bucket, "other", chunks, vectors)
    with db.session() as s:
        index.delete_file(s, tenant, bucket, "f1000")
    """
)


def test_another_process_writes_become_visible(server: LiveServer, tmp_path: Path) -> None:
    db = server.container.db
    tenant, bucket = f"proc-{uuid.uuid4().hex[:6]}", "b"
    directory = tmp_path / "vectors"
    index = opened(db, directory, ann_min_chunks=1000, compact_min=10**9)
    matrix, _ = clustered(3000, 1, seed=9)
    add_bucket(db, tenant, bucket)
    fill(db, index, tenant, bucket, matrix)
    index.sync(tenant, bucket, DIMS)
    assert index.search(tenant, bucket, matrix[1500], 1)[0].chunk.text == "m:1500"
    planted = -matrix[:5]  # far from every existing chunk
    buffer = tmp_path / "planted.npy"
    np.save(buffer, planted)
    with open(buffer, "rb") as stdin:
        subprocess.run(
            [sys.executable, "-c", WRITER, db.url, str(directory), tenant, bucket], stdin=stdin, check=True
        )
    assert index.search(tenant, bucket, planted[2], 1)[0].chunk.text == "other:2"  # the other process's chunk
    texts = [h.chunk.text for h in index.search(tenant, bucket, matrix[1500], 10)]
    assert not any(t.startswith("m:") and 1000 <= int(t[2:]) < 2000 for t in texts)  # its deletion


def test_own_writes_reach_the_index_when_they_commit(server: LiveServer, tmp_path: Path) -> None:
    """The process that writes a bucket's chunks hands them to its index at commit (no rows read back): before
    any search the space holds them and the deletions; searches see them, never a deleted or rolled-back
    chunk, and recall stays."""
    db = server.container.db
    tenant, bucket = f"own-{uuid.uuid4().hex[:6]}", "b"
    index = opened(db, tmp_path / "vectors", ann_min_chunks=1000, compact_min=10**9)
    matrix, queries = clustered(4000, 40, seed=27)
    add_bucket(db, tenant, bucket)
    fill(db, index, tenant, bucket, matrix)
    index.sync(tenant, bucket, DIMS)
    assert index.describe(tenant, bucket, DIMS) == {"graph": 4000, "exact": 0, "dead": 0, "version": 1}
    rows = matrix[1000:2000]  # the same vectors and texts, new rows (a re-embedded file)
    chunks = [ChunkRecord("f1000", i, f"m:{1000 + i}", "1" * 32, "s3://x", MINILM) for i in range(len(rows))]
    planted = -matrix[:3]  # far from every existing chunk
    with db.session() as s:  # two files written in one transaction, one deleted in the next
        index.replace_file(s, tenant, bucket, "f1000", chunks, rows)
        index.replace_file(s, tenant, bucket, "planted", [planted_chunk(i) for i in range(3)], planted)
    with db.session() as s:
        index.delete_file(s, tenant, bucket, "f3000")
    assert index.describe(tenant, bucket, DIMS) == {"graph": 4000, "exact": 1003, "dead": 2000, "version": 1}
    with pytest.raises(RuntimeError), db.session() as s:  # rolled back: never seen
        index.replace_file(s, tenant, bucket, "planted", [planted_chunk(i) for i in range(3)], matrix[:3])
        index.delete_file(s, tenant, bucket, "f0")
        raise RuntimeError("abort")
    assert index.describe(tenant, bucket, DIMS)["exact"] == 1003
    assert index.search(tenant, bucket, planted[1], 1)[0].chunk.text == "planted:1"
    assert index.search(tenant, bucket, matrix[0], 1)[0].chunk.text == "m:0"
    for j in (3000, 3500, 3999):  # deleted: never returned, even for their own vectors
        texts = [h.chunk.text for h in index.search(tenant, bucket, matrix[j], 20)]
        assert len(texts) == 20 and not any(t.startswith("m:") and int(t[2:]) >= 3000 for t in texts), texts
    live = matrix[:3000]
    found = []
    for q in queries:
        truth = {f"m:{i}" for i in np.argsort(-(live @ q))[:10]}
        found.append(len(truth & {h.chunk.text for h in index.search(tenant, bucket, q, 10)}) / 10)
    assert float(np.mean(found)) >= 0.95
    # A fresh process (file + log) agrees.
    fresh = opened(db, tmp_path / "vectors", ann_min_chunks=1000, compact_min=10**9)
    assert fresh.search(tenant, bucket, planted[1], 1)[0].chunk.text == "planted:1"
    assert fresh.describe(tenant, bucket, DIMS) == index.describe(tenant, bucket, DIMS)


def planted_chunk(i: int) -> ChunkRecord:
    return ChunkRecord("planted", i, f"planted:{i}", "0" * 32, "s3://x", MINILM)


def test_own_writes_after_a_compaction_reach_the_index_when_they_commit(
    server: LiveServer, tmp_path: Path
) -> None:
    """A graph built and adopted (the background compaction; here `sync`) leaves the space at the bucket's
    generation: the next commit's chunks and deletions reach it at commit. The index is closed first, so no
    background thread can catch it up: before, the adopted space had no generation, the commit was left to
    the follower and the first search after it caught up from the database itself."""
    db = server.container.db
    tenant, bucket = f"adopt-{uuid.uuid4().hex[:6]}", "b"
    index = opened(db, tmp_path / "vectors", ann_min_chunks=1000, compact_min=10**9)
    matrix, _ = clustered(2000, 1, seed=31)
    add_bucket(db, tenant, bucket)
    fill(db, index, tenant, bucket, matrix)
    index.sync(tenant, bucket, DIMS)  # due: the graph is built by a child and adopted
    assert index.describe(tenant, bucket, DIMS) == {"graph": 2000, "exact": 0, "dead": 0, "version": 1}
    index.close()
    planted = -matrix[:3]
    with db.session() as s:
        index.replace_file(s, tenant, bucket, "planted", [planted_chunk(i) for i in range(3)], planted)
        index.delete_file(s, tenant, bucket, "f1000")
    with db.session() as s:
        generation = s.scalar(
            select(EmbeddedBucket.generation).where(
                EmbeddedBucket.tenant_id == tenant, EmbeddedBucket.bucket == bucket
            )
        )
    assert index.generation(tenant, bucket, DIMS) == generation
    assert index.describe(tenant, bucket, DIMS) == {"graph": 2000, "exact": 3, "dead": 1000, "version": 1}
    assert index.search(tenant, bucket, planted[1], 1)[0].chunk.text == "planted:1"
    texts = [h.chunk.text for h in index.search(tenant, bucket, matrix[1500], 20)]
    assert len(texts) == 20 and not any(t.startswith("m:") and int(t[2:]) >= 1000 for t in texts), texts


def test_other_process_writes_are_caught_up_in_the_background(server: LiveServer, tmp_path: Path) -> None:
    """Another process's writes reach a searching process's space without a search (its follower thread
    checks the generations of the spaces it holds); the next search sees them and not the deleted chunks."""
    db = server.container.db
    tenant, bucket = f"follow-{uuid.uuid4().hex[:6]}", "b"
    directory = tmp_path / "vectors"
    index = opened(db, directory, ann_min_chunks=1000, compact_min=10**9, follow_seconds=0.2)
    matrix, _ = clustered(3000, 1, seed=31)
    add_bucket(db, tenant, bucket)
    fill(db, index, tenant, bucket, matrix)
    index.sync(tenant, bucket, DIMS)
    planted = -matrix[:5]
    buffer = tmp_path / "planted.npy"
    np.save(buffer, planted)
    with open(buffer, "rb") as stdin:
        subprocess.run(
            [sys.executable, "-c", WRITER, db.url, str(directory), tenant, bucket], stdin=stdin, check=True
        )
    expected = {"graph": 3000, "exact": 5, "dead": 1000, "version": 1}
    deadline = time.monotonic() + 60  # a bound on the wait, not a timing assertion
    while index.describe(tenant, bucket, DIMS) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert index.describe(tenant, bucket, DIMS) == expected  # caught up with no search
    assert index.search(tenant, bucket, planted[2], 1)[0].chunk.text == "other:2"
    texts = [h.chunk.text for h in index.search(tenant, bucket, matrix[1500], 10)]
    assert len(texts) == 10 and not any(t.startswith("m:") and 1000 <= int(t[2:]) < 2000 for t in texts)
    index.close()


def test_similarity_search_api_uses_the_index_and_skips_deleted(
    server: LiveServer, client: telnyx.Telnyx
) -> None:
    """Through the API as tenant A, a bucket over the server's approximate-search threshold (lowered for the
    test; SQLite: the HNSW graph, PostgreSQL: pgvector's): the chunks that matched the query best are deleted
    and never come back."""
    index, db = server.container.vectors, server.container.db
    bucket = f"ann-api-{uuid.uuid4().hex[:6]}"
    query = "which animal has the longest neck"
    q = server.container.embeddings.engine.embed([query])[0]
    matrix, _ = clustered(3000, 1, seed=13)
    threshold = index.ann_min_chunks  # type: ignore[attr-defined]
    index.ann_min_chunks = 1000  # type: ignore[attr-defined]
    try:
        add_bucket(db, "default", bucket)
        fill(db, index, "default", bucket, matrix)
        put(db, index, "default", bucket, "giraffe", np.stack([q] * 3), "giraffe")
        if isinstance(index, LocalVectorIndex):
            index.sync("default", bucket, DIMS)
            assert index.describe("default", bucket, DIMS)["graph"] == 3003
        hits = client.ai.embeddings.similarity_search(bucket_name=bucket, query=query, num_of_docs=5).data
        assert [h.document_chunk for h in hits[:3]] == ["giraffe:0", "giraffe:1", "giraffe:2"]
        assert hits[0].distance is not None and hits[0].distance < 1e-4
        with db.session() as s:
            index.delete_file(s, "default", bucket, "giraffe")
        hits = client.ai.embeddings.similarity_search(bucket_name=bucket, query=query, num_of_docs=5).data
        assert len(hits) == 5 and not any(h.document_chunk.startswith("giraffe") for h in hits)
        best = {f"m:{i}" for i in np.argsort(-(matrix @ q))[:5]}
        assert len(best & {h.document_chunk for h in hits}) >= 4
    finally:
        index.ann_min_chunks = threshold  # type: ignore[attr-defined]


def test_usearch_imports_before_onnxruntime() -> None:
    """The pinned usearch can be imported before onnxruntime (2.26.x crashed the process that way)."""
    done = subprocess.run(
        [sys.executable, "-c", "import usearch.index; import onnxruntime; print('ok')"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.fixture
def pg(databases: DatabaseFactory) -> Database:
    if not databases.postgres:
        pytest.skip("PostgreSQL only (INFERLINE_TEST_DATABASE_URL)")
    db = Database(databases.new("ann"))
    db.migrate()
    if not has_pgvector(db):
        pytest.skip("pgvector is not available")
    return db


def test_pgvector_hnsw_index_is_used(pg: Database) -> None:
    with pg.engine.connect() as conn:
        names = set(
            conn.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'embedding_chunks'"))
        )
    assert "ix_embedding_chunks_hnsw_384" in names
    index = PgVectorIndex(pg, ann_min_chunks=1000)
    matrix, queries = clustered(6000, 40, seed=17)
    add_bucket(pg, "t", "b")
    fill(pg, index, "t", "b", matrix)
    add_bucket(pg, "t", "small")
    put(pg, index, "t", "small", "s", matrix[:50], "small")
    with pg.engine.connect() as conn:
        conn.execute(text("ANALYZE embedding_chunks"))
        conn.commit()
    with pg.session() as s:
        s.execute(text("SET LOCAL hnsw.ef_search = 100"))
        plan = "\n".join(
            s.scalars(
                text("EXPLAIN " + index_sql(DIMS)),
                {"q": "[" + ",".join(f"{x:.6f}" for x in queries[0]) + "]", "t": "t", "b": "b", "k": 10},
            )
        )
    assert "ix_embedding_chunks_hnsw_384" in plan, plan
    assert recall_at_10(index, "t", "b", matrix, queries) >= 0.95
    small = index.search("t", "small", matrix[7], 3)  # a small bucket: exact
    assert small[0].chunk.text == "small:7"
    with pg.session() as s:
        index.delete_file(s, "t", "b", "f0")
    texts = [h.chunk.text for h in index.search("t", "b", matrix[10], 20)]
    assert len(texts) == 20 and not any(int(t[2:]) < 1000 for t in texts)
    pg.dispose()


def index_sql(dims: int) -> str:
    from inferline.stores.vectors import _approximate_sql

    return _approximate_sql(dims)
