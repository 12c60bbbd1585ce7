"""Wire models of `POST /ai/audio/transcriptions` (multipart form, as the Telnyx and OpenAI SDKs send it)."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from inferline.areas.audio.transcription.service import ChannelSegment, TranscriptionResult
from inferline.errors import BadRequest

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")  # the latter for `file_url` only
ResponseFormat = Literal["json", "verbose_json", "text", "srt", "vtt"]


class TranscriptionForm(BaseModel):
    """The non-file fields; `model_config` comes as bracket fields (`model_config[k]=v`) or a JSON string."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)

    model: str | None = None
    file_url: str | None = None
    language: str | None = None
    prompt: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)
    response_format: ResponseFormat = "json"
    timestamp_granularities: list[Literal["segment", "word"]] = Field(default_factory=list)
    engine_config: dict[str, Any] = Field(default_factory=dict, alias="model_config")
    redact: bool | None = None  # inferline extension: personal data replaced; unset: the tenant's default

    @model_validator(mode="after")
    def _granularities_need_verbose(self) -> TranscriptionForm:
        if self.timestamp_granularities and self.response_format != "verbose_json":
            raise ValueError("timestamp_granularities requires response_format=verbose_json")
        return self


async def read_form(request: Request) -> FormData:
    """The multipart body; a missing or malformed one is a 400 in the Telnyx envelope."""
    if not request.headers.get("content-type", "").startswith(FORM_TYPES):
        raise BadRequest("Send the audio as multipart/form-data (`file` or `file_url`).", pointer="/file")
    try:
        return await request.form(max_files=1, max_fields=100)
    except HTTPException as exc:
        raise BadRequest(f"Malformed multipart body: {exc.detail}") from exc


def parse_form(form: FormData, skip: tuple[str, ...] = ()) -> tuple[TranscriptionForm, UploadFile | None]:
    """Collect repeated, bracketed and JSON-string fields into a `TranscriptionForm`, plus the file part;
    fields named in `skip` are the caller's to read."""
    fields: dict[str, Any] = {}
    config: dict[str, Any] = {}
    upload: UploadFile | None = None
    for key, value in form.multi_items():
        if key in skip:
            continue
        if key == "file":
            if not isinstance(value, UploadFile):
                raise BadRequest("`file` must be a file part.", pointer="/file")
            upload = value
        elif isinstance(value, UploadFile):
            raise BadRequest(f"Unexpected file part {key!r}.", pointer=f"/{key}")
        elif key in ("timestamp_granularities", "timestamp_granularities[]"):
            fields.setdefault("timestamp_granularities", []).append(value)
        elif key.startswith("model_config[") and key.endswith("]"):
            config[key[len("model_config[") : -1]] = value
        elif key == "model_config":
            config.update(_json_object(value))
        else:
            fields[key] = value
    if config:
        fields["model_config"] = config
    try:
        parsed = TranscriptionForm.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        ) from exc
    if (upload is None) == (parsed.file_url is None):
        raise BadRequest("Send exactly one of `file` and `file_url`.", pointer="/file")
    return parsed, upload


def _json_object(value: str) -> dict[str, Any]:
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError as exc:
        raise BadRequest("`model_config` must be a JSON object.", pointer="/model_config") from exc
    if not isinstance(decoded, dict):
        raise BadRequest("`model_config` must be a JSON object.", pointer="/model_config")
    return decoded


def _segment(item: ChannelSegment, with_words: bool) -> dict[str, Any]:
    s = item.segment
    out: dict[str, Any] = {
        "id": s.id,
        "seek": s.seek,
        "start": s.start,
        "end": s.end,
        "text": s.text.strip(),
        "tokens": list(s.tokens),
        "temperature": s.temperature,
        "avg_logprob": s.avg_logprob,
        "compression_ratio": s.compression_ratio,
        "no_speech_prob": s.no_speech_prob,
    }
    if item.channel is not None:
        out["channel"] = item.channel
    if item.speakers is not None:
        out["speakers"] = list(item.speakers)
    if with_words or item.speakers is not None:  # diarized segments carry their words, as Deepgram's do
        out["words"] = _words(item)
    return out


def _words(item: ChannelSegment) -> list[dict[str, Any]]:
    """The segment's words: diarized ones with `speaker` and `speaker_confidence`, multichannel `channel`."""
    out = []
    for n, w in enumerate(item.segment.words):
        word = _word(w)
        if item.channel is not None:
            word["channel"] = item.channel
        if n < len(item.word_speakers):
            word["speaker"], word["speaker_confidence"] = item.word_speakers[n]
        out.append(word)
    return out


def _word(w: Any) -> dict[str, Any]:
    return {
        "word": w.word.strip(),
        "start": round(w.start, 3),
        "end": round(w.end, 3),
        "confidence": w.probability,
    }


def transcription_body(
    result: TranscriptionResult, form: TranscriptionForm, *, translate: bool = False
) -> dict[str, Any]:
    """`json`: `{text}`; `verbose_json`: OpenAI's verbose shape plus `model` and per-segment `channel`."""
    if form.response_format == "json":
        return {"text": result.text}
    words = "word" in form.timestamp_granularities
    body: dict[str, Any] = {
        "task": "translate" if translate else "transcribe",
        "language": result.language,
        "duration": result.duration,
        "text": result.text,
        "model": result.model,
        "segments": [_segment(item, words) for item in result.segments],
    }
    if words:
        body["words"] = [word for item in result.segments for word in _words(item)]
    return body


def render_async(result: TranscriptionResult, options: dict[str, Any]) -> dict[str, Any]:
    """An async transcription's stored result: the verbose_json body of the same request."""
    form = TranscriptionForm.model_validate({**options, "response_format": "verbose_json"})
    return transcription_body(result, form)
