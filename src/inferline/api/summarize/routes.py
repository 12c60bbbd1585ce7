"""`POST /ai/summarize`: the summary of a file in one of the caller's buckets, as `{"data": {"summary"}}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from inferline.api.deps import ContainerDep, TenantDep
from inferline.api.summarize.protocol import SummaryRequest

router = APIRouter(tags=["summarize"])


@router.post("/ai/summarize")
def summarize(body: SummaryRequest, container: ContainerDep, principal: TenantDep) -> dict[str, Any]:
    summary = container.summarize.summarize(
        principal.tenant_id, body.bucket, body.filename, body.system_prompt
    )
    return {"data": {"summary": summary}}
