"""`POST /ai/chat/completions` (deprecated) and `POST /ai/openai/chat/completions`: one handler.

`stream=true` answers OpenAI server-sent events (`data: {chunk}` … `data: [DONE]`). Every response carries
`x-queue-time-ms`, `x-time-to-first-token-ms` and (when known up front) `x-tokens-per-second`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from inferline.areas.chat import completions
from inferline.areas.chat.completions_protocol import CompletionRequest
from inferline.areas.chat.output import sse
from inferline.areas.chat.protocol import ChatCompletionRequest
from inferline.areas.chat.service import ChatStream
from inferline.errors import InferlineError
from inferline.web.deps import ContainerDep, TenantDep
from inferline.web.streaming import EagerStreamingResponse

router = APIRouter(tags=["chat"])


@router.post("/ai/chat/completions", response_model=None)
@router.post("/ai/openai/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, container: ContainerDep, principal: TenantDep
) -> Response:
    if body.stream:
        started = await container.chat.stream(principal.tenant_id, body)
        headers = {**started.telemetry.headers(), "cache-control": "no-cache"}
        return EagerStreamingResponse(_events(started), media_type="text/event-stream", headers=headers)
    result, telemetry = await container.chat.complete(principal.tenant_id, body, request.is_disconnected)
    return JSONResponse(result.model_dump(exclude_unset=True), headers=telemetry.headers())


@router.post("/ai/openai/completions", response_model=None)
async def create_completion(
    body: CompletionRequest, request: Request, container: ContainerDep, principal: TenantDep
) -> Response:
    """OpenAI's legacy text completions (a raw prompt, no chat template) on local models."""
    chunks = await completions.start(container.chat.pool, principal.tenant_id, body)
    if body.stream:
        return EagerStreamingResponse(
            _completion_events(chunks), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )
    return JSONResponse(await completions.collect(chunks, request.is_disconnected))


async def _completion_events(chunks: AsyncIterator[dict]) -> AsyncIterator[str]:
    try:
        async for chunk in chunks:
            yield sse(chunk)
    except InferlineError as exc:
        yield sse({"error": {"message": exc.detail, "type": exc.title, "code": exc.code}})
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    yield sse("[DONE]")


async def _events(stream: ChatStream) -> AsyncIterator[str]:
    """SSE lines; a failure midway is an `error` event, and the stream always ends with `[DONE]`."""
    try:
        async for burst in stream.bursts:  # the engine's chunks as they are: no model round-trip per token
            yield "".join(sse(chunk) for chunk in burst)  # those that came together: one write
    except InferlineError as exc:
        yield sse({"error": {"message": exc.detail, "type": exc.title, "code": exc.code}})
    finally:
        stream.cancel()
    yield sse("[DONE]")
