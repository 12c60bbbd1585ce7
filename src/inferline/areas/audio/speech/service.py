"""Text-to-speech: voice resolution (`Provider.Model.VoiceId`), SSML, and streamed encoding.

Local voices are served under the `telnyx` provider: Piper voices (`Telnyx.Piper.en_US-joe-medium`; the voice
part also matches the short name, `Telnyx.Piper.joe`). Other
providers (aws, azure, elevenlabs, …) are not configured on this server: asking for one is a 400. The OpenAI
voice names (`alloy`, `nova`, …) of `POST /v2/audio/speech` speak with the default local voice; the voice that
spoke is reported in the `x-inferline-voice` header.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from inferline.areas.audio.codec import FORMATS, AudioEncoder, wav_with_sizes
from inferline.engines.tts import TextToSpeech
from inferline.errors import BadRequest, UnsupportedParameter, model_not_installed
from inferline.ops import context as ops_context

PROVIDER = "telnyx"
PROVIDERS = ("aws", "telnyx", "azure", "elevenlabs", "minimax", "rime", "resemble", "xai", "humain", "soniox")
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin",
     "cedar", "astra"}
)  # fmt: skip
OPENAI_MODELS = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts"})  # all speak with the local voices
RATES = (8000, 16000, 22050, 24000, 44100, 48000)
FORMAT_ALIASES = {"ulaw": "mulaw", "pcmu": "mulaw", "pcma": "alaw", "mpeg": "mp3"}
MAX_SPEED, MIN_SPEED = 4.0, 0.25


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Utterance:
    text: str
    speed: float = 1.0


Part = Pause | Utterance


@dataclass(frozen=True)
class SpeechRequest:
    """A synthesis request after parsing: text or SSML, a voice reference and output settings."""

    text: str
    voice: str | None = None
    provider: str | None = None
    model: str | None = None  # set by the OpenAI endpoint only
    ssml: bool = False
    language: str | None = None
    response_format: str = "mp3"
    sample_rate: int | None = None
    speed: float = 1.0
    volume: float = 1.0
    temperature: float | None = None
    emotion: str | None = None
    unsupported: tuple[str, ...] = ()  # names of parameters given that no local voice can honour


@dataclass
class SpeechStream:
    """Encoded audio, produced while it is read. `voice_id` names the voice that spoke."""

    content_type: str
    voice_id: str
    sample_rate: int
    chunks: Iterator[bytes] = field(repr=False)

    def read_all(self) -> bytes:
        """The whole audio (a WAV with its real sizes in the header, not the streaming ones)."""
        data = b"".join(self.chunks)
        return wav_with_sizes(data) if self.content_type == FORMATS["wav"].content_type else data


@dataclass(frozen=True)
class Voice:
    """A voice in the `GET /text-to-speech/voices` sense."""

    voice_id: str
    name: str
    provider: str
    language: str
    gender: str | None
    engine: TextToSpeech


class SpeechService:
    """Resolves voices and synthesises speech with the installed local voices."""

    def __init__(
        self,
        engines: Callable[[], Sequence[TextToSpeech]],
        default_voice: str | None = None,
        allowed: Callable[[str, str | None], bool] = lambda _model, _tenant: True,
        version: Callable[[], Hashable] = lambda: None,
    ) -> None:
        """`engines` lists the local voices (the first is the default); it is called on first use and again
        whenever `version()` (cheap, called per use: e.g. the registered voices) changes, so voices registered
        or removed while the server runs are listed and usable, or gone, at once.
        `allowed(model_id, tenant_id)` says whether a tenant may use a voice's model (the models file's
        `tenants`); the voices of other tenants are listed and answered as if they did not exist."""
        self._engines = engines
        self._allowed = allowed
        self._version = version
        self._seen: Hashable = None
        self._voices: list[Voice] | None = None
        self._lock = threading.Lock()
        self._default_given = default_voice
        self.default_voice_id = default_voice

    @property
    def voices(self) -> list[Voice]:
        """The local voices now (re-listed when `version()` changed since the last listing)."""
        with self._lock:
            version = self._version()
            if self._voices is None or version != self._seen:
                self._voices = [
                    Voice(
                        f"Telnyx.{e.voice.model}.{e.voice.voice_id}",
                        e.voice.name,
                        PROVIDER,
                        e.voice.language,
                        e.voice.gender,
                        e,
                    )
                    for e in self._engines()
                ]
                self._seen = version
                first = self._voices[0].voice_id if self._voices else None
                self.default_voice_id = self._default_given or first
            return self._voices

    def voices_for(self, tenant_id: str | None) -> list[Voice]:
        """The voices `tenant_id` may use (None: all)."""
        return [v for v in self.voices if self._allowed(v.engine.model_id, tenant_id)]

    def list_voices(self, provider: str | None = None, tenant_id: str | None = None) -> list[Voice]:
        """Local voices (those `tenant_id` may use); any other provider has none configured here."""
        if provider is not None and provider.lower() not in PROVIDERS:
            raise BadRequest(f"Unknown provider {provider!r}.", pointer="/provider")
        return [v for v in self.voices_for(tenant_id) if provider is None or v.provider == provider.lower()]

    def _names(self, tenant_id: str | None = None) -> str:
        voices = self.voices_for(tenant_id)
        if not voices:
            return "none installed"
        shown = ", ".join(v.voice_id for v in voices[:3])
        more = f" and {len(voices) - 3} more (GET /v2/text-to-speech/voices)" if len(voices) > 3 else ""
        return shown + more

    def default(self, tenant_id: str | None = None) -> Voice:
        """The default voice, else (kept for other tenants) the first voice `tenant_id` may use."""
        voices = self.voices_for(tenant_id)
        for v in voices:
            if v.voice_id == self.default_voice_id:
                return v
        if voices and tenant_id is not None:
            return voices[0]
        raise model_not_installed("tts", pointer="/voice")

    def resolve(self, voice: str | None, provider: str | None = None, tenant_id: str | None = None) -> Voice:
        """`Provider.Model.VoiceId` (or `Provider.VoiceId`) to a local voice `tenant_id` may use; other
        providers are a 400."""
        if provider is not None and provider.lower() != PROVIDER:
            raise self._unconfigured(provider, "/provider", tenant_id)
        if not voice:
            return self.default(tenant_id)
        parts = voice.split(".")
        if len(parts) == 1:
            wanted_provider, model, name = PROVIDER, None, parts[0]
        else:
            wanted_provider, model, name = parts[0].lower(), ".".join(parts[1:-1]) or None, parts[-1]
        if wanted_provider not in PROVIDERS:
            raise BadRequest(
                f"Voice {voice!r} is not of the form Provider.Model.VoiceId; voices here: "
                f"{self._names(tenant_id)}.",
                pointer="/voice",
            )
        if wanted_provider != PROVIDER:
            raise self._unconfigured(wanted_provider, "/voice", tenant_id)
        for v in self.voices_for(tenant_id):
            voice_model = v.voice_id.split(".")[1]
            if (model is None or model.lower() == voice_model.lower()) and name.lower() in (
                v.voice_id.rsplit(".", 1)[-1].lower(),
                v.name.lower(),
            ):
                return v
        raise BadRequest(
            f"Voice {voice!r} is not available; voices here: {self._names(tenant_id)}.", pointer="/voice"
        )

    def resolve_openai(self, voice: str, tenant_id: str | None = None) -> Voice:
        """OpenAI voice names speak with the default voice; local voice ids are used as given."""
        if voice.lower() in OPENAI_VOICES:
            return self.default(tenant_id)
        return self.resolve(voice, tenant_id=tenant_id)

    def _unconfigured(self, provider: str, pointer: str, tenant_id: str | None = None) -> BadRequest:
        return BadRequest(
            f"The TTS provider {provider!r} is not configured on this server. It speaks with local voices "
            f"under the telnyx provider: {self._names(tenant_id)}.",
            pointer=pointer,
        )

    def speak(self, request: SpeechRequest, tenant_id: str | None = None) -> SpeechStream:
        """Resolve the voice (Telnyx or OpenAI naming) among those `tenant_id` may use, validate everything,
        return the audio stream."""
        for name in request.unsupported:
            if name in PROVIDERS:
                raise self._unconfigured(name, f"/{name}", tenant_id)
            raise UnsupportedParameter(f"{name} is not supported by the local voices.", pointer=f"/{name}")
        if request.temperature is not None:
            raise UnsupportedParameter(
                "temperature is not supported by Piper voices.", pointer="/telnyx/temperature"
            )
        if request.emotion not in (None, "neutral"):
            raise UnsupportedParameter(
                "Piper voices speak only with a neutral emotion.", pointer="/telnyx/emotion"
            )
        if request.model is None:
            voice = self.resolve(request.voice, request.provider, tenant_id)
        else:
            self._check_openai_model(request.model, tenant_id)
            voice = self.resolve_openai(request.voice or "", tenant_id)
        return self.synthesize(request, voice)

    def _check_openai_model(self, model: str, tenant_id: str | None = None) -> None:
        installed = {v.engine.model_id for v in self.voices_for(tenant_id)}
        if model not in OPENAI_MODELS and model not in installed:
            raise BadRequest(
                f"Model {model!r} is not available; use {', '.join(sorted(OPENAI_MODELS | installed))}.",
                pointer="/model",
            )

    def synthesize(self, request: SpeechRequest, voice: Voice) -> SpeechStream:
        """Validate the output settings; return a stream that synthesises and encodes sentence by sentence."""
        fmt = FORMAT_ALIASES.get(request.response_format.lower(), request.response_format.lower())
        if fmt not in FORMATS:
            raise BadRequest(
                f"Unsupported audio format {request.response_format!r}; use one of {', '.join(FORMATS)}.",
                pointer="/response_format",
            )
        rate = request.sample_rate or (8000 if fmt in ("mulaw", "alaw") else 24000)
        if rate not in RATES:
            raise BadRequest(
                f"Unsupported sampling rate {rate}; use one of {RATES}.", pointer="/sampling_rate"
            )
        if not MIN_SPEED <= request.speed <= MAX_SPEED:
            raise BadRequest(f"Speed must be between {MIN_SPEED} and {MAX_SPEED}.", pointer="/speed")
        if not 0.1 <= request.volume <= 4.0:
            raise BadRequest("Volume must be between 0.1 and 4.0.", pointer="/volume")
        if request.language:
            base = request.language.lower().replace("_", "-").split("-")[0]
            if base != voice.language.lower().split("-")[0]:
                raise UnsupportedParameter(
                    f"Voice {voice.voice_id} speaks {voice.language}, not {request.language}.",
                    pointer="/language",
                )
        parts = parse_ssml(request.text) if request.ssml else [Utterance(request.text)]
        if not any(isinstance(p, Utterance) and p.text.strip() for p in parts):
            raise BadRequest("There is no text to speak.", pointer="/text")
        encoder = AudioEncoder(fmt, voice.engine.sample_rate, rate)
        spoken = sum(len(p.text) for p in parts if isinstance(p, Utterance))
        ops_context.note("tts_characters", spoken, voice.engine.model_id)
        return SpeechStream(
            content_type=_content_type(fmt, encoder.out_rate),
            voice_id=voice.voice_id,
            sample_rate=encoder.out_rate,
            chunks=self._chunks(voice.engine, parts, request, encoder),
        )

    @staticmethod
    def _chunks(
        engine: TextToSpeech, parts: list[Part], request: SpeechRequest, encoder: AudioEncoder
    ) -> Iterator[bytes]:
        first = True  # the first text is spoken clause first, so that the first audio comes sooner
        for part in parts:
            if isinstance(part, Pause):
                pieces: Iterator[np.ndarray] = iter(
                    [np.zeros(int(part.seconds * engine.sample_rate), np.float32)]
                )
            elif part.text.strip():
                speed = max(MIN_SPEED, min(MAX_SPEED, request.speed * part.speed))
                texts = first_clause(part.text) if first else [part.text]
                first = False
                pieces = (
                    samples
                    for text in texts
                    for samples in engine.synthesize(text, speed=speed, volume=request.volume)
                )
            else:
                continue
            for samples in pieces:
                yield from encoder.feed(samples)
        if data := encoder.finish():
            yield data


CLAUSE_END = re.compile(r"[,;:.!?](?=\s+\S)")


def first_clause(text: str) -> list[str]:
    """`text` cut after its first clause (a comma, semicolon, colon or sentence end followed by more text),
    else whole: the voice speaks a sentence as one chunk, and the first clause is ready sooner."""
    text = text.strip()
    end = CLAUSE_END.search(text)
    return [text[: end.end()], text[end.end() :].lstrip()] if end else [text]


def _content_type(fmt: str, rate: int) -> str:
    if fmt == "mulaw" and rate != 8000:
        return f"audio/x-mulaw;rate={rate}"
    if fmt == "pcm":
        return f"audio/pcm;rate={rate}"
    return FORMATS[fmt].content_type


BREAK_STRENGTH = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.4, "strong": 0.75, "x-strong": 1.2}
RATE_WORDS = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.6}


def _strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _break_seconds(el: ET.Element) -> float:
    time_attr = el.get("time")
    if time_attr:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", time_attr)
        if not m:
            raise BadRequest(f"Invalid SSML break time {time_attr!r}.", pointer="/text")
        value = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        return min(value, 10.0)
    return BREAK_STRENGTH.get(el.get("strength", "medium"), 0.4)


def _rate(value: str | None) -> float:
    if not value:
        return 1.0
    if value in RATE_WORDS:
        return RATE_WORDS[value]
    m = re.fullmatch(r"\s*([+-]?\d+(?:\.\d+)?)\s*%\s*", value)
    if m:
        number = float(m.group(1))
        return max(0.25, number / 100 if not value.strip().startswith(("+", "-")) else 1 + number / 100)
    raise BadRequest(f"Invalid SSML prosody rate {value!r}.", pointer="/text")


def parse_ssml(ssml: str) -> list[Part]:
    """SSML (`<speak>` root) to utterances and pauses: `break`, `p`/`s`, `sub alias`, `prosody rate`;
    other elements (`say-as`, `emphasis`, `lang`, …) contribute their text."""
    try:
        root = ET.fromstring(ssml.strip())
    except ET.ParseError as exc:
        raise BadRequest(f"The SSML is not well-formed XML: {exc}.", pointer="/text") from exc
    if _strip_ns(root.tag) != "speak":
        raise BadRequest("SSML must have a <speak> root element.", pointer="/text")
    parts: list[Part] = []

    def add(text: str | None, speed: float) -> None:
        if text and text.strip():
            parts.append(Utterance(" ".join(text.split()), speed))

    def walk(el: ET.Element, speed: float) -> None:
        tag = _strip_ns(el.tag)
        if tag == "break":
            parts.append(Pause(_break_seconds(el)))
            return
        if tag == "sub":
            add(el.get("alias") or el.text, speed)
            return
        if tag == "prosody":
            speed = speed * _rate(el.get("rate"))
        add(el.text, speed)
        for child in el:
            walk(child, speed)
            add(child.tail, speed)
        if tag in ("p", "s"):
            parts.append(Pause(BREAK_STRENGTH["medium"] if tag == "p" else BREAK_STRENGTH["weak"]))

    walk(root, 1.0)
    return parts
