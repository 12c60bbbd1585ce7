"""Tables of the embeddings area: ingestion tasks, embedded buckets, per-file status and the chunk index."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from inferline.stores.tables import Base, UTCDateTime, new_id, utcnow


class EmbeddingTask(Base):
    """One ingestion run over a bucket (`embed_bucket`, `sync_bucket` or `embed_url`)."""

    __tablename__ = "embedding_tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    bucket: Mapped[str] = mapped_column(String(63))
    task_name: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EmbeddedBucket(Base):
    """A bucket enabled for AI: how it is embedded. `generation` changes whenever its chunks do; the task
    running on it holds `busy_task` until `busy_until` (renewed while it runs)."""

    __tablename__ = "embedded_buckets"
    __table_args__ = (UniqueConstraint("tenant_id", "bucket"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    bucket: Mapped[str] = mapped_column(String(63))
    embedding_model: Mapped[str] = mapped_column(String(200))
    chunk_size: Mapped[int] = mapped_column(Integer)
    chunk_overlap: Mapped[int] = mapped_column(Integer)
    loader: Mapped[str] = mapped_column(String(32), default="default")
    generation: Mapped[int] = mapped_column(Integer, default=0)
    busy_task: Mapped[str | None] = mapped_column(String(36), nullable=True)
    busy_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class EmbeddedFile(Base):
    """The embedding state of one object of an embedded bucket."""

    __tablename__ = "embedded_files"
    __table_args__ = (UniqueConstraint("tenant_id", "bucket", "filename"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    bucket: Mapped[str] = mapped_column(String(63))
    filename: Mapped[str] = mapped_column(String(1024))
    checksum: Mapped[str] = mapped_column(String(64), default="")
    settings_key: Mapped[str] = mapped_column(String(300), default="")
    source: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_embedded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EmbeddingChunk(Base):
    """A chunk of a file, its text and its float32 vector (little-endian bytes)."""

    __tablename__ = "embedding_chunks"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused (the vector cache relies on it)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    bucket: Mapped[str] = mapped_column(String(63))
    filename: Mapped[str] = mapped_column(String(1024))
    chunk_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(200))
    loader_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
