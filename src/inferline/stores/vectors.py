"""Vector index of document chunks: exact numpy search over float32 rows (default, any database), or pgvector.

Writes go through the caller's session, so a file's chunks are replaced in the same transaction that records
its status: a search sees the old chunks or the new ones, never a mix. Each write also bumps the bucket's
`generation`, which is how the in-memory matrix cache of `ExactVectorIndex` knows it is stale (also when
another process, e.g. `inferline worker`, did the write).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.orm import Session

from inferline.stores.db import Database
from inferline.stores.embeddings_tables import EmbeddedBucket, EmbeddingChunk


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

    def search(self, tenant_id: str, bucket: str, query: np.ndarray, k: int) -> list[Hit]:
        """The `k` chunks most similar (cosine) to the unit vector `query`, best first."""
        ...


def _bump(session: Session, tenant_id: str, bucket: str) -> None:
    session.execute(
        update(EmbeddedBucket)
        .where(EmbeddedBucket.tenant_id == tenant_id, EmbeddedBucket.bucket == bucket)
        .values(generation=EmbeddedBucket.generation + 1)
        .execution_options(synchronize_session=False)
    )


def _record(row: EmbeddingChunk) -> ChunkRecord:
    return ChunkRecord(
        row.filename,
        row.chunk_index,
        row.text,
        row.checksum,
        row.source,
        row.model,
        dict(row.loader_metadata or {}),
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


@dataclass
class _Matrix:
    generation: int
    ids: np.ndarray
    vectors: np.ndarray


class ExactVectorIndex:
    """Brute-force cosine search with numpy over the bucket's vectors, cached per bucket and generation
    (at most `cache_bytes` of vectors in memory, least recently searched buckets evicted first)."""

    def __init__(self, db: Database, cache_bytes: int = 1 << 30) -> None:
        self.db = db
        self.cache_bytes = cache_bytes  # least recently searched buckets leave the cache beyond this
        self._cache: OrderedDict[tuple[str, str], _Matrix] = OrderedDict()
        self._lock = threading.Lock()

    def replace_file(
        self,
        session: Session,
        tenant_id: str,
        bucket: str,
        filename: str,
        chunks: list[ChunkRecord],
        vectors: np.ndarray,
    ) -> None:
        session.execute(
            delete(EmbeddingChunk).where(_scope(tenant_id, bucket), EmbeddingChunk.filename == filename)
        )
        rows = _rows(chunks, vectors, tenant_id, bucket)
        if rows:
            session.execute(EmbeddingChunk.__table__.insert(), rows)
        _bump(session, tenant_id, bucket)

    def delete_file(self, session: Session, tenant_id: str, bucket: str, filename: str) -> None:
        session.execute(
            delete(EmbeddingChunk).where(_scope(tenant_id, bucket), EmbeddingChunk.filename == filename)
        )
        _bump(session, tenant_id, bucket)

    def delete_bucket(self, session: Session, tenant_id: str, bucket: str) -> None:
        session.execute(delete(EmbeddingChunk).where(_scope(tenant_id, bucket)))
        _bump(session, tenant_id, bucket)

    def _matrix(self, session: Session, tenant_id: str, bucket: str, dims: int) -> _Matrix:
        generation = session.scalar(
            select(EmbeddedBucket.generation).where(
                EmbeddedBucket.tenant_id == tenant_id, EmbeddedBucket.bucket == bucket
            )
        )
        key = (tenant_id, bucket)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.generation == generation and cached.vectors.shape[1] == dims:
                self._cache.move_to_end(key)
                return cached
        # Incremental refresh: chunk ids are never reused, so only ids not cached yet need their vectors.
        found = session.execute(
            text("SELECT id FROM embedding_chunks WHERE tenant_id = :t AND bucket = :b"),
            {"t": tenant_id, "b": bucket},
        )
        current = np.fromiter((row[0] for row in found), dtype=np.int64)
        if cached is not None and cached.vectors.shape[1] == dims:
            keep = np.isin(cached.ids, current, assume_unique=True)
            missing = np.setdiff1d(current, cached.ids, assume_unique=True)
            base_ids, base = cached.ids, cached.vectors
        else:
            keep = np.zeros(0, dtype=bool)
            missing = current
            base_ids, base = np.zeros(0, dtype=np.int64), np.zeros((0, dims), dtype=np.float32)
        new_ids, new_vectors = self._load(session, missing, dims)
        kept = int(keep.sum())
        ids = np.concatenate([base_ids[keep], new_ids])
        matrix = np.empty((kept + len(new_ids), dims), dtype=np.float32)  # one copy of the kept rows
        np.compress(keep, base, axis=0, out=matrix[:kept])
        matrix[kept:] = new_vectors
        entry = _Matrix(generation or 0, ids, matrix)
        with self._lock:
            self._cache[key] = entry
            while (
                len(self._cache) > 1
                and sum(m.vectors.nbytes for m in self._cache.values()) > self.cache_bytes
            ):
                self._cache.popitem(last=False)
        return entry

    @staticmethod
    def _load(
        session: Session, ids: np.ndarray, dims: int, batch: int = 5000
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the chunks `ids` whose vectors have `dims` dimensions."""
        found: list[int] = []
        blobs: list[bytes] = []
        query = text("SELECT id, vector FROM embedding_chunks WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        for start in range(0, len(ids), batch):
            for row_id, blob in session.execute(query, {"ids": [int(i) for i in ids[start : start + batch]]}):
                if len(blob) == dims * 4:
                    found.append(row_id)
                    blobs.append(blob)
        vectors = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(found), dims)
        return np.asarray(found, dtype=np.int64), vectors

    def search(self, tenant_id: str, bucket: str, query: np.ndarray, k: int) -> list[Hit]:
        query = np.asarray(query, dtype=np.float32)
        with self.db.session() as s:
            matrix = self._matrix(s, tenant_id, bucket, query.shape[0])
            if not len(matrix.ids) or k <= 0:
                return []
            scores = matrix.vectors @ query
            k = min(k, len(scores))
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            wanted = [int(i) for i in matrix.ids[top]]
            rows = {r.id: r for r in s.scalars(select(EmbeddingChunk).where(EmbeddingChunk.id.in_(wanted)))}
            return [
                Hit(_record(rows[cid]), float(scores[i]))
                for cid, i in zip(wanted, top, strict=True)
                if cid in rows
            ]


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{float(x):.8g}" for x in vector) + "]"


