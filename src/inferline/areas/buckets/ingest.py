"""Bucket embedding: tasks that load, chunk, embed and index a bucket's files, with per-file status.

A task runs as the durable job `embed_bucket`. It syncs the index with the bucket: files that are new, changed
(checksum) or embedded with other settings are (re-)embedded, chunks of deleted files are removed, unchanged
files are skipped. A file that cannot be loaded fails alone, with its reason; the task then ends
`partial_success` (or `failure` when no file succeeded). Writes through `BucketService` of an embedded bucket
start a `sync_bucket` task (auto-sync).

The tokens a task embeds are metered as the tenant's `embedding_tokens` under the API key that started it: its
id (never the secret) travels in the job payload (`key_id`; "" for a job queued without one, or a task started
by the CLI). A sync started by a write is the writing key's (`ACTING_KEY`); a request that joins a task still
waiting in the queue leaves it to the key that queued it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from inferline.areas.buckets.claim import bucket_claim
from inferline.areas.buckets.crawler import Crawler
from inferline.areas.buckets.loaders import LoaderError, MediaTranscriber, Transcribe, chunk_document, load
from inferline.areas.embeddings.service import EmbeddingsService
from inferline.errors import EngineUnavailable, NotFound, ValidationFailed
from inferline.jobs import JobContext, JobFailed, JobQueue, JobView
from inferline.jobs.worker import JobCancelled
from inferline.ops import context as ops_context
from inferline.stores.db import Database, driver_rows, get_owned
from inferline.stores.embeddings_tables import EmbeddedBucket, EmbeddedFile, EmbeddingTask
from inferline.stores.objects import ObjectInfo, ObjectStore
from inferline.stores.tables import utcnow
from inferline.stores.vectors import ChunkRecord, VectorIndex

log = logging.getLogger("inferline.ingest")
JOB_KIND = "embed_bucket"
QUEUED, PROCESSING, SUCCESS, FAILURE, PARTIAL = (
    "queued",
    "processing",
    "success",
    "failure",
    "partial_success",
)
TASK_STATUSES = (QUEUED, PROCESSING, SUCCESS, FAILURE, PARTIAL)
EMBED_BATCH = 64
MAX_CHUNK_SIZE = 16_384
LOADERS = ("default", "intercom")
# The API key id on whose behalf objects are written now (an S3 request, an embedding job's crawl): an
# auto-sync task it starts is metered under it.
ACTING_KEY: ContextVar[str] = ContextVar("inferline_ingest_key", default="")


@dataclass(frozen=True)
class EmbedSettings:
    """How a bucket is embedded (`document_chunk_size`/`_overlap_size` are in characters)."""

    model: str | None = None
    chunk_size: int = 1024
    chunk_overlap: int = 512
    loader: str = "default"


# A URL crawl: (tenant, bucket, url, ctx) -> {object key: page URL} of the pages stored into the bucket.
Crawl = Callable[[str, str, str, JobContext], dict[str, str]]


class IngestService:
    """Creates, runs and reports bucket embedding tasks; owns the embedded-bucket and per-file tables."""

    def __init__(
        self,
        db: Database,
        objects: ObjectStore,
        index: VectorIndex,
        embeddings: EmbeddingsService,
        jobs: JobQueue,
        *,
        crawler: Crawler,
        transcriber: MediaTranscriber,
        max_file_bytes: int,
    ) -> None:
        self.db = db
        self.objects = objects
        self.index = index
        self.embeddings = embeddings
        self.jobs = jobs
        self.max_file_bytes = max_file_bytes
        self.crawler = crawler
        self.transcriber = transcriber

    # -- creating tasks ----------------------------------------------------------------------------------
    def create_task(
        self,
        tenant_id: str,
        bucket: str,
        settings: EmbedSettings,
        *,
        url: str | None = None,
        key_id: str = "",
    ) -> dict[str, Any]:
        """Enable the bucket for AI with `settings` and queue a task embedding it (after crawling `url`),
        metered under the API key `key_id`."""
        if settings.loader not in LOADERS:
            raise ValidationFailed(f"loader must be one of {', '.join(LOADERS)}.", pointer="/loader")
        if not 1 <= settings.chunk_size <= MAX_CHUNK_SIZE:
            raise ValidationFailed(
                f"document_chunk_size must be between 1 and {MAX_CHUNK_SIZE}.", pointer="/document_chunk_size"
            )
        if not 0 <= settings.chunk_overlap < settings.chunk_size:
            raise ValidationFailed(
                "document_chunk_overlap_size must be >= 0 and smaller than document_chunk_size.",
                pointer="/document_chunk_overlap_size",
            )
        model = self.embeddings.resolve(settings.model, "/embedding_model", tenant_id).model_id
        if not self.objects.bucket_exists(tenant_id, bucket):
            raise NotFound(f"Bucket {bucket!r} does not exist.", pointer="/bucket_name")
        with self.db.session() as s:
            config = self._config(s, tenant_id, bucket)
            if config is None:
                config = EmbeddedBucket(tenant_id=tenant_id, bucket=bucket, generation=0)
                s.add(config)
            config.embedding_model, config.loader = model, settings.loader
            config.chunk_size, config.chunk_overlap = settings.chunk_size, settings.chunk_overlap
            name = "embed_url" if url else "embed_bucket"
            task = self._enqueue(s, tenant_id, bucket, name, url, key_id)
            view = task_view(task)
        return view

    def create_url_task(self, tenant_id: str, bucket: str, url: str, key_id: str = "") -> dict[str, Any]:
        """Queue a crawl of `url` into the existing `bucket`, then an embedding of the bucket."""
        self.crawler.check_room(tenant_id)  # 413 while the storage quota is spent
        self.crawler.check_url(url)
        with self.db.session() as s:
            config = self._config(s, tenant_id, bucket)
            settings = (
                EmbedSettings(config.embedding_model, config.chunk_size, config.chunk_overlap, config.loader)
                if config
                else EmbedSettings()
            )
        return self.create_task(tenant_id, bucket, settings, url=url, key_id=key_id)

    def _enqueue(
        self, s: Session, tenant_id: str, bucket: str, name: str, url: str | None, key_id: str
    ) -> EmbeddingTask:
        if url is None:  # a retried or repeated request joins the task still waiting in the queue
            waiting = s.scalars(
                select(EmbeddingTask).where(
                    EmbeddingTask.tenant_id == tenant_id,
                    EmbeddingTask.bucket == bucket,
                    EmbeddingTask.status == QUEUED,
                    EmbeddingTask.url.is_(None),
                )
            ).first()
            if waiting is not None:
                return waiting
        task = EmbeddingTask(tenant_id=tenant_id, bucket=bucket, task_name=name, status=QUEUED, url=url)
        s.add(task)
        s.flush()
        self.jobs.enqueue(JOB_KIND, {"task_id": task.id, "key_id": key_id}, tenant_id, session=s)
        return task

    def bucket_changed(self, tenant_id: str, bucket: str) -> None:
        """Auto-sync: queue a `sync_bucket` task when an embedded bucket's objects change."""
        with self.db.session() as s:
            if self._config(s, tenant_id, bucket) is None:
                return
            self._enqueue(s, tenant_id, bucket, "sync_bucket", None, ACTING_KEY.get())

    # -- reading -----------------------------------------------------------------------------------------
    @staticmethod
    def _config(s: Session, tenant_id: str, bucket: str) -> EmbeddedBucket | None:
        return s.scalars(
            select(EmbeddedBucket).where(
                EmbeddedBucket.tenant_id == tenant_id, EmbeddedBucket.bucket == bucket
            )
        ).first()

    def bucket_model(self, tenant_id: str, bucket: str) -> str:
        """The embedding model of an embedded bucket; `NotFound` when the bucket is not embedded."""
        with self.db.session() as s:  # every similarity search asks: a plain DB-API read (`driver_rows`)
            rows = driver_rows(
                s,
                "SELECT embedding_model FROM embedded_buckets WHERE tenant_id = ? AND bucket = ?",
                (tenant_id, bucket),
            )
        if not rows:
            raise NotFound(f"Bucket {bucket!r} has no embeddings.", pointer="/bucket_name")
        return str(rows[0][0])

    def bucket_settings(self, tenant_id: str, bucket: str) -> EmbedSettings:
        """The settings the bucket is embedded with, or the defaults for a bucket not embedded yet."""
        with self.db.session() as s:
            config = self._config(s, tenant_id, bucket)
            if config is None:
                return EmbedSettings()
            return EmbedSettings(
                config.embedding_model, config.chunk_size, config.chunk_overlap, config.loader
            )

    def get_task(self, tenant_id: str, task_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            detail = f"Embedding task {task_id!r} does not exist."
            return task_view(get_owned(s, EmbeddingTask, task_id, tenant_id, detail, pointer="/task_id"))

    def list_tasks(self, tenant_id: str, statuses: list[str] | None) -> list[dict[str, Any]]:
        wanted = statuses or [QUEUED, PROCESSING]
        unknown = sorted(set(wanted) - set(TASK_STATUSES))
        if unknown:
            raise ValidationFailed(
                f"status: unknown value(s) {', '.join(unknown)}; use {', '.join(TASK_STATUSES)}.",
                pointer="status",
            )
        with self.db.session() as s:
            rows = s.scalars(
                select(EmbeddingTask)
                .where(EmbeddingTask.tenant_id == tenant_id, EmbeddingTask.status.in_(wanted))
                .order_by(EmbeddingTask.created_at.desc())
            )
            return [task_view(t) for t in rows]

    def list_buckets(self, tenant_id: str) -> list[str]:
        with self.db.session() as s:
            rows = s.scalars(
                select(EmbeddedBucket.bucket)
                .where(EmbeddedBucket.tenant_id == tenant_id)
                .order_by(EmbeddedBucket.bucket)
            )
            return list(rows)

    def bucket_files(self, tenant_id: str, bucket: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            if self._config(s, tenant_id, bucket) is None:
                raise NotFound(f"Bucket {bucket!r} has no embeddings.", pointer="/bucket_name")
            rows = s.scalars(
                select(EmbeddedFile)
                .where(EmbeddedFile.tenant_id == tenant_id, EmbeddedFile.bucket == bucket)
                .order_by(EmbeddedFile.filename)
            )
            return [
                {
                    "filename": f.filename,
                    "status": f.status,
                    "created_at": f.created_at,
                    "updated_at": f.updated_at,
                    "last_embedded_at": f.last_embedded_at,
                    "error_reason": f.error_reason,
                }
                for f in rows
            ]

    def delete_bucket(self, tenant_id: str, bucket: str) -> None:
        """Remove the bucket's embeddings and disable auto-sync; its objects stay untouched."""
        with self.db.session() as s:
            config = self._config(s, tenant_id, bucket)
            if config is None:
                raise NotFound(f"Bucket {bucket!r} has no embeddings.", pointer="/bucket_name")
            self.index.delete_bucket(s, tenant_id, bucket)
            s.execute(
                delete(EmbeddedFile).where(EmbeddedFile.tenant_id == tenant_id, EmbeddedFile.bucket == bucket)
            )
            s.delete(config)

    # -- running -----------------------------------------------------------------------------------------
    def run(self, ctx: JobContext) -> None:
        """The `embed_bucket` job handler."""
        task_id = ctx.payload["task_id"]
        key_id = str(ctx.payload.get("key_id") or "")  # a job queued before keys were carried: ""
        with self.db.session() as s:
            task = s.get(EmbeddingTask, task_id)
            if task is None:
                raise JobFailed(f"embedding task {task_id} no longer exists")
            task.status = PROCESSING
            tenant_id, bucket, url = task.tenant_id, task.bucket, task.url
            config = self._config(s, tenant_id, bucket)
            if config is None:
                self._finish(s, task, FAILURE, "the bucket's embeddings were deleted before the task ran")
                return
            settings = EmbedSettings(
                config.embedding_model, config.chunk_size, config.chunk_overlap, config.loader
            )
        with self._claim(tenant_id, bucket, task_id, ctx) as claimed:  # one task per bucket at a time
            if not claimed:
                self._set_outcome(
                    task_id, FAILURE, "the bucket's embeddings were deleted before the task ran"
                )
                return
            try:
                sources: dict[str, str] = {}
                if url:
                    acting = ACTING_KEY.set(key_id)  # the syncs its writes start are the same key's
                    try:
                        sources = self.crawler.crawl(tenant_id, bucket, url, ctx)
                    finally:
                        ACTING_KEY.reset(acting)
                outcome = self.sync(tenant_id, bucket, settings, ctx, sources, key_id)
            except NotFound as exc:
                outcome = (FAILURE, str(exc))
            except EngineUnavailable as exc:
                raise JobFailed(exc.detail) from None
            except JobCancelled:
                self._set_outcome(task_id, FAILURE, "cancelled")
                raise
        self._set_outcome(task_id, *outcome)

    def _claim(
        self, tenant_id: str, bucket: str, task_id: str, ctx: JobContext
    ) -> AbstractContextManager[bool]:
        return bucket_claim(self.db, tenant_id, bucket, task_id, ctx.raise_if_cancelled)

    def _set_outcome(self, task_id: str, status: str, error: str | None) -> None:
        with self.db.session() as s:
            task = s.get(EmbeddingTask, task_id)
            if task is not None:
                self._finish(s, task, status, error)

    def fail_task(self, job: JobView, reason: str) -> None:
        """Failure hook: the job failed for good, so the task did too."""
        with self.db.session() as s:
            task = s.get(EmbeddingTask, job.payload.get("task_id", ""))
            if task is not None and task.status in (QUEUED, PROCESSING):
                self._finish(s, task, FAILURE, reason)

    @staticmethod
    def _finish(s: Session, task: EmbeddingTask, status: str, error: str | None) -> None:
        task.status, task.error, task.finished_at = status, error, utcnow()

    def sync(
        self,
        tenant_id: str,
        bucket: str,
        settings: EmbedSettings,
        ctx: JobContext,
        sources: dict[str, str] | None = None,
        key_id: str = "",
    ) -> tuple[str, str | None]:
        """Bring the bucket's index in line with its objects; (task status, error) of the run. The tokens
        embedded are metered under the API key `key_id`."""
        engine = self.embeddings.resolve(settings.model, tenant_id=tenant_id)
        settings_key = f"{engine.model_id}|{settings.chunk_size}|{settings.chunk_overlap}|{settings.loader}"
        objects = {o.key: o for o in self.objects.list_objects(tenant_id, bucket)}
        with self.db.session() as s:
            known = {
                f.filename: (f.checksum, f.settings_key, f.status, f.source)
                for f in s.scalars(
                    select(EmbeddedFile).where(
                        EmbeddedFile.tenant_id == tenant_id, EmbeddedFile.bucket == bucket
                    )
                )
            }
            for gone in set(known) - set(objects):
                self.index.delete_file(s, tenant_id, bucket, gone)
                s.execute(
                    delete(EmbeddedFile).where(
                        EmbeddedFile.tenant_id == tenant_id,
                        EmbeddedFile.bucket == bucket,
                        EmbeddedFile.filename == gone,
                    )
                )
        ok = failed = 0
        for key, info in sorted(objects.items()):
            ctx.raise_if_cancelled()
            previous = known.get(key)
            if previous is not None and previous[:3] == (info.etag, settings_key, SUCCESS):
                ok += 1
                continue
            source = (sources or {}).get(key) or (
                previous[3] if previous and previous[3] else _source(bucket, key)
            )
            error = self._embed_file(
                tenant_id, bucket, info, source, engine, settings, settings_key, ctx, key_id
            )
            failed, ok = (failed + 1, ok) if error else (failed, ok + 1)
        if failed and not ok:
            return FAILURE, f"all {failed} file(s) failed; see GET /v2/ai/embeddings/buckets/{bucket}"
        if failed:
            return PARTIAL, f"{failed} of {failed + ok} file(s) failed"
        return SUCCESS, None

    def _embed_file(
        self,
        tenant_id: str,
        bucket: str,
        info: ObjectInfo,
        source: str,
        engine: Any,
        settings: EmbedSettings,
        settings_key: str,
        ctx: JobContext,
        key_id: str = "",
    ) -> str | None:
        """Embed one file; its error reason, or None on success. Old chunks go when the new ones land.

        The tokens embedded are metered as the tenant's `embedding_tokens` under `key_id`, also when a later
        batch of the file fails."""
        self._file_state(tenant_id, bucket, info.key, status=PROCESSING, error=None)
        tokens = 0
        try:
            if info.size > self.max_file_bytes:
                raise LoaderError(f"file is {info.size} bytes; the limit is {self.max_file_bytes}")
            data = self.objects.get_bytes(tenant_id, bucket, info.key)
            document = load(info.key, data, transcribe=self._transcriber(tenant_id), loader=settings.loader)
            pieces = chunk_document(document, settings.chunk_size, settings.chunk_overlap)
            vectors = []
            for start in range(0, len(pieces), EMBED_BATCH):
                ctx.raise_if_cancelled()
                batch = [p for _, p, _ in pieces[start : start + EMBED_BATCH]]
                counts = engine.count_tokens(batch)  # before embed: a remote engine reuses its vectors
                vectors.extend(engine.embed(batch))
                tokens += sum(min(count, engine.max_tokens) for count in counts)  # embed truncates
            chunks = [
                ChunkRecord(
                    info.key,
                    i,
                    piece,
                    info.etag,
                    source,
                    engine.model_id,
                    {
                        "loader": document.loader,
                        "chunk_index": i,
                        "start": offset,
                        **document.metadata,
                        **meta,
                    },
                )
                for i, (offset, piece, meta) in enumerate(pieces)
            ]
        except (LoaderError, NotFound) as exc:
            reason = str(exc)
        except (EngineUnavailable, JobCancelled):
            self._meter_tokens(tenant_id, key_id, tokens, engine.model_id)
            raise
        except Exception as exc:
            log.exception("embedding %s/%s failed", bucket, info.key)
            reason = f"{type(exc).__name__}: {exc}"
        else:
            with self.db.session() as s:
                self.index.replace_file(s, tenant_id, bucket, info.key, chunks, np.asarray(vectors))
                self._file_state(
                    tenant_id,
                    bucket,
                    info.key,
                    status=SUCCESS,
                    error=None,
                    checksum=info.etag,
                    settings_key=settings_key,
                    source=source,
                    chunks=len(chunks),
                    session=s,
                )
            ops_context.metered(self.db, tenant_id, "embedding_chunks", len(chunks), engine.model_id)
            self._meter_tokens(tenant_id, key_id, tokens, engine.model_id)
            return None
        self._meter_tokens(tenant_id, key_id, tokens, engine.model_id)
        with self.db.session() as s:
            self.index.delete_file(s, tenant_id, bucket, info.key)
            self._file_state(
                tenant_id,
                bucket,
                info.key,
                status="failed",
                error=reason,
                checksum=info.etag,
                chunks=0,
                session=s,
            )
        return reason

    def _meter_tokens(self, tenant_id: str, key_id: str, tokens: int, model: str) -> None:
        """Meter embedded tokens as the embeddings API does (`embedding_tokens` per model), under `key_id`."""
        if tokens:
            ops_context.metered(self.db, tenant_id, "embedding_tokens", tokens, model, key_id=key_id)

    def _transcriber(self, tenant_id: str) -> Transcribe:
        def transcribe(data: bytes, filename: str) -> str:
            return self.transcriber.transcribe_text(tenant_id, data, filename, source="ingest")

        return transcribe

    def _file_state(
        self,
        tenant_id: str,
        bucket: str,
        filename: str,
        *,
        status: str,
        error: str | None,
        session: Session | None = None,
        **fields: Any,
    ) -> None:
        if session is None:
            with self.db.session() as s:
                self._file_state(tenant_id, bucket, filename, status=status, error=error, session=s, **fields)
            return
        row = session.scalars(
            select(EmbeddedFile).where(
                EmbeddedFile.tenant_id == tenant_id,
                EmbeddedFile.bucket == bucket,
                EmbeddedFile.filename == filename,
            )
        ).first()
        now = utcnow()
        if row is None:
            row = EmbeddedFile(
                tenant_id=tenant_id, bucket=bucket, filename=filename, created_at=now, chunks=0
            )
            session.add(row)
        row.status, row.error_reason, row.updated_at = status, error, now
        for name, value in fields.items():
            setattr(row, name, value)
        if status == SUCCESS:
            row.last_embedded_at = now


def _source(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{quote(key)}"


def task_view(task: EmbeddingTask) -> dict[str, Any]:
    """The spec's task object (`user_id` is the tenant)."""
    return {
        "task_id": task.id,
        "task_name": task.task_name,
        "status": task.status,
        "created_at": _iso(task.created_at),
        "finished_at": _iso(task.finished_at) if task.finished_at else None,
        "user_id": task.tenant_id,
        "bucket": task.bucket,
    }


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
