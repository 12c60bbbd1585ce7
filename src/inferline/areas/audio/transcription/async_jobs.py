"""Asynchronous transcription for long recordings (an inferline extension, `/v2/inferline/transcriptions`).

`create` stores the request (and the uploaded audio) and enqueues a `transcribe_recording` job in the same
transaction, answering at once with the id. The durable worker (embedded, or `inferline worker`) transcribes
it with the same options as the synchronous endpoint (`model_config[diarize]` included), stores the
verbose_json result, drops the audio, and, if a `webhook_url` was given, queues a signed webhook
(the Ed25519 scheme of the insight webhooks) with event type `inferline.transcription.completed` or
`inferline.transcription.failed`.
A request the engine refuses (a bad model, undecodable audio) fails at once; other errors are retried with the
queue's backoff, and the job fails for good after `MAX_ATTEMPTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer, undefer

from inferline.areas.audio.transcription.service import TranscriptionOptions, TranscriptionService
from inferline.errors import InferlineError, NotFound, PayloadTooLarge
from inferline.jobs import JobContext, JobFailed, JobQueue, JobView
from inferline.privacy import tenant_settings
from inferline.stores.audio_tables import SttTranscriptionJob
from inferline.stores.db import Database
from inferline.stores.tables import new_id, utcnow

JOB_KIND = "transcribe_recording"
MAX_ATTEMPTS = 3
QUEUED, COMPLETED, FAILED = "queued", "completed", "failed"
COMPLETED_EVENT, FAILED_EVENT = "inferline.transcription.completed", "inferline.transcription.failed"


class Webhooks(Protocol):
    """The signed-webhook service of the conversations area (`conversations.webhooks.WebhookService`)."""

    def check_url(self, url: str, pointer: str = "/webhook") -> None: ...

    def enqueue(
        self,
        session: Session,
        *,
        tenant_id: str,
        url: str,
        event_type: str,
        body: dict[str, Any],
        run_id: str | None = None,
    ) -> str: ...


Render = (
    Any  # (TranscriptionResult, options dict) -> verbose_json body; the route module's transcription_body
)


@dataclass(frozen=True)
class AsyncTranscription:
    id: str
    status: str
    created_at: datetime
    completed_at: datetime | None
    webhook_url: str | None
    result: dict[str, Any] | None
    error: str | None

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "record_type": "transcription",
            "status": self.status,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "completed_at": self.completed_at.isoformat().replace("+00:00", "Z")
            if self.completed_at
            else None,
            "webhook_url": self.webhook_url,
            "result": self.result,
            "error": self.error,
        }


class AsyncTranscriptionService:
    """Create, run (job handler), fetch, list and delete asynchronous transcriptions."""

    def __init__(
        self,
        db: Database,
        jobs: JobQueue,
        transcription: TranscriptionService,
        webhooks: Webhooks,
        render: Render,
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.transcription = transcription
        self.webhooks = webhooks
        self.render = render

    def create(
        self,
        tenant_id: str,
        options: dict[str, Any],
        *,
        data: bytes | None,
        file_url: str | None,
        webhook_url: str | None,
    ) -> AsyncTranscription:
        """Check what can be checked now (model, model_config, webhook URL, size), store and enqueue."""
        transcription = self.transcription
        transcription.resolve_model(options.get("model"), tenant_id)
        transcription.check_config(options.get("model_config") or {})
        tenant_settings.redacts(self.db, tenant_id, options.get("redact"))  # a refused opt-out: 400
        if webhook_url is not None:
            self.webhooks.check_url(webhook_url, pointer="/webhook_url")
        if data is not None and len(data) > transcription.max_bytes:
            raise PayloadTooLarge(
                f"The file is larger than {transcription.max_bytes} bytes.", pointer="/file"
            )
        with self.db.session() as s:
            row = SttTranscriptionJob(
                id=new_id(),
                tenant_id=tenant_id,
                status=QUEUED,
                options=options,
                file_url=file_url,
                audio=data,
                webhook_url=webhook_url,
            )
            s.add(row)
            s.flush()
            row.job_id = self.jobs.enqueue(
                JOB_KIND, {"transcription_id": row.id}, tenant_id, session=s, max_attempts=MAX_ATTEMPTS
            )
            return _view(row, None)

    def get(self, tenant_id: str, transcription_id: str) -> AsyncTranscription:
        with self.db.session() as s:
            row = s.scalars(
                select(SttTranscriptionJob)
                .options(undefer(SttTranscriptionJob.result))
                .where(SttTranscriptionJob.id == transcription_id, SttTranscriptionJob.tenant_id == tenant_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"Transcription {transcription_id} not found.", pointer="/id")
            return _view(row, row.result)

    def list(self, tenant_id: str, offset: int, limit: int) -> tuple[list[AsyncTranscription], int]:
        """Newest first, without results (fetch one to read its transcript)."""
        where = SttTranscriptionJob.tenant_id == tenant_id
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(SttTranscriptionJob).where(where)) or 0
            rows = s.scalars(
                select(SttTranscriptionJob)
                .options(defer(SttTranscriptionJob.result))
                .where(where)
                .order_by(SttTranscriptionJob.created_at.desc(), SttTranscriptionJob.id)
                .offset(offset)
                .limit(limit)
            ).all()
            return [_view(r, None) for r in rows], total

    def delete(self, tenant_id: str, transcription_id: str) -> None:
        """Delete the transcription (and its audio); a queued one's job finds nothing and stops."""
        with self.db.session() as s:
            row = s.scalars(
                select(SttTranscriptionJob).where(
                    SttTranscriptionJob.id == transcription_id, SttTranscriptionJob.tenant_id == tenant_id
                )
            ).one_or_none()
            if row is None:
                raise NotFound(f"Transcription {transcription_id} not found.", pointer="/id")
            job_id = row.job_id if row.status == QUEUED else None
            s.delete(row)
        if job_id is not None:
            self.jobs.cancel(job_id)

    def run(self, ctx: JobContext) -> None:
        """Job handler: transcribe, store the result, queue the webhook."""
        transcription_id = ctx.payload["transcription_id"]
        with self.db.session() as s:
            row = s.scalars(
                select(SttTranscriptionJob)
                .options(undefer(SttTranscriptionJob.audio))
                .where(SttTranscriptionJob.id == transcription_id)
            ).one_or_none()
            if row is None or row.status != QUEUED:
                return  # deleted, or finished by a worker that took the job over
            tenant_id, stored, data, file_url = row.tenant_id, dict(row.options), row.audio, row.file_url
        options = TranscriptionOptions(
            model=stored.get("model"),
            language=stored.get("language"),
            prompt=stored.get("prompt"),
            temperature=float(stored.get("temperature") or 0.0),
            word_timestamps="word" in (stored.get("timestamp_granularities") or []),
            model_config=stored.get("model_config") or {},
            redact=stored.get("redact") or None,  # checked at creation; the tenant's default may have changed
        )
        try:
            if data is not None:
                result = self.transcription.transcribe(tenant_id, data, options, source="async")
            else:
                assert file_url is not None
                result = self.transcription.transcribe_url(tenant_id, file_url, options)
        except InferlineError as exc:
            if exc.status < 500 and exc.status != 429:
                raise JobFailed(exc.detail) from None
            raise
        body = self.render(result, stored)
        with self.db.session() as s:
            row = s.get(SttTranscriptionJob, transcription_id)
            if row is None or row.status != QUEUED:
                return
            row.status, row.result, row.audio, row.completed_at = COMPLETED, body, None, utcnow()
            self._announce(s, row, COMPLETED_EVENT, {"result": body})

    def on_failure(self, job: JobView, reason: str) -> None:
        """Failure hook: marked failed with the reason, the audio dropped, the webhook queued."""
        with self.db.session() as s:
            row = s.get(SttTranscriptionJob, job.payload.get("transcription_id"))
            if row is None or row.status != QUEUED:
                return
            row.status, row.error, row.audio, row.completed_at = FAILED, reason, None, utcnow()
            self._announce(s, row, FAILED_EVENT, {"error": reason})

    def _announce(self, s: Session, row: SttTranscriptionJob, event_type: str, extra: dict[str, Any]) -> None:
        if row.webhook_url is None:
            return
        payload = {"transcription_id": row.id, "status": row.status, **extra}
        event = {
            "record_type": "event",
            "event_type": event_type,
            "id": new_id(),
            "occurred_at": utcnow().isoformat().replace("+00:00", "Z"),
            "payload": payload,
        }
        self.webhooks.enqueue(
            s, tenant_id=row.tenant_id, url=row.webhook_url, event_type=event_type, body={"data": event}
        )


def _view(row: SttTranscriptionJob, result: dict[str, Any] | None) -> AsyncTranscription:
    return AsyncTranscription(
        row.id, row.status, row.created_at, row.completed_at, row.webhook_url, result, row.error
    )