class PgVectorIndex(ExactVectorIndex):
    """PostgreSQL + pgvector: vectors also live in the `embedding vector` column; search is `<=>` in SQL."""

    def replace_file(
        self,
        session: Session,
        tenant_id: str,
        bucket: str,
        filename: str,
        chunks: list[ChunkRecord],
        vectors: np.ndarray,
    ) -> None:
        session.execute(
            delete(EmbeddingChunk).where(_scope(tenant_id, bucket), EmbeddingChunk.filename == filename)
        )
        rows = _rows(chunks, vectors, tenant_id, bucket)
        for row, vector in zip(rows, vectors, strict=True):
            row["embedding"] = _literal(vector)
            row["loader_metadata"] = json.dumps(row["loader_metadata"])
        if rows:  # one multi-row INSERT carrying the pgvector column too
            session.execute(
                text(
                    "INSERT INTO embedding_chunks (tenant_id, bucket, filename, chunk_index, text, "
                    "checksum, source, model, loader_metadata, vector, embedding) VALUES (:tenant_id, "
                    ":bucket, :filename, :chunk_index, :text, :checksum, :source, :model, "
                    "CAST(:loader_metadata AS json), :vector, CAST(:embedding AS vector))"
                ),
                rows,
            )
        _bump(session, tenant_id, bucket)

    def search(self, tenant_id: str, bucket: str, query: np.ndarray, k: int) -> list[Hit]:
        if k <= 0:
            return []
        with self.db.session() as s:
            found = s.execute(
                text(
                    "SELECT id, 1 - (embedding <=> CAST(:q AS vector)) AS similarity FROM embedding_chunks "
                    "WHERE tenant_id = :t AND bucket = :b AND embedding IS NOT NULL "
                    "AND vector_dims(embedding) = :d "
                    "ORDER BY embedding <=> CAST(:q AS vector) LIMIT :k"
                ),
                {"q": _literal(query), "t": tenant_id, "b": bucket, "d": int(query.shape[0]), "k": k},
            ).all()
            rows = {
                r.id: r
                for r in s.scalars(select(EmbeddingChunk).where(EmbeddingChunk.id.in_([f.id for f in found])))
            }
            return [Hit(_record(rows[f.id]), float(f.similarity)) for f in found if f.id in rows]


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
