"""`POST /ai/summarize`: the summary of a file in one of the caller's buckets, as `{"data": {"summary"}}`.

The summary runs in a worker thread; a client that disconnects cancels it at the next token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from inferline.areas.summarize.protocol import SummaryRequest
from inferline.web.deps import ContainerDep, TenantDep

router = APIRouter(tags=["summarize"])


@router.post("/ai/summarize")
async def summarize(
    body: SummaryRequest, request: Request, container: ContainerDep, principal: TenantDep
) -> dict[str, Any]:
    summary = await container.summarize.run(
        principal.tenant_id, body.bucket, body.filename, body.system_prompt, request.is_disconnected
    )
    return {"data": {"summary": summary}}
