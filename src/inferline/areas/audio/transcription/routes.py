"""`POST /ai/audio/transcriptions`, and OpenAI's `/audio/transcriptions` and `/audio/translations` (into
English): Whisper speech-to-text for the Telnyx and OpenAI SDKs (base `/v2`, `/v2/ai/openai` or `/v1`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from inferline.areas.audio.transcription.protocol import parse_form, read_form, transcription_body
from inferline.areas.audio.transcription.service import TranscriptionOptions, to_srt, to_vtt
from inferline.errors import BadRequest
from inferline.web.deps import ContainerDep, PageDep, TenantDep

router = APIRouter(tags=["audio"])

TEXT_FORMATS = {"text": "text/plain", "srt": "text/plain", "vtt": "text/vtt"}


@router.post("/ai/audio/transcriptions")
@router.post("/ai/openai/audio/transcriptions")  # an OpenAI client with base URL /v2/ai/openai
@router.post("/audio/transcriptions")  # an OpenAI client with base URL /v2 (or /v1)
async def transcribe(request: Request, container: ContainerDep, principal: TenantDep) -> Response:
    return await _speech_to_text(request, container, principal, translate=False)


@router.post("/ai/openai/audio/translations")
@router.post("/audio/translations")
async def translate(request: Request, container: ContainerDep, principal: TenantDep) -> Response:
    """Whisper's translation task: speech in any language it knows, as English text."""
    return await _speech_to_text(request, container, principal, translate=True)


async def _speech_to_text(
    request: Request, container: ContainerDep, principal: TenantDep, *, translate: bool
) -> Response:
    form, upload = parse_form(await read_form(request))
    options = TranscriptionOptions(
        model=form.model,
        language=form.language,
        prompt=form.prompt,
        temperature=form.temperature,
        word_timestamps="word" in form.timestamp_granularities,
        model_config=form.engine_config,
        translate=translate,
        redact=form.redact,
    )
    service = container.transcription
    if upload is not None:
        data = await upload.read()
        result = await run_in_threadpool(service.transcribe, principal.tenant_id, data, options)
    else:
        assert form.file_url is not None
        result = await run_in_threadpool(service.transcribe_url, principal.tenant_id, form.file_url, options)
    headers = {"x-inferline-model": result.model}
    if result.redacted:
        headers["x-inferline-redacted"] = "true"
    if form.response_format in TEXT_FORMATS:
        render = {"text": lambda r: r.text + "\n", "srt": to_srt, "vtt": to_vtt}[form.response_format]
        return PlainTextResponse(
            render(result), media_type=TEXT_FORMATS[form.response_format], headers=headers
        )
    return JSONResponse(transcription_body(result, form, translate=translate), headers=headers)


# Asynchronous transcription (an inferline extension): the same form, plus `webhook_url`; answers 202 at once.
ASYNC_PATH = "/inferline/transcriptions"


@router.post(ASYNC_PATH, status_code=202)
async def create_async_transcription(
    request: Request, container: ContainerDep, principal: TenantDep
) -> dict[str, Any]:
    raw = await read_form(request)
    form, upload = parse_form(raw, skip=("webhook_url",))
    webhook_url = raw.get("webhook_url")
    if webhook_url is not None and (isinstance(webhook_url, UploadFile) or not webhook_url):
        raise BadRequest("`webhook_url` must be a URL.", pointer="/webhook_url")
    if form.response_format not in ("json", "verbose_json"):
        raise BadRequest(
            "The stored result is always verbose_json (send `verbose_json` or leave it out).",
            pointer="/response_format",
        )
    options = form.model_dump(by_alias=True, exclude={"file_url", "response_format"}, exclude_defaults=True)
    data = await upload.read() if upload is not None else None
    job = await run_in_threadpool(
        container.async_transcriptions.create,
        principal.tenant_id,
        options,
        data=data,
        file_url=form.file_url,
        webhook_url=webhook_url,
    )
    return {"data": job.body()}


@router.get(ASYNC_PATH)
def list_async_transcriptions(container: ContainerDep, principal: TenantDep, page: PageDep) -> dict[str, Any]:
    items, total = container.async_transcriptions.list(principal.tenant_id, page.offset, page.size)
    return page.envelope([i.body() for i in items], total)


@router.get(ASYNC_PATH + "/{transcription_id}")
def get_async_transcription(
    transcription_id: str, container: ContainerDep, principal: TenantDep
) -> dict[str, Any]:
    return {"data": container.async_transcriptions.get(principal.tenant_id, transcription_id).body()}


@router.delete(ASYNC_PATH + "/{transcription_id}", status_code=204)
def delete_async_transcription(
    transcription_id: str, container: ContainerDep, principal: TenantDep
) -> Response:
    container.async_transcriptions.delete(principal.tenant_id, transcription_id)
    return Response(status_code=204)
