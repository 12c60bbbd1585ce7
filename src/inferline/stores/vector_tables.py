"""Tables of the local vector index: the log of deleted chunk ids that lets every process catch its
in-memory index up with the database, and how far that log has been pruned."""

from __future__ import annotations

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from inferline.stores.tables import Base


class ChunkDeletion(Base):
    """One chunk id removed from a bucket; `seq` grows in commit order within a bucket."""

    __tablename__ = "embedding_chunk_deletions"
    __table_args__ = (
        Index("ix_embedding_chunk_deletions_bucket", "tenant_id", "bucket", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    bucket: Mapped[str] = mapped_column(String(63))
    chunk_id: Mapped[int] = mapped_column(Integer)


class DeletionFloor(Base):
    """Deletions of the bucket up to `seq` are pruned from the log: they are folded into its index file."""

    __tablename__ = "embedding_deletion_floors"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(63), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
