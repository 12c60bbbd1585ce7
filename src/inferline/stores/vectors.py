"""Vector index of document chunks: HNSW (usearch files beside the database, or pgvector), exact when small.

The database is the source of truth. Chunks and their float32 vectors live in `embedding_chunks`, written
through the caller's session, so a file's chunks are replaced in the transaction that records its status: a
search sees the old chunks or the new ones, never a mix. Every write first bumps the bucket's `generation`,
which serialises the writers of a bucket (chunk ids and deletion log entries then grow in commit order) and
tells searching processes (the API while `inferline worker` writes, replicas) that they must catch up.

* `LocalVectorIndex` (SQLite; PostgreSQL without pgvector). Per (tenant, bucket, vector width) a process holds
  a *space*: an HNSW graph read memory-mapped from its file (`hnsw_files`), the chunks added since it was
  written (searched exactly with numpy) and the ids deleted since (from `embedding_chunk_deletions`, filtered
  out). A search first reads the generation; when it moved, the space catches up by chunk id and deletion
  sequence (cost proportional to the change). Once the changes pass a share of the graph, a background thread
  folds them into a new graph file (incremental: removals and insertions on a copy of the graph), published
  atomically; the log entries it absorbed are pruned. Buckets under `ann_min_chunks` are searched exactly.
  Searches after a change find the space caught up already: this process's own writes reach its spaces when
  they commit (the ids and vectors the transaction wrote, no rows read back), and a background thread follows
  the generations of the spaces it holds, catching up with other processes' writes between searches.
  A file that is missing, unreadable or does not match the database (bucket re-created, row count) is
  ignored and rebuilt from the database.
* `PgVectorIndex`: pgvector's HNSW index (a partial expression index per width), exact below the threshold.

Candidates are re-scored with the exact float32 vectors of their rows, so similarities are exact; chunks whose
rows are gone are dropped, so results never include deleted chunks. A search for a `model` keeps only chunks
embedded with it (a bucket being re-embedded holds chunks of two models, whose scores cannot be compared):
when other models' chunks leave fewer than `k` candidates, that model's chunks are searched exactly.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
from sqlalchemy import delete, event, func, insert, select, text, tuple_, update
from sqlalchemy.orm import Session

from inferline.stores.db import Database, driver_rows
from inferline.stores.embeddings_tables import EmbeddedBucket, EmbeddingChunk
from inferline.stores.hnsw_files import GraphFiles, Published, new_graph, usearch_available
from inferline.stores.vector_tables import ChunkDeletion, DeletionFloor

log = logging.getLogger(__name__)

BUILD_DATABASE_ENV = "INFERLINE_VECTOR_BUILD_DATABASE_URL"  # how a build child finds the database
_children: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _stop_children() -> None:
    """Builds still running when the process exits are stopped (the published file stays as it was)."""
    for child in list(_children):
        child.kill()


ANN_MIN_CHUNKS = 20_000  # below this many chunks a bucket is searched exactly (numpy: about 1 ms at 20k)
EF_SEARCH = 64  # HNSW candidate list per search: recall@10 0.99+ on clustered 384-d data
MAX_SPACES = 512  # buckets (per width) a process keeps open, least recently searched closed first
RETRY_SECONDS = 30.0  # a space whose build left it due (failed, or lost the lock) waits this long to retry
EXTRA = 4  # candidates fetched beyond k, re-scored exactly (covers rows deleted since the catch-up)
FOLLOW_SECONDS = 1.0  # how often the generations of the spaces a process holds are checked in the background
_DELTAS = "inferline.vectors.deltas"  # session.info: this transaction's writes, per bucket
_CURRENT = "inferline.vectors.current"  # session.info: the bucket being written now


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk to index, or one found by a search."""

    filename: str
    chunk_index: int
    text: str
    checksum: str
    source: str
    model: str
    loader_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    chunk: ChunkRecord
    similarity: float  # cosine similarity in [-1, 1]


class VectorIndex(Protocol):
    """Chunks and their unit vectors, per tenant and bucket."""

    def replace_file(
        self,
        session: Session,
        tenant_id: str,
        bucket: str,
        filename: str,
        chunks: list[ChunkRecord],
        vectors: np.ndarray,
    ) -> None:
        """Make `chunks` (row i of `vectors` each) the only chunks of `filename`."""
        ...

    def delete_file(self, session: Session, tenant_id: str, bucket: str, filename: str) -> None: ...

    def delete_bucket(self, session: Session, tenant_id: str, bucket: str) -> None: ...

    def search(
        self, tenant_id: str, bucket: str, query: np.ndarray, k: int, model: str | None = None
    ) -> list[Hit]:
        """The `k` chunks most similar (cosine) to the unit vector `query`, best first; only chunks embedded
        with `model` when given."""
        ...

    def close(self) -> None:
        """Stop background work (before the database goes away)."""
        ...


class _ChunkRow(NamedTuple):
    """A chunk's row as the DB-API returns it (`loader_metadata`: JSON text on SQLite, decoded elsewhere)."""

    id: int
    filename: str
    chunk_index: int
    text: str
    checksum: str
    source: str
    model: str
    loader_metadata: Any
    vector: bytes


def _chunk_rows(
    session: Session, ids: Sequence[int], tenant_id: str | None = None, bucket: str | None = None
) -> list[_ChunkRow]:
    """The rows of chunks `ids` (only those of the bucket, when given), as plain DB-API tuples: a search reads
    a handful, and ORM entities cost it more than the rest of the index's work."""
    if not ids:
        return []
    sql = (
        f"SELECT {', '.join(_ChunkRow._fields)} FROM embedding_chunks "
        f"WHERE id IN ({', '.join('?' * len(ids))})"
    )
    params: tuple[Any, ...] = tuple(int(i) for i in ids)
    if tenant_id is not None:
        sql += " AND tenant_id = ? AND bucket = ?"
        params += (tenant_id, bucket)
    return [_ChunkRow(*row) for row in driver_rows(session, sql, params)]


