"""`POST /ai/openai/responses` (also `/v1/responses`): OpenAI's Responses API on the chat engines.

`stream=true` answers the Responses server-sent events (`event: response.output_text.delta` …
`event: response.completed`); like chat, every response carries the `x-queue-time-ms` /
`x-time-to-first-token-ms` headers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from inferline.areas.responses.protocol import ResponseCreateRequest
from inferline.areas.responses.service import ResponsesService
from inferline.web.deps import ContainerDep, TenantDep
from inferline.web.streaming import EagerStreamingResponse

router = APIRouter(tags=["responses"])


@router.post("/ai/openai/responses", response_model=None)
async def create_response(
    body: ResponseCreateRequest, request: Request, container: ContainerDep, principal: TenantDep
) -> Response:
    service = ResponsesService(container.chat, container.conversations)
    if body.stream:
        started = await service.stream(principal.tenant_id, body)
        headers = {**started.telemetry.headers(), "cache-control": "no-cache"}
        return EagerStreamingResponse(started.events, media_type="text/event-stream", headers=headers)
    result, telemetry = await service.create(principal.tenant_id, body, request.is_disconnected)
    return JSONResponse(result, headers=telemetry.headers())
