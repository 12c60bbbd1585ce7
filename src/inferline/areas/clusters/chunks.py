"""Reads an embedded bucket's chunks (text and vector) straight from the `embedding_chunks` rows.

The rows are the source of truth on every backend: `vector` holds float32 little-endian bytes on SQLite and
on PostgreSQL alike (pgvector's `embedding` column is a search copy), so one query serves both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from inferline.stores.db import Database
from inferline.stores.embeddings_tables import EmbeddingChunk


@dataclass(frozen=True)
class Chunks:
    """The chunks to cluster, in (filename, chunk_index) order, row i of `vectors` each (unit length)."""

    filenames: list[str]
    chunk_indexes: list[int]
    texts: list[str]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def read_chunks(
    db: Database, tenant_id: str, bucket: str, files: list[str] | None, prefix: str | None
) -> Chunks:
    """The bucket's chunks, only of `files` (when given) whose names start with `prefix` (when given).

    Vectors of another width than most (left over from an earlier embedding model) are left out."""
    query = select(
        EmbeddingChunk.filename, EmbeddingChunk.chunk_index, EmbeddingChunk.text, EmbeddingChunk.vector
    ).where(EmbeddingChunk.tenant_id == tenant_id, EmbeddingChunk.bucket == bucket)
    if files is not None:
        query = query.where(EmbeddingChunk.filename.in_(files))
    if prefix:
        query = query.where(EmbeddingChunk.filename.startswith(prefix, autoescape=True))
    with db.session() as s:
        rows = s.execute(query.order_by(EmbeddingChunk.filename, EmbeddingChunk.chunk_index)).all()
    if not rows:
        return Chunks([], [], [], np.zeros((0, 0), dtype=np.float32))
    width = Counter(len(r.vector) for r in rows).most_common(1)[0][0]
    rows = [r for r in rows if len(r.vector) == width]
    vectors = np.frombuffer(b"".join(r.vector for r in rows), dtype="<f4").reshape(len(rows), width // 4)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return Chunks([r.filename for r in rows], [r.chunk_index for r in rows], [r.text for r in rows], vectors)
