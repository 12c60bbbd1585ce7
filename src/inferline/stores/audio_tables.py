"""Audio tables: one usage record per transcription, the legacy speech-to-text batch reports, and the
asynchronous transcriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, LargeBinary, String, Text
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


class SttTranscriptionJob(Base):
    """An asynchronous transcription (`POST /v2/inferline/transcriptions`): the request, the audio until it is
    transcribed, then the verbose_json result or the error; a webhook announces the outcome."""

    __tablename__ = "stt_transcription_jobs"
    __table_args__ = (Index("ix_stt_transcription_jobs_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | completed | failed
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the parsed form fields
    file_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    audio: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, deferred=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TtsAudio(Base):
    """Speech asked for with `output_type: audio_id`: produced in the background, served by id until
    `expires_at`. Its encoded audio is the `TtsAudioChunk` rows in `seq` order."""

    __tablename__ = "tts_audio"
    __table_args__ = (Index("ix_tts_audio_expires", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="in_progress")  # in_progress | completed | failed
    content_type: Mapped[str] = mapped_column(String(64))
    voice_id: Mapped[str] = mapped_column(String(200))
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # the producer's last sign
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TtsAudioChunk(Base):
    """One encoded piece of a `TtsAudio` (a sentence's worth), appended as it is synthesised."""

    __tablename__ = "tts_audio_chunks"

    audio_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
