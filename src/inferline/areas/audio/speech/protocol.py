"""Wire models of text-to-speech: Telnyx `GenerateSpeechRequest`, OpenAI `audio.speech`, voices."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from inferline.areas.audio.speech.service import SpeechRequest, Voice
from inferline.errors import BadRequest

Provider = Literal[
    "aws", "telnyx", "azure", "elevenlabs", "minimax", "rime", "resemble", "xai", "humain", "soniox"
]
FOREIGN = ("aws", "azure", "elevenlabs", "minimax", "rime", "resemble", "xai", "humain", "soniox")


class TelnyxProviderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voice_speed: float | None = None
    temperature: float | None = None
    volume: float | None = None
    emotion: Literal["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"] | None = None
    response_format: str | None = None
    sampling_rate: int | None = None


class GenerateSpeechRequest(BaseModel):
    """`POST /text-to-speech/speech`. Other providers' parameter objects are accepted only to refuse them."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, max_length=10_000)
    voice: str | None = None
    provider: Provider | None = None
    # `audio_id`: synthesised in the background, fetched with GET /text-to-speech/speech/{audio_id}.
    output_type: Literal["binary_output", "base64_output", "audio_id"] = "binary_output"
    text_type: Literal["text", "ssml"] = "text"
    language: str | None = None
    disable_cache: bool = False  # nothing is cached here: every request is synthesised afresh
    voice_settings: dict[str, Any] | None = None
    telnyx: TelnyxProviderParams | None = None
    aws: dict[str, Any] | None = None
    azure: dict[str, Any] | None = None
    elevenlabs: dict[str, Any] | None = None
    minimax: dict[str, Any] | None = None
    rime: dict[str, Any] | None = None
    resemble: dict[str, Any] | None = None
    xai: dict[str, Any] | None = None
    humain: dict[str, Any] | None = None
    soniox: dict[str, Any] | None = None

    def foreign_params(self) -> tuple[str, ...]:
        return tuple(name for name in FOREIGN if getattr(self, name) is not None)

    def to_request(self) -> SpeechRequest:
        t = self.telnyx or TelnyxProviderParams()
        settings = dict(self.voice_settings or {})
        speed = _number(
            settings.pop("voice_speed", None) or settings.pop("speed", None), "voice_settings/speed"
        )
        volume = _number(settings.pop("volume", None), "voice_settings/volume")
        return SpeechRequest(
            text=self.text or "",
            voice=self.voice,
            provider=self.provider,
            ssml=self.text_type == "ssml",
            language=self.language,
            response_format=t.response_format or "mp3",
            sample_rate=t.sampling_rate,
            speed=t.voice_speed or speed or 1.0,
            volume=t.volume or volume or 1.0,
            temperature=t.temperature,
            emotion=t.emotion,
            unsupported=self.foreign_params() + tuple(f"voice_settings/{k}" for k in settings),
        )


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadRequest("Expected a number.", pointer=f"/{where}") from None


class OpenAISpeechRequest(BaseModel):
    """OpenAI `POST /audio/speech` (the openai SDK's `audio.speech.create` with base URL `/v2`)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    input: str = Field(max_length=4096)
    voice: str
    instructions: str | None = None
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] | None = None

    def to_request(self) -> SpeechRequest:
        unsupported = ("instructions",) if self.instructions else ()
        unsupported += ("stream_format",) if self.stream_format == "sse" else ()
        return SpeechRequest(
            text=self.input,
            voice=self.voice,
            model=self.model,
            response_format=self.response_format,
            sample_rate=24000,
            speed=self.speed,
            unsupported=unsupported,
        )


class VoiceOut(BaseModel):
    voice_id: str
    name: str
    provider: str
    language: str
    gender: str | None = None
    hosted: bool = True

    @classmethod
    def of(cls, voice: Voice) -> VoiceOut:
        return cls(
            voice_id=voice.voice_id,
            name=voice.name,
            provider=voice.provider,
            language=voice.language,
            gender=voice.gender,
        )


class VoicesResponse(BaseModel):
    voices: list[VoiceOut]


class Base64Audio(BaseModel):
    base64_audio: str


class AudioIdResponse(BaseModel):
    """`output_type: audio_id`: the id to fetch the audio by (`GET /text-to-speech/speech/{audio_id}`)."""

    audio_id: str
