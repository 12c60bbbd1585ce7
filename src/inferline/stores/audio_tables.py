"""Audio tables: one usage record per transcription, and the legacy speech-to-text batch reports."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inferline.stores.tables import Base, UTCDateTime, new_id, utcnow


class SttUsageRecord(Base):
    """One finished transcription: who, which model ran, how much audio. The source of every STT report."""

    __tablename__ = "stt_usage_records"
    __table_args__ = (Index("ix_stt_usage_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    requested_model: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32), default="api")
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    audio_seconds: Mapped[float] = mapped_column(Float)
    channels: Mapped[int] = mapped_column(Integer, default=1)
    billed_seconds: Mapped[float] = mapped_column(Float)
    processing_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SttReport(Base):
    """A batch detail record request: a CSV of usage records between two instants, made by a job."""

    __tablename__ = "stt_reports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    start_date: Mapped[datetime] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime] = mapped_column(UTCDateTime)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    row_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)  # the CSV
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
