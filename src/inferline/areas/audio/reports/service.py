"""Legacy speech-to-text reports: batch detail records (a CSV made by a durable job) and the usage summary.

Both read the usage records that every transcription writes. A batch report covers `start_date` to
`end_date` inclusive, at most one calendar month. Its CSV has the columns in `CSV_COLUMNS` (documented in
the README), is kept in the database (so a separate `inferline worker` process can produce it) and expires
`REPORT_TTL` after it is made: the status then reads `EXPIRED` and the download is gone.
"""

from __future__ import annotations

import calendar
import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from inferline.errors import BadRequest, NotFound, ValidationFailed
from inferline.jobs import JobContext, JobFailed, JobQueue, JobView
from inferline.stores.audio_tables import SttReport, SttUsageRecord
from inferline.stores.db import Database
from inferline.stores.tables import utcnow

JOB_KIND = "generate_stt_report"
RECORD_TYPE = "speech_to_text_report"
REPORT_TTL = timedelta(days=7)
PENDING, COMPLETE, FAILED, EXPIRED = "PENDING", "COMPLETE", "FAILED", "EXPIRED"
CSV_COLUMNS = (
    "record_id",
    "created_at",
    "model",
    "requested_model",
    "source",
    "language",
    "audio_seconds",
    "channels",
    "billed_seconds",
    "processing_ms",
)


@dataclass(frozen=True)
class ReportView:
    id: str
    status: str
    start_date: datetime
    end_date: datetime
    created_at: datetime
    row_count: int | None
    error: str | None

    @property
    def ready(self) -> bool:
        return self.status == COMPLETE


