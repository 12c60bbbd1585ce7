"""Wire models of the legacy speech-to-text reporting endpoints (all wrapped in `data`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from inferline.areas.audio.reports.service import RECORD_TYPE, ReportView


class SttDetailedRequest(BaseModel):
    """`POST …/speech_to_text`: ISO date-times with a timezone, at most one month apart."""

    model_config = ConfigDict(extra="forbid")

    start_date: AwareDatetime
    end_date: AwareDatetime


class SttDetailReport(BaseModel):
    id: str
    record_type: str = RECORD_TYPE
    status: Literal["PENDING", "COMPLETE", "FAILED", "EXPIRED"]
    start_date: datetime
    end_date: datetime
    created_at: datetime
    download_link: str | None = None

    @classmethod
    def of(cls, view: ReportView, download_link: str | None) -> SttDetailReport:
        return cls(
            id=view.id,
            status=view.status,  # type: ignore[arg-type]
            start_date=view.start_date,
            end_date=view.end_date,
            created_at=view.created_at,
            download_link=download_link if view.ready else None,
        )


class SttReportResponse(BaseModel):
    data: SttDetailReport


class SttReportListResponse(BaseModel):
    data: list[SttDetailReport]


class SttUsageReportResponse(BaseModel):
    data: dict[str, Any]
