"""`POST /ai/anthropic/v1/messages`: Anthropic's Messages API on the chat engines.

The anthropic SDK (base URL `…/v2/ai/anthropic`) authenticates with `x-api-key` (accepted on this path) and
sends `anthropic-version`, which is accepted whatever its value. `stream=true` answers Anthropic's
server-sent events; errors carry Anthropic's `{"type": "error", "error": {…}}` beside the Telnyx envelope.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from inferline.areas.anthropic.protocol import MessagesRequest
from inferline.areas.anthropic.service import MessagesService
from inferline.web.deps import ContainerDep, TenantDep
from inferline.web.streaming import EagerStreamingResponse

router = APIRouter(tags=["anthropic"])


@router.post("/ai/anthropic/v1/messages", response_model=None)
async def create_message(
    body: MessagesRequest, request: Request, container: ContainerDep, principal: TenantDep
) -> Response:
    service = MessagesService(container.chat)
    if body.stream:
        started = await service.stream(principal.tenant_id, body)
        headers = {**started.telemetry.headers(), "cache-control": "no-cache"}
        return EagerStreamingResponse(started.events, media_type="text/event-stream", headers=headers)
    result, telemetry = await service.create(principal.tenant_id, body, request.is_disconnected)
    return JSONResponse(result, headers=telemetry.headers())
