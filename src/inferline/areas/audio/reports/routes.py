"""Legacy STT reporting: batch detail records (CSV made by a job, downloaded here) and the usage report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from inferline.areas.audio.reports.protocol import (
    SttDetailedRequest,
    SttDetailReport,
    SttReportListResponse,
    SttReportResponse,
    SttUsageReportResponse,
)
from inferline.areas.audio.reports.service import ReportView
from inferline.web.deps import ContainerDep, TenantDep

router = APIRouter(tags=["legacy-reporting"])
BATCH = "/legacy/reporting/batch_detail_records/speech_to_text"


def _shape(request: Request, view: ReportView) -> SttDetailReport:
    return SttDetailReport.of(view, str(request.url_for("download_stt_report", report_id=view.id)))


@router.get(BATCH)
def list_reports(request: Request, container: ContainerDep, principal: TenantDep) -> SttReportListResponse:
    views = container.stt_reports.list(principal.tenant_id)
    return SttReportListResponse(data=[_shape(request, v) for v in views])


@router.post(BATCH)
def create_report(
    body: SttDetailedRequest, request: Request, container: ContainerDep, principal: TenantDep
) -> SttReportResponse:
    view = container.stt_reports.create(principal.tenant_id, body.start_date, body.end_date)
    return SttReportResponse(data=_shape(request, view))


@router.get(BATCH + "/{report_id}")
def get_report(
    report_id: str, request: Request, container: ContainerDep, principal: TenantDep
) -> SttReportResponse:
    return SttReportResponse(data=_shape(request, container.stt_reports.get(principal.tenant_id, report_id)))


@router.delete(BATCH + "/{report_id}")
def delete_report(
    report_id: str, request: Request, container: ContainerDep, principal: TenantDep
) -> SttReportResponse:
    return SttReportResponse(
        data=_shape(request, container.stt_reports.delete(principal.tenant_id, report_id))
    )


@router.get(BATCH + "/{report_id}/download", name="download_stt_report")
def download_report(report_id: str, container: ContainerDep, principal: TenantDep) -> Response:
    """The report's CSV (the `download_link`); same API key as the rest of the API."""
    filename, content = container.stt_reports.download(principal.tenant_id, report_id)
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/legacy/reporting/usage_reports/speech_to_text")
def usage_report(
    container: ContainerDep,
    principal: TenantDep,
    start_date: Annotated[AwareDatetime | None, Query()] = None,
    end_date: Annotated[AwareDatetime | None, Query()] = None,
) -> SttUsageReportResponse:
    return SttUsageReportResponse(data=container.stt_reports.usage(principal.tenant_id, start_date, end_date))
