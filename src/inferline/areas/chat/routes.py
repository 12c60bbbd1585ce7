"""`POST /ai/chat/completions` (deprecated) and `POST /ai/openai/chat/completions`: one handler.

`stream=true` answers OpenAI server-sent events (`data: {chunk}` … `data: [DONE]`). Every response carries
`x-queue-time-ms`, `x-time-to-first-token-ms` and (when known up front) `x-tokens-per-second`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from inferline.areas.chat.protocol import ChatCompletionRequest
from inferline.web.deps import ContainerDep, TenantDep

router = APIRouter(tags=["chat"])


@router.post("/ai/chat/completions", response_model=None)
@router.post("/ai/openai/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, container: ContainerDep, principal: TenantDep
) -> Response:
    params = body.model_dump(exclude_unset=True, by_alias=True)
    if body.stream:
        started = await container.chat.stream(principal.tenant_id, params)
        headers = {**started.telemetry.headers(), "cache-control": "no-cache"}
        return StreamingResponse(started.events, media_type="text/event-stream", headers=headers)
    result, telemetry = await container.chat.complete(principal.tenant_id, params, request.is_disconnected)
    return JSONResponse(result, headers=telemetry.headers())
