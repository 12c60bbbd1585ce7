"""`POST /ai/audio/transcriptions`, and OpenAI's `/audio/transcriptions` and `/audio/translations` (into
English): Whisper speech-to-text for the Telnyx and OpenAI SDKs (base `/v2`, `/v2/ai/openai` or `/v1`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from inferline.areas.audio.transcription.protocol import parse_form, read_form, transcription_body
from inferline.areas.audio.transcription.service import TranscriptionOptions, to_srt, to_vtt
from inferline.web.deps import ContainerDep, TenantDep

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
    )
    service = container.transcription
    if upload is not None:
        data = await upload.read()
        result = await run_in_threadpool(service.transcribe, principal.tenant_id, data, options)
    else:
        assert form.file_url is not None
        result = await run_in_threadpool(service.transcribe_url, principal.tenant_id, form.file_url, options)
    headers = {"x-inferline-model": result.model}
    if form.response_format in TEXT_FORMATS:
        render = {"text": lambda r: r.text + "\n", "srt": to_srt, "vtt": to_vtt}[form.response_format]
        return PlainTextResponse(
            render(result), media_type=TEXT_FORMATS[form.response_format], headers=headers
        )
    return JSONResponse(transcription_body(result, form, translate=translate), headers=headers)