def _record(row: _ChunkRow) -> ChunkRecord:
    meta = json.loads(row.loader_metadata) if isinstance(row.loader_metadata, str) else row.loader_metadata
    return ChunkRecord(
        row.filename, row.chunk_index, row.text, row.checksum, row.source, row.model, dict(meta or {})
    )


def _rows(
    chunks: list[ChunkRecord], vectors: np.ndarray, tenant_id: str, bucket: str
) -> list[dict[str, Any]]:
    if len(chunks) != len(vectors):
        raise ValueError("one vector per chunk is required")
    return [
        {
            "tenant_id": tenant_id,
            "bucket": bucket,
            "filename": c.filename,
            "chunk_index": c.chunk_index,
            "text": c.text,
            "checksum": c.checksum,
            "source": c.source,
            "model": c.model,
            "loader_metadata": c.loader_metadata,
            "vector": np.asarray(v, dtype="<f4").tobytes(),
        }
        for c, v in zip(chunks, vectors, strict=True)
    ]


def _scope(tenant_id: str, bucket: str) -> Any:
    return (EmbeddingChunk.tenant_id == tenant_id) & (EmbeddingChunk.bucket == bucket)


def _hits(
    session: Session,
    tenant_id: str,
    bucket: str,
    query: np.ndarray,
    candidates: list[int],
    k: int,
    model: str | None = None,
) -> list[Hit]:
    """The `k` best of `candidates` (chunk ids of the bucket), scored exactly from their rows; rows gone since
    (or of another bucket, or embedded with another model than `model` when given) are skipped. When chunks
    of another model leave fewer than `k` (a re-embedding under way or left unfinished), the chunks of
    `model` are searched exactly instead."""
    if not candidates:
        return []
    rows = _chunk_rows(session, candidates, tenant_id, bucket)
    if model is not None:
        kept = [r for r in rows if r.model == model]
        if len(kept) < min(k, len(rows)):
            return _model_hits(session, tenant_id, bucket, query, k, model)
        rows = kept
    return _scored(rows, query, k)


def _scored(rows: Sequence[_ChunkRow], query: np.ndarray, k: int) -> list[Hit]:
    width = query.shape[0] * 4
    scored = [
        (float(np.frombuffer(r.vector, dtype="<f4") @ query), r.id, r) for r in rows if len(r.vector) == width
    ]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [Hit(_record(r), sim) for sim, _, r in scored[:k]]


def _model_hits(
    session: Session, tenant_id: str, bucket: str, query: np.ndarray, k: int, model: str
) -> list[Hit]:
    """The `k` best chunks of `model` in the bucket, searched exactly from their rows."""
    found = driver_rows(  # plain DB-API tuples: many rows with their vectors
        session,
        "SELECT id, vector FROM embedding_chunks WHERE tenant_id = ? AND bucket = ? AND model = ? "
        "AND length(vector) = ?",
        (tenant_id, bucket, model, int(query.shape[0]) * 4),
    )
    if not found:
        return []
    vectors = np.frombuffer(b"".join(r[1] for r in found), dtype="<f4").reshape(len(found), -1)
    scores = np.einsum("ij,j->i", vectors, query)
    best = [int(found[i][0]) for i in np.argpartition(-scores, min(k, len(scores)) - 1)[:k]]
    return _scored(_chunk_rows(session, best), query, k)


class _ChunkWriter:
    """The chunk writes both indexes share; `log_deletions` records removed ids for the local index."""

    log_deletions = False

    def replace_file(
        self,
        session: Session,
        tenant_id: str,
        bucket: str,
        filename: str,
        chunks: list[ChunkRecord],
        vectors: np.ndarray,
    ) -> None:
        self._bump(session, tenant_id, bucket)
        self._delete(session, _scope(tenant_id, bucket) & (EmbeddingChunk.filename == filename))
        rows = _rows(chunks, vectors, tenant_id, bucket)
        if rows:
            self._insert(session, rows, vectors)

    def delete_file(self, session: Session, tenant_id: str, bucket: str, filename: str) -> None:
        self._bump(session, tenant_id, bucket)
        self._delete(session, _scope(tenant_id, bucket) & (EmbeddingChunk.filename == filename))

    def delete_bucket(self, session: Session, tenant_id: str, bucket: str) -> None:
        self._bump(session, tenant_id, bucket)
        self._delete(session, _scope(tenant_id, bucket))

    @staticmethod
    def _bump(session: Session, tenant_id: str, bucket: str) -> None:
        """First statement of every write: holds the bucket row until commit, so writers of a bucket commit
        one after the other and ids grow in commit order."""
        session.execute(
            update(EmbeddedBucket)
            .where(EmbeddedBucket.tenant_id == tenant_id, EmbeddedBucket.bucket == bucket)
            .values(generation=EmbeddedBucket.generation + 1)
            .execution_options(synchronize_session=False)
        )

    def _delete(self, session: Session, where: Any) -> None:
        if self.log_deletions:
            session.execute(
                insert(ChunkDeletion).from_select(
                    ["tenant_id", "bucket", "chunk_id"],
                    select(EmbeddingChunk.tenant_id, EmbeddingChunk.bucket, EmbeddingChunk.id)
                    .where(where)
                    .order_by(EmbeddingChunk.id),
                )
            )
        session.execute(delete(EmbeddingChunk).where(where))

    def _insert(self, session: Session, rows: list[dict[str, Any]], vectors: np.ndarray) -> None:
        session.execute(EmbeddingChunk.__table__.insert(), rows)


