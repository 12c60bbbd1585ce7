"""TTS routes: Telnyx `/text-to-speech/speech` and `/text-to-speech/voices`, OpenAI `/audio/speech`."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from inferline.areas.audio.speech.protocol import (
    AudioIdResponse,
    Base64Audio,
    GenerateSpeechRequest,
    OpenAISpeechRequest,
    Provider,
    VoiceOut,
    VoicesResponse,
)
from inferline.areas.audio.speech.service import SpeechStream
from inferline.web.deps import ContainerDep, TenantDep
from inferline.web.streaming import EagerStreamingResponse

router = APIRouter(tags=["text-to-speech"])


def _audio(stream: SpeechStream) -> Response:
    """Raw audio, streamed (chunked) as it is synthesised."""
    return EagerStreamingResponse(
        stream.chunks, media_type=stream.content_type, headers={"x-inferline-voice": stream.voice_id}
    )


@router.post("/text-to-speech/speech", response_model=None)
def generate_speech(
    body: GenerateSpeechRequest, container: ContainerDep, principal: TenantDep
) -> Response | Base64Audio | AudioIdResponse:
    stream = container.speech.speak(body.to_request(), principal.tenant_id)
    if body.output_type == "base64_output":
        return Base64Audio(base64_audio=base64.b64encode(stream.read_all()).decode())
    if body.output_type == "audio_id":
        return AudioIdResponse(audio_id=container.stored_speech.start(principal.tenant_id, stream))
    return _audio(stream)


@router.get("/text-to-speech/speech/{audio_id}", response_model=None)
def get_speech(audio_id: str, container: ContainerDep, principal: TenantDep) -> Response:
    """Speech made with `output_type: audio_id`: streamed while it is synthesised, then until it expires."""
    stored = container.stored_speech.open(principal.tenant_id, audio_id)
    return EagerStreamingResponse(
        stored.chunks, media_type=stored.content_type, headers={"x-inferline-voice": stored.voice_id}
    )


@router.post("/audio/speech")
@router.post("/ai/openai/audio/speech")  # an OpenAI client with base URL /v2/ai/openai
def openai_speech(body: OpenAISpeechRequest, container: ContainerDep, principal: TenantDep) -> Response:
    return _audio(container.speech.speak(body.to_request(), principal.tenant_id))


@router.get("/text-to-speech/voices")
def list_voices(
    container: ContainerDep,
    principal: TenantDep,
    provider: Annotated[Provider | None, Query()] = None,
    api_key: Annotated[str | None, Query()] = None,  # no configured provider needs one
) -> VoicesResponse:
    del api_key
    voices = container.speech.list_voices(provider, principal.tenant_id)
    return VoicesResponse(voices=[VoiceOut.of(v) for v in voices])