def add_month(moment: datetime) -> datetime:
    """The same instant one calendar month later (the day clamped to the month's last)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _check_range(start: datetime, end: datetime, *, max_month: bool) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationFailed("Dates need a timezone, e.g. 2026-11-01T00:00:00Z.", pointer="/start_date")
    if end <= start:
        raise BadRequest("end_date must be after start_date.", pointer="/end_date")
    if max_month and end > add_month(start):
        raise BadRequest("The date range must be at most one month.", pointer="/end_date")


class SttReportService:
    """Creates, lists, fetches and deletes STT batch reports; answers the synchronous usage report."""

    def __init__(self, db: Database, jobs: JobQueue) -> None:
        self.db = db
        self.jobs = jobs

    @staticmethod
    def _view(row: SttReport, now: datetime) -> ReportView:
        status = row.status
        if status == COMPLETE and row.expires_at is not None and row.expires_at <= now:
            status = EXPIRED
        return ReportView(
            row.id, status, row.start_date, row.end_date, row.created_at, row.row_count, row.error
        )

    def _row(self, s: Any, tenant_id: str, report_id: str) -> SttReport:
        row = s.execute(
            select(SttReport).where(SttReport.id == report_id, SttReport.tenant_id == tenant_id)
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"Speech-to-text report {report_id} not found.")
        return row  # type: ignore[no-any-return]

    def create(self, tenant_id: str, start: datetime, end: datetime) -> ReportView:
        """Record a PENDING report and enqueue its generation in the same transaction."""
        _check_range(start, end, max_month=True)
        with self.db.session() as s:
            row = SttReport(tenant_id=tenant_id, status=PENDING, start_date=start, end_date=end)
            s.add(row)
            s.flush()
            row.job_id = self.jobs.enqueue(JOB_KIND, {"report_id": row.id}, tenant_id, session=s)
            view = self._view(row, utcnow())
        return view

    def list(self, tenant_id: str) -> list[ReportView]:
        now = utcnow()
        with self.db.session() as s:
            rows = s.execute(
                select(SttReport)
                .where(SttReport.tenant_id == tenant_id)
                .order_by(SttReport.created_at.desc())
            ).scalars()
            return [self._view(r, now) for r in rows]

    def get(self, tenant_id: str, report_id: str) -> ReportView:
        with self.db.session() as s:
            return self._view(self._row(s, tenant_id, report_id), utcnow())

    def delete(self, tenant_id: str, report_id: str) -> ReportView:
        """Delete a report (cancelling its job if it has not run); returns what was deleted."""
        with self.db.session() as s:
            row = self._row(s, tenant_id, report_id)
            view, job_id = self._view(row, utcnow()), row.job_id
            s.delete(row)
        if job_id and view.status == PENDING:
            self.jobs.cancel(job_id)
        return view

    def download(self, tenant_id: str, report_id: str) -> tuple[str, str]:
        """(file name, CSV text) of a COMPLETE report."""
        with self.db.session() as s:
            row = self._row(s, tenant_id, report_id)
            view = self._view(row, utcnow())
            if view.status != COMPLETE or row.content is None:
                raise NotFound(f"Report {report_id} has no download: its status is {view.status}.")
            return f"stt-report-{report_id}.csv", row.content

    def generate(self, ctx: JobContext) -> None:
        """Job handler: write the CSV of the report's usage records."""
        report_id = ctx.payload["report_id"]
        with self.db.session() as s:
            row = s.get(SttReport, report_id)
            if row is None:
                return  # deleted while queued
            if row.status != PENDING:
                raise JobFailed(f"report {report_id} is {row.status}, not PENDING")
            records = s.execute(
                select(SttUsageRecord)
                .where(
                    SttUsageRecord.tenant_id == row.tenant_id,
                    SttUsageRecord.created_at >= row.start_date,
                    SttUsageRecord.created_at <= row.end_date,
                )
                .order_by(SttUsageRecord.created_at, SttUsageRecord.id)
            ).scalars()
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            count = 0
            for r in records:
                ctx.raise_if_cancelled()
                writer.writerow(
                    [
                        r.id,
                        r.created_at.isoformat(),
                        r.model,
                        r.requested_model,
                        r.source,
                        r.language or "",
                        f"{r.audio_seconds:.3f}",
                        r.channels,
                        f"{r.billed_seconds:.3f}",
                        r.processing_ms,
                    ]
                )
                count += 1
            now = utcnow()
            row.content, row.row_count, row.status = out.getvalue(), count, COMPLETE
            row.completed_at, row.expires_at = now, now + REPORT_TTL
        self.purge_expired()

    def mark_failed(self, job: JobView, reason: str) -> None:
        """Failure hook: the report reads FAILED with the reason."""
        with self.db.session() as s:
            row = s.get(SttReport, job.payload.get("report_id"))
            if row is not None and row.status == PENDING:
                row.status, row.error = FAILED, reason[:2000]

    def purge_expired(self) -> int:
        """Drop the CSVs of expired reports (the rows stay, reading EXPIRED)."""
        with self.db.session() as s:
            rows = s.execute(
                select(SttReport).where(SttReport.expires_at <= utcnow(), SttReport.content.is_not(None))
            ).scalars()
            count = 0
            for row in rows:
                row.content = None
                count += 1
            return count

    def usage(self, tenant_id: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
        """The synchronous usage report: totals, per model and per UTC day from `start` to `end` inclusive.

        Defaults: the 30 days up to now. Seconds are audio seconds; billed seconds count every
        transcribed channel.
        """
        end = end or utcnow()
        start = start or end - timedelta(days=30)
        _check_range(start, end, max_month=False)
        where = (
            SttUsageRecord.tenant_id == tenant_id,
            SttUsageRecord.created_at >= start,
            SttUsageRecord.created_at <= end,
        )
        sums = (
            func.count(SttUsageRecord.id),
            func.coalesce(func.sum(SttUsageRecord.audio_seconds), 0.0),
            func.coalesce(func.sum(SttUsageRecord.billed_seconds), 0.0),
        )
        with self.db.session() as s:
            total = s.execute(select(*sums).where(*where)).one()
            by_model = s.execute(
                select(SttUsageRecord.model, *sums)
                .where(*where)
                .group_by(SttUsageRecord.model)
                .order_by(SttUsageRecord.model)
            ).all()
            created = s.execute(
                select(SttUsageRecord.created_at, SttUsageRecord.billed_seconds).where(*where)
            ).all()
        days: dict[str, list[float]] = {}
        for created_at, billed in created:
            day = days.setdefault(created_at.date().isoformat(), [0, 0.0])
            day[0] += 1
            day[1] += billed
        return {
            "record_type": "speech_to_text_usage_report",
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "total": _totals(*total),
            "by_model": [{"model": m, **_totals(n, a, b)} for m, n, a, b in by_model],
            "by_day": [
                {"date": d, "transcriptions": int(v[0]), "billed_seconds": round(v[1], 3)}
                for d, v in sorted(days.items())
            ],
        }


def _totals(count: int, audio_seconds: float, billed_seconds: float) -> dict[str, Any]:
    return {
        "transcriptions": int(count),
        "audio_seconds": round(float(audio_seconds), 3),
        "billed_seconds": round(float(billed_seconds), 3),
        "billed_minutes": round(float(billed_seconds) / 60, 3),
    }