_NO_IDS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class _Space:
    """One process's view of one (tenant, bucket, width): `graph` (a memory-mapped published file, or None)
    holds ids <= `graph_max_id`; `ids`/`vectors` are the chunks added after it (exact search); `dead` are
    deleted ids a graph may still hold. Immutable: a catch-up or compaction makes a new one."""

    uid: str
    generation: int | None
    graph: Any
    published: Published | None
    ids: np.ndarray
    vectors: np.ndarray
    dead: frozenset[int]
    max_id: int  # highest chunk id seen
    del_seq: int  # highest deletion sequence seen

    def candidates(self, query: np.ndarray, n: int) -> list[int]:
        """About the `n` best live chunk ids: graph (deleted ids filtered) merged with the exact delta."""
        found: list[tuple[float, int]] = []
        size = len(self.graph) if self.graph is not None else 0
        if size:
            enough = min(size, n + len(self.dead))  # this many always hold n live ones
            count = min(enough, n + min(len(self.dead), n))
            while True:
                matches = self.graph.search(query, count, threads=1)
                live = [
                    (1.0 - float(d), int(key))
                    for key, d in zip(matches.keys, matches.distances, strict=True)
                    if int(key) not in self.dead
                ]
                if len(live) >= n or count >= enough:
                    break
                count = min(enough, count * 4)  # the query sits among deleted chunks: widen
            found.extend(live[:n])
        if len(self.ids):
            # einsum: one thread of SIMD loops; a BLAS matmul spreads even 2000 rows over threads, which costs
            # 10x more on a busy machine.
            scores = np.einsum("ij,j->i", self.vectors, query)
            top = np.argpartition(-scores, min(n, len(scores)) - 1)[:n]
            found.extend((float(scores[i]), int(self.ids[i])) for i in top)
        found.sort(key=lambda t: (-t[0], t[1]))
        return [cid for _, cid in found[:n]]

    def merged(
        self,
        generation: int | None,
        new_ids: np.ndarray,
        new_vectors: np.ndarray,
        gone_ids: list[int],
        del_seq: int,
    ) -> _Space:
        """This space plus the chunks added (ids above `max_id`) and removed (logged up to `del_seq`)."""
        gone = np.array(gone_ids, dtype=np.int64)
        keep_old = ~np.isin(self.ids, gone)
        # Ids grow in commit order: one not above `max_id` is held already (a catch-up that read the rows
        # of a commit whose change then arrives at commit too).
        keep_new = (new_ids > self.max_id) & ~np.isin(new_ids, gone)
        return replace(
            self,
            generation=generation,
            ids=np.concatenate([self.ids[keep_old], new_ids[keep_new]]),
            vectors=np.concatenate([self.vectors[keep_old], new_vectors[keep_new]]),
            # Deleted ids a graph may hold: any id seen before (a compaction may be inserting it right now).
            dead=self.dead | {i for i in gone_ids if i <= self.max_id},
            max_id=max(self.max_id, int(new_ids.max()) if len(new_ids) else 0),
            del_seq=max(self.del_seq, del_seq),
        )


@dataclass
class _Delta:
    """One transaction's writes to one bucket: what its spaces need at commit to stay caught up."""

    tenant_id: str
    bucket: str
    uid: str
    before: int  # the bucket's generation before the transaction's first write
    after: int  # ... and after its last
    added: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (ids, vectors) per insert
    removed: list[int] = field(default_factory=list)  # chunk ids deleted (and logged)
    del_seq: int = 0  # the last deletion log entry written


Key = tuple[str, str, int]


