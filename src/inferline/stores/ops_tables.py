"""Operations tables: per-tenant/per-key limits, shared rate-limit windows, in-flight slots and usage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from inferline.stores.tables import Base, UTCDateTime, new_id, utcnow


class TenantLimit(Base):
    """Limits of a tenant (`key_id` = "") or of one of its keys; a NULL limit is unlimited."""

    __tablename__ = "tenant_limits"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(36), primary_key=True, default="")
    window_seconds: Mapped[int] = mapped_column(Integer, default=60)
    chat_requests: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chat_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    embeddings_requests: Mapped[int | None] = mapped_column(Integer, nullable=True)
    embeddings_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    concurrent_transcriptions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    storage_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RateCounter(Base):
    """A fixed-window counter shared by every replica: `subject` (e.g. `t:<tenant>:chat:req`) and window."""

    __tablename__ = "rate_counters"

    subject: Mapped[str] = mapped_column(String(160), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class InflightSlot(Base):
    """A running request counted against a concurrency limit; expires on its own if its process died."""

    __tablename__ = "inflight_slots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    subject: Mapped[str] = mapped_column(String(160), index=True)
    expires_at: Mapped[float] = mapped_column(Float)


class UsageDaily(Base):
    """Billable units per UTC day, tenant, key, metric and model (summed by an upsert)."""

    __tablename__ = "usage_daily"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # "" for background jobs
    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)  # "" where no model applies
    quantity: Mapped[float] = mapped_column(Float, default=0.0)


class StorageReservation(Base):
    """Bytes a bucket write in progress may add, held against its tenant's storage quota from the quota check
    until the object is stored; expires on its own if its process died."""

    __tablename__ = "storage_reservations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Float)