class LocalVectorIndex(_ChunkWriter):
    """Chunks in the database, HNSW graph files in `directory` (None: exact search only)."""

    log_deletions = True

    def __init__(
        self,
        db: Database,
        directory: Path | None,
        *,
        ann_min_chunks: int = ANN_MIN_CHUNKS,
        ef_search: int = EF_SEARCH,
        compact_min: int = 2000,
        compact_share: float = 0.02,
        compact_delay: float = 5.0,
        build_threads: int = max(1, (os.cpu_count() or 2) // 2),
        cache_bytes: int = 1 << 30,
        follow_seconds: float = FOLLOW_SECONDS,
    ) -> None:
        self.db = db
        self.files = GraphFiles(directory) if directory is not None and usearch_available() else None
        self.ann_min_chunks = ann_min_chunks
        self.ef_search = ef_search
        self.compact_min = compact_min  # changes that trigger a compaction: at least this many
        self.compact_share = compact_share  # ... and at least this share of the graph
        self.compact_delay = (
            compact_delay  # seconds from due to the build: a burst of writes folds in one go,
        )
        # and the searches right after a change do not share the CPU with the build starting
        self.build_threads = build_threads  # usearch insertion threads (default: half the cores)
        self.cache_bytes = cache_bytes  # exact-searched vectors kept in memory, least recently used evicted
        self._spaces: OrderedDict[Key, _Space] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Key, threading.Lock] = {}
        self._pending: set[Key] = set()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._children: set[subprocess.Popen[bytes]] = set()  # builds running for this index
        self._rejected: dict[Key, int] = {}  # published versions found unusable (rebuilt when due)
        self._retry_at: dict[Key, float] = {}  # a space whose build just ran waits before the next one
        self.follow_seconds = follow_seconds  # 0: no background catch-up with other processes' writes
        self._stale: set[Key] = set()  # spaces the follower catches up with the database next
        self._follow = threading.Condition(self._lock)
        self._follower: threading.Thread | None = None

    # -- writes: at commit, this process's spaces of the bucket take the transaction's changes -------------
    def _bump(self, session: Session, tenant_id: str, bucket: str) -> None:  # type: ignore[override]
        """The base bump; also starts (or extends) the transaction's record of its writes to the bucket."""
        row = session.execute(
            update(EmbeddedBucket)
            .where(EmbeddedBucket.tenant_id == tenant_id, EmbeddedBucket.bucket == bucket)
            .values(generation=EmbeddedBucket.generation + 1)
            .returning(EmbeddedBucket.id, EmbeddedBucket.generation)
            .execution_options(synchronize_session=False)
        ).first()
        session.info.pop(_CURRENT, None)
        if row is None:
            return  # not an embedded bucket: no space follows it by generation
        deltas = session.info.get(_DELTAS)
        if deltas is None:
            deltas = session.info[_DELTAS] = {}
            event.listen(session, "after_commit", self._committed, once=True)
            event.listen(session, "after_rollback", _forget, once=True)
        delta = deltas.get((tenant_id, bucket))
        if delta is None or delta.uid != row[0]:
            delta = deltas[(tenant_id, bucket)] = _Delta(tenant_id, bucket, row[0], row[1] - 1, row[1])
        delta.after = row[1]
        session.info[_CURRENT] = delta

    def _delete(self, session: Session, where: Any) -> None:
        delta: _Delta | None = session.info.get(_CURRENT)
        if delta is None:
            super()._delete(session, where)
            return
        gone = list(session.scalars(select(EmbeddingChunk.id).where(where)))
        super()._delete(session, where)
        if gone:
            delta.removed.extend(gone)
            last = session.scalar(
                select(func.max(ChunkDeletion.seq)).where(
                    ChunkDeletion.tenant_id == delta.tenant_id, ChunkDeletion.bucket == delta.bucket
                )
            )
            delta.del_seq = max(delta.del_seq, int(last or 0))

    def _insert(self, session: Session, rows: list[dict[str, Any]], vectors: np.ndarray) -> None:
        delta: _Delta | None = session.info.get(_CURRENT)
        if delta is None:
            super()._insert(session, rows, vectors)
            return
        table = EmbeddingChunk.__table__
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        ids = np.array(session.execute(statement, rows).scalars().all(), dtype=np.int64)
        delta.added.append((ids, np.array(vectors, dtype=np.float32)))

    def _committed(self, session: Session) -> None:
        """After a commit: each space of a written bucket that was at the generation the transaction started
        from takes its changes (no rows read); any other is left to the follower."""
        deltas: dict[tuple[str, str], _Delta] = session.info.pop(_DELTAS, None) or {}
        session.info.pop(_CURRENT, None)
        for delta in deltas.values():
            try:
                self._apply(delta)
            except Exception:  # the next search catches up from the database
                log.exception("vector index of %s/%s did not take a commit", delta.tenant_id, delta.bucket)

    def _apply(self, delta: _Delta) -> None:
        with self._lock:
            keys = [key for key in self._spaces if key[:2] == (delta.tenant_id, delta.bucket)]
        for key in keys:
            dims = key[2]
            with self._key_lock(key):
                with self._lock:
                    space = self._spaces.get(key)
                if space is None:
                    continue
                if space.uid != delta.uid or space.generation != delta.before or self._replaced(key, space):
                    self._catch_up_later(key)  # from the database (and the graph published since)
                    continue
                added = [(ids, v) for ids, v in delta.added if v.ndim == 2 and v.shape[1] == dims]
                new_ids = np.concatenate([ids for ids, _ in added]) if added else _NO_IDS
                new_vectors = (
                    np.concatenate([v for _, v in added]) if added else np.zeros((0, dims), np.float32)
                )
                space = space.merged(delta.after, new_ids, new_vectors, delta.removed, delta.del_seq)
                self._store(key, space)
            if self._due(space):
                self._schedule(key)

    # -- following other processes' writes in the background ------------------------------------------------
    def _catch_up_later(self, key: Key) -> None:
        """Have the follower catch `key` up with the database soon."""
        with self._follow:
            if self._closed:
                return
            self._stale.add(key)
            self._start_follower()
            self._follow.notify()

    def _start_follower(self) -> None:
        """(holding `_lock`) The follower thread runs; it holds the index weakly and ends with it."""
        if self._follower is None and (self.follow_seconds > 0 or self._stale) and not self._closed:
            self._follower = threading.Thread(
                target=_follow, args=(weakref.ref(self),), name="vector-follower", daemon=True
            )
            self._follower.start()

    def follow_once(self) -> bool:
        """Wait for stale spaces or the next generation check, then catch those up; False once closed."""
        with self._follow:
            if not self._stale and not self._closed:
                self._follow.wait(self.follow_seconds if self.follow_seconds > 0 else None)
            if self._closed:
                return False
            keys, self._stale = self._stale, set()
        try:
            with self.db.session() as s:
                keys |= self._moved(s)
            for key in keys:
                with self._lock:
                    held = key in self._spaces
                if held:
                    with self.db.session() as s:
                        self._space(s, key)
        except Exception:
            log.exception("vector index catch-up failed")
        return True

    def _moved(self, s: Session) -> set[Key]:
        """Held spaces whose bucket changed generation (or was re-created) since they caught up."""
        with self._lock:
            held = dict(self._spaces)
        pairs = list({key[:2] for key in held})
        if not pairs:
            return set()
        found: dict[tuple[str, str], tuple[str, int]] = {}
        for start in range(0, len(pairs), 200):
            rows = s.execute(
                select(
                    EmbeddedBucket.tenant_id,
                    EmbeddedBucket.bucket,
                    EmbeddedBucket.id,
                    EmbeddedBucket.generation,
                ).where(
                    tuple_(EmbeddedBucket.tenant_id, EmbeddedBucket.bucket).in_(pairs[start : start + 200])
                )
            )
            found.update({(t, b): (uid, gen) for t, b, uid, gen in rows})
        return {
            key
            for key, space in held.items()
            if key[:2] in found and found[key[:2]] != (space.uid, space.generation)
        }

    def delete_bucket(self, session: Session, tenant_id: str, bucket: str) -> None:
        """Also removes the bucket's graph files once the deletion commits."""
        super().delete_bucket(session, tenant_id, bucket)
        if self.files is not None:
            files = self.files
            event.listen(
                session, "after_commit", lambda _s: files.remove_bucket(tenant_id, bucket), once=True
            )

    # -- search ---------------------------------------------------------------------------------------------
    def search(
        self, tenant_id: str, bucket: str, query: np.ndarray, k: int, model: str | None = None
    ) -> list[Hit]:
        query = np.asarray(query, dtype=np.float32)
        if k <= 0:
            return []
        with self.db.session() as s:
            space = self._space(s, (tenant_id, bucket, int(query.shape[0])))
            return _hits(s, tenant_id, bucket, query, space.candidates(query, k + EXTRA), k, model)

    def sync(self, tenant_id: str, bucket: str, dims: int) -> None:
        """Catch up with the database and, when due, fold the changes into the graph file now and wait for it
        (what the background thread does after a search finds it due); for tests, benchmarks and warm-up."""
        key = (tenant_id, bucket, dims)
        with self.db.session() as s:
            space = self._space(s, key, schedule=False)
        if self._due(space):
            self._build(key, blocking=True)
        self._adopt(key)

    def describe(self, tenant_id: str, bucket: str, dims: int) -> dict[str, int]:
        """This process's view of a space: graph size, exact (delta) rows, deleted ids pending."""
        space = self._spaces.get((tenant_id, bucket, dims))
        if space is None:
            return {}
        return {
            "graph": len(space.graph) if space.graph is not None else 0,
            "exact": len(space.ids),
            "dead": len(space.dead),
            "version": space.published.version if space.published else 0,
        }

    def generation(self, tenant_id: str, bucket: str, dims: int) -> int | None:
        """The bucket generation this process's space has caught up with (None: none held, or unknown)."""
        space = self._spaces.get((tenant_id, bucket, dims))
        return space.generation if space is not None else None

    def _space(self, s: Session, key: Key, schedule: bool = True) -> _Space:
        uid, generation = self._bucket_row(s, key)
        space = self._fresh(key, uid, generation)
        if space is None:
            with self._key_lock(key):
                space = self._fresh(key, uid, generation)
                if space is None:
                    space = self._refresh(s, key, uid, generation)
                    self._store(key, space)
        if schedule and self._due(space):
            self._schedule(key)
        return space

    @staticmethod
    def _bucket_row(s: Session, key: Key) -> tuple[str, int | None]:
        """The bucket's (uid, generation), read before its rows: a space caught up after it holds at least
        that generation's chunks. ("", None) when the bucket is not embedded."""
        rows = driver_rows(
            s, "SELECT id, generation FROM embedded_buckets WHERE tenant_id = ? AND bucket = ?", key[:2]
        )
        return (rows[0][0], rows[0][1]) if rows else ("", None)

    def _fresh(self, key: Key, uid: str, generation: int | None) -> _Space | None:
        with self._lock:
            space = self._spaces.get(key)
            if space is None or generation is None or space.uid != uid or space.generation != generation:
                return None
            self._spaces.move_to_end(key)
            return space

    def _store(self, key: Key, space: _Space) -> None:
        with self._lock:
            self._spaces[key] = space
            self._spaces.move_to_end(key)
            self._start_follower()
            while len(self._spaces) > MAX_SPACES or (
                len(self._spaces) > 1
                and sum(sp.vectors.nbytes for sp in self._spaces.values()) > self.cache_bytes
            ):
                self._spaces.popitem(last=False)

    def _key_lock(self, key: Key) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _refresh(self, s: Session, key: Key, uid: str, generation: int | None) -> _Space:
        """The space caught up with the database: from the one held, else the published file, else rows."""
        with self._lock:
            held = self._spaces.get(key)
        if held is not None and held.uid == uid and not self._replaced(key, held):
            caught = self._catch_up(s, key, held, generation)
            if caught is not None:
                return caught
        for _ in range(3):  # a description read just before another process replaced it: read it again
            opened = self._open_published(s, key, uid, generation)
            if opened is not None:
                return opened
        tenant_id, bucket, _ = key
        for _ in range(3):
            start = max(
                s.scalar(
                    select(func.max(ChunkDeletion.seq)).where(
                        ChunkDeletion.tenant_id == tenant_id, ChunkDeletion.bucket == bucket
                    )
                )
                or 0,
                self._floor(s, tenant_id, bucket),
            )
            empty = np.zeros((0, key[2]), dtype=np.float32)
            caught = self._catch_up(
                s, key, _Space(uid, None, None, None, _NO_IDS, empty, frozenset(), 0, start), generation
            )
            if caught is not None:
                return caught
        raise RuntimeError(f"vector index of {bucket!r} could not catch up with the database")

    def _open_published(self, s: Session, key: Key, uid: str, generation: int | None) -> _Space | None:
        """The space from the published graph file and the log since; None if unusable or inconsistent."""
        if self.files is None:
            return None
        tenant_id, bucket, dims = key
        published = self.files.read(tenant_id, bucket, dims)
        if (
            published is None
            or published.bucket_uid != uid
            or published.dims != dims
            or self._rejected.get(key) == published.version
        ):
            return None
        try:
            graph = self.files.open_view(published, self.ef_search)
        except (OSError, ValueError, RuntimeError) as e:
            log.warning("vector index file of %s/%s unusable (%s): searching exactly", tenant_id, bucket, e)
            self._rejected[key] = published.version
            return None
        empty = np.zeros((0, dims), dtype=np.float32)
        start = _Space(
            uid, None, graph, published, _NO_IDS, empty, frozenset(), published.max_id, published.del_seq
        )
        caught = self._catch_up(s, key, start, generation)
        if caught is None:
            return None
        live = len(graph) - int(np.count_nonzero(graph.contains(_ids(caught.dead)))) + len(caught.ids)
        if not self._count(s, key, live):
            log.warning("vector index file of %s/%s is stale: searching exactly", tenant_id, bucket)
            self._rejected[key] = published.version
            return None
        return caught

    @staticmethod
    def _count(s: Session, key: Key, expected: int) -> bool:
        """Whether the bucket has `expected` chunks of the key's width (index-only count first; the exact
        count by width reads every row, so only when the bucket holds other widths too)."""
        tenant_id, bucket, dims = key
        scope = {"t": tenant_id, "b": bucket}
        total = s.scalar(
            text("SELECT count(*) FROM embedding_chunks WHERE tenant_id = :t AND bucket = :b"), scope
        )
        if total == expected:
            return True
        other = s.scalar(
            text(
                "SELECT count(*) FROM embedding_chunks WHERE tenant_id = :t AND bucket = :b "
                "AND length(vector) <> :n"
            ),
            {**scope, "n": dims * 4},
        )
        return int(total or 0) - int(other or 0) == expected

    @staticmethod
    def _floor(s: Session, tenant_id: str, bucket: str) -> int:
        floor = s.scalar(
            select(DeletionFloor.seq).where(
                DeletionFloor.tenant_id == tenant_id, DeletionFloor.bucket == bucket
            )
        )
        return int(floor or 0)

    def _catch_up(self, s: Session, key: Key, space: _Space, generation: int | None) -> _Space | None:
        """`space` plus the chunks added and removed since it was read; None if the log it needs was pruned.
        Reads rows, then deletions, then the floor: a floor read last that is not past `del_seq` proves no
        deletion the space needs had been pruned when the log was read."""
        tenant_id, bucket, dims = key
        added = driver_rows(  # thousands of rows with their vectors: plain DB-API tuples, a third of the CPU
            s,
            "SELECT id, vector FROM embedding_chunks WHERE tenant_id = ? AND bucket = ? AND id > ? "
            "AND length(vector) = ? ORDER BY id",
            (tenant_id, bucket, space.max_id, dims * 4),
        )
        removed = driver_rows(
            s,
            "SELECT seq, chunk_id FROM embedding_chunk_deletions WHERE tenant_id = ? AND bucket = ? "
            "AND seq > ? ORDER BY seq",
            (tenant_id, bucket, space.del_seq),
        )
        if self._floor(s, tenant_id, bucket) > space.del_seq:
            return None
        if not added and not removed:
            return replace(space, generation=generation)
        new_ids = np.array([r[0] for r in added], dtype=np.int64)
        new_vectors = np.frombuffer(b"".join([r[1] for r in added]), dtype="<f4").reshape(len(added), dims)
        seq = removed[-1][0] if removed else 0
        return space.merged(generation, new_ids, new_vectors, [r[1] for r in removed], seq)

    # -- compaction -----------------------------------------------------------------------------------------
    def _due(self, space: _Space) -> bool:
        if self.files is None:
            return False
        if space.graph is None:
            return len(space.ids) >= self.ann_min_chunks
        changes = len(space.ids) + len(space.dead)
        return changes >= max(self.compact_min, self.compact_share * len(space.graph))

    def close(self) -> None:
        """Stop the background builds: a running child is killed (the published file stays as it was)."""
        with self._wake:
            self._closed = True
            self._pending.clear()
            self._stale.clear()
            self._wake.notify_all()
            self._follow.notify_all()
            children = list(self._children)
        for child in children:
            child.kill()
        for thread in (self._thread, self._follower):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=10)

    def _schedule(self, key: Key) -> None:
        with self._wake:
            if self._closed or key in self._pending or time.monotonic() < self._retry_at.get(key, 0.0):
                return
            self._pending.add(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vector-compaction", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                key = next(iter(self._pending))
                start = time.monotonic() + self.compact_delay
                while not self._closed and (left := start - time.monotonic()) > 0:
                    self._wake.wait(left)  # close() ends the wait
                if self._closed:
                    return
                held = self._spaces.get(key)
            try:
                if held is None or not self._due(held) or self.files is None:
                    continue  # caught up meanwhile (a sync, another process's graph)
                if self.files.busy(*key):  # another process is rewriting it: wait, then take its graph
                    with self.files.lock(*key, blocking=True):
                        pass
                    self._adopt(key)
                    continue
                self._build(key, blocking=False)
                with self._wake:
                    self._retry_at[key] = time.monotonic() + RETRY_SECONDS
                if self._closed:
                    return
                self._adopt(key)
            except Exception:
                log.exception("vector index compaction of %s/%s failed", key[0], key[1])
            finally:
                with self._wake:
                    self._pending.discard(key)

    def _build(self, key: Key, blocking: bool) -> None:
        """Run `compact` in a child process at low CPU priority: the graph insertions then neither hold this
        process's GIL (searches would wait on it) nor take the CPU from requests."""
        assert self.files is not None
        tenant_id, bucket, dims = key
        command = [sys.executable, "-m", "inferline.stores.hnsw_build", str(self.files.directory), tenant_id]
        command += [bucket, str(dims), str(self.ef_search), str(self.build_threads), "1" if blocking else "0"]
        child = subprocess.Popen(
            command,
            env={**os.environ, BUILD_DATABASE_ENV: self.db.url},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with self._lock:
            self._children.add(child)
        _children.add(child)
        try:
            _, errors = child.communicate()
        finally:
            _children.discard(child)
            with self._lock:
                self._children.discard(child)
        if child.returncode and not self._closed:
            tail = errors.decode(errors="replace")[-2000:]
            log.warning(
                "vector index build of %s/%s failed (%s): %s", tenant_id, bucket, child.returncode, tail
            )

    def _replaced(self, key: Key, held: _Space) -> bool:
        """Whether the published graph is no longer the one `held` uses (a newer one, or none any more);
        a published graph this process found unusable does not count."""
        published = self.files.read(*key) if self.files is not None else None
        if published is not None and self._rejected.get(key) == published.version:
            return False
        return published != held.published

    def _adopt(self, key: Key) -> None:
        """Move to the graph file published since this process read its own (by a child, another process)."""
        with self._lock:
            held = self._spaces.get(key)
        if held is None or not self._replaced(key, held):
            return
        with self.db.session() as s:
            uid, generation = self._bucket_row(s, key)  # known: the next commit then reaches the space
            with self._key_lock(key):
                self._store(key, self._refresh(s, key, uid, generation))

    def compact(self, tenant_id: str, bucket: str, dims: int, blocking: bool) -> None:
        """Fold the space's exact rows and deletions into a new graph file, in this process (one process at
        a time per space: without `blocking`, return at once when another holds it). Nothing is written when
        nothing changed or another process published a newer graph meanwhile (the caller adopts that)."""
        if self.files is None:
            return
        key = (tenant_id, bucket, dims)
        with self.files.lock(tenant_id, bucket, dims, blocking) as held:
            if not held:
                return  # another process is writing it
            published = self.files.read(tenant_id, bucket, dims)
            with self.db.session() as s:
                space = self._space(s, key, schedule=False)
            if (space.published is not None and space.published != published) or not (
                len(space.ids) or space.dead
            ):
                return  # a newer graph to adopt, or nothing to fold
            graph = (
                self.files.load_copy(space.published, self.ef_search)
                if space.published
                else new_graph(dims, self.ef_search)
            )
            if space.dead:
                graph.remove(_ids(space.dead).astype(np.uint64))
            if len(space.ids):
                graph.add(space.ids.astype(np.uint64), space.vectors, threads=self.build_threads)
            if not len(
                graph
            ):  # nothing left: searched exactly from now on (usearch cannot grow a saved empty)
                self.files.remove(tenant_id, bucket, dims)
                self._prune(tenant_id, bucket, space.del_seq)
                return
            version = published.version + 1 if published else 1
            written = self.files.publish(
                graph,
                tenant_id,
                bucket,
                Published("", version, space.uid, dims, space.max_id, space.del_seq, len(graph)),
            )
            view = self.files.open_view(written, self.ef_search)
            self._prune(tenant_id, bucket, space.del_seq)
            with self._key_lock(key):
                with self._lock:
                    current = self._spaces.get(key)
                if current is None or current.uid != space.uid or current.published != space.published:
                    return  # replaced meanwhile; the next search catches up from the file
                keep = current.ids > space.max_id
                self._store(
                    key,
                    replace(
                        current,
                        graph=view,
                        published=written,
                        ids=current.ids[keep],
                        vectors=current.vectors[keep],
                        dead=current.dead - space.dead,
                    ),
                )

    def _prune(self, tenant_id: str, bucket: str, seq: int) -> None:
        """Drop the log entries folded into the published file; raise the bucket's floor to `seq`. Only on
        SQLite, where every process of the database shares the graph files beside it: hosts sharing a
        PostgreSQL database keep their own files, each needing the log since its own."""
        if not self.db.is_sqlite:
            return
        with self.db.session() as s:
            s.execute(
                delete(ChunkDeletion).where(
                    ChunkDeletion.tenant_id == tenant_id,
                    ChunkDeletion.bucket == bucket,
                    ChunkDeletion.seq <= seq,
                )
            )
            floor = s.get(DeletionFloor, (tenant_id, bucket))
            if floor is None:
                s.add(DeletionFloor(tenant_id=tenant_id, bucket=bucket, seq=seq))
            else:
                floor.seq = max(floor.seq, seq)


def _follow(ref: weakref.ref[LocalVectorIndex]) -> None:
    """The follower thread: runs while its index lives and is open."""
    while True:
        index = ref()
        if index is None or not index.follow_once():
            return
        del index


def _forget(session: Session) -> None:
    """A rolled-back transaction's writes never reach a space."""
    session.info.pop(_DELTAS, None)
    session.info.pop(_CURRENT, None)


def _ids(ids: frozenset[int]) -> np.ndarray:
    return np.fromiter(ids, dtype=np.int64, count=len(ids))


def index_directory(db: Database, data_dir: Path) -> Path | None:
    """Where graph files of `db` live: beside an SQLite file (`<file>.vectors/`), else under
    `data_dir/vectors/<hash of the URL>`; None for an in-memory database."""
    if db.is_sqlite:
        path = db.url.removeprefix("sqlite:///")
        if not path or path == ":memory:":
            return None
        return Path(path).with_name(Path(path).name + ".vectors")
    digest = hashlib.sha256(db.engine.url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    return data_dir / "vectors" / digest


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{float(x):.8g}" for x in vector) + "]"


MAX_HNSW_DIMS = 2000  # pgvector's HNSW limit for `vector`
MAX_EF_SEARCH = 1000  # pgvector's limit for hnsw.ef_search


class PgVectorIndex(_ChunkWriter):
    """PostgreSQL + pgvector: vectors also live in the untyped `embedding vector` column, each width with its
    partial HNSW index `ix_embedding_chunks_hnsw_<d>` over `embedding::vector(d)` (inner product).

    pgvector 0.6 filters an HNSW scan after it (no iterative scan): the scan yields `hnsw.ef_search` rows of
    the whole table, then the tenant and bucket filter apply. So `ef_search` grows with the share of the
    table's rows of that width outside the bucket, and a bucket too small a share is searched exactly (as are
    buckets under `ann_min_chunks`); a scan that still comes back short is repeated exactly."""

    def __init__(self, db: Database, *, ann_min_chunks: int = ANN_MIN_CHUNKS, ef_search: int = 100) -> None:
        self.db = db
        self.ann_min_chunks = ann_min_chunks
        self.ef_search = ef_search
        self._indexed: set[int] = set()
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}  # (tenant, bucket) -> (generation, rows)

    def close(self) -> None:
        """Nothing runs in the background."""

    def _insert(self, session: Session, rows: list[dict[str, Any]], vectors: np.ndarray) -> None:
        self.ensure_index(int(np.asarray(vectors).shape[1]))
        for row, vector in zip(rows, vectors, strict=True):
            row["embedding"] = _literal(vector)
            row["loader_metadata"] = json.dumps(row["loader_metadata"])
        session.execute(  # one multi-row INSERT carrying the pgvector column too
            text(
                "INSERT INTO embedding_chunks (tenant_id, bucket, filename, chunk_index, text, "
                "checksum, source, model, loader_metadata, vector, embedding) VALUES (:tenant_id, "
                ":bucket, :filename, :chunk_index, :text, :checksum, :source, :model, "
                "CAST(:loader_metadata AS json), :vector, CAST(:embedding AS vector))"
            ),
            rows,
        )

    def ensure_index(self, dims: int) -> None:
        """The HNSW index of width `dims` exists (created on first use of a width the migration did not know;
        on its own connection, before the rows that need it)."""
        if dims in self._indexed or not 0 < dims <= MAX_HNSW_DIMS:
            return
        with self.db.engine.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_indexes WHERE indexname = :n"), {"n": _index_name(dims)}
            )
            if not exists:
                conn.execute(
                    text(
                        f"CREATE INDEX IF NOT EXISTS {_index_name(dims)} ON embedding_chunks USING hnsw "
                        f"((embedding::vector({dims})) vector_ip_ops) WHERE vector_dims(embedding) = {dims}"
                    )
                )
                conn.commit()
        self._indexed.add(dims)

    def search(
        self, tenant_id: str, bucket: str, query: np.ndarray, k: int, model: str | None = None
    ) -> list[Hit]:
        query = np.asarray(query, dtype=np.float32)
        if k <= 0:
            return []
        dims = int(query.shape[0])
        with self.db.session() as s:
            ef = self._ef_search(s, tenant_id, bucket, dims, k + EXTRA)
            found = self._approximate(s, tenant_id, bucket, query, k + EXTRA, ef) if ef else []
            if len(found) < k + EXTRA:
                found = self._exact(s, tenant_id, bucket, query, k + EXTRA)
            return _hits(s, tenant_id, bucket, query, found, k, model)

    def _ef_search(self, s: Session, tenant_id: str, bucket: str, dims: int, n: int) -> int:
        """The `hnsw.ef_search` that finds `n` rows of the bucket, or 0 when exact search is better."""
        if not 0 < dims <= MAX_HNSW_DIMS:
            return 0
        rows = self._bucket_rows(s, tenant_id, bucket)
        if rows < max(self.ann_min_chunks, n):
            return 0
        width_rows = s.scalar(
            text("SELECT reltuples FROM pg_class WHERE relname = :n"), {"n": _index_name(dims)}
        )
        share = min(1.0, rows / width_rows) if width_rows and width_rows > 0 else 1.0
        ef = max(self.ef_search, math.ceil(2 * n / share))
        return ef if ef <= MAX_EF_SEARCH else 0

    def _bucket_rows(self, s: Session, tenant_id: str, bucket: str) -> int:
        generation = s.scalar(
            select(EmbeddedBucket.generation).where(
                EmbeddedBucket.tenant_id == tenant_id, EmbeddedBucket.bucket == bucket
            )
        )
        cached = self._counts.get((tenant_id, bucket))
        if cached is not None and generation is not None and cached[0] == generation:
            return cached[1]
        rows = int(
            s.scalar(select(func.count()).select_from(EmbeddingChunk).where(_scope(tenant_id, bucket))) or 0
        )
        if generation is not None:
            if len(self._counts) > 10_000:
                self._counts.clear()
            self._counts[(tenant_id, bucket)] = (generation, rows)
        return rows

    def _approximate(
        self, s: Session, tenant_id: str, bucket: str, query: np.ndarray, n: int, ef: int
    ) -> list[int]:
        dims = int(query.shape[0])
        s.execute(text(f"SET LOCAL hnsw.ef_search = {int(ef)}"))
        return list(
            s.scalars(
                text(_approximate_sql(dims)), {"q": _literal(query), "t": tenant_id, "b": bucket, "k": n}
            )
        )

    @staticmethod
    def _exact(s: Session, tenant_id: str, bucket: str, query: np.ndarray, n: int) -> list[int]:
        return list(
            s.scalars(
                text(
                    "SELECT id FROM embedding_chunks WHERE tenant_id = :t AND bucket = :b "
                    "AND embedding IS NOT NULL AND vector_dims(embedding) = :d "
                    "ORDER BY embedding <#> CAST(:q AS vector) LIMIT :k"
                ),
                {"q": _literal(query), "t": tenant_id, "b": bucket, "d": int(query.shape[0]), "k": n},
            )
        )


def _index_name(dims: int) -> str:
    return f"ix_embedding_chunks_hnsw_{int(dims)}"


def _approximate_sql(dims: int) -> str:
    """The query the partial HNSW index of width `dims` answers (width inlined: the planner must see that
    the index predicate holds)."""
    d = int(dims)
    return (
        f"SELECT id FROM embedding_chunks WHERE vector_dims(embedding) = {d} "
        "AND tenant_id = :t AND bucket = :b "
        f"ORDER BY embedding::vector({d}) <#> CAST(:q AS vector({d})) LIMIT :k"
    )


def has_pgvector(db: Database) -> bool:
    """True on PostgreSQL when the migration could add the `embedding vector` column."""
    if db.is_sqlite:
        return False
    query = text(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'embedding_chunks' "
        "AND column_name = 'embedding'"
    )
    with db.engine.connect() as conn:
        return conn.execute(query).first() is not None
