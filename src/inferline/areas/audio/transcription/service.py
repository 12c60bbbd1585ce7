"""Speech-to-text: decode any audio, run Whisper (per channel if asked), record usage, render subtitles.

Model rule (documented in the README): an installed speech-to-text model is used by its id. The Whisper
names of the Telnyx and OpenAI APIs (`distil-whisper/distil-large-v2`, `openai/whisper-large-v3-turbo`,
any other `openai/whisper-*` or `distil-whisper/*`, and `whisper-1`) run the profile's default installed
Whisper model. Any other model (`deepgram/*`, `nvidia/parakeet-v3`, …) is a 400. The model that ran is
always reported (`x-inferline-model` header and `model` in verbose_json).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from inferline.areas.audio import codec as audio_codec
from inferline.areas.models.service import ModelService
from inferline.catalog import ModelEntry
from inferline.engines.diarization import MAX_SPEAKERS, Diarizer, SpeakerTurn, speaker_at
from inferline.engines.stt import SAMPLE_RATE, Segment, SpeechToText, Word
from inferline.errors import BadRequest, PayloadTooLarge, RateLimited, UnsupportedParameter, ValidationFailed
from inferline.net.safe_http import SafeHttpClient
from inferline.ops import context as ops_context
from inferline.privacy import redaction, tenant_settings
from inferline.stores.audio_tables import SttUsageRecord
from inferline.stores.db import Database

MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_IN_FLIGHT = 8  # transcriptions decoding, running or waiting for the engine; more is a 429
RETRY_AFTER_SECONDS = 5
WHISPER_ALIASES = ("whisper-1", "distil-whisper/distil-large-v2", "openai/whisper-large-v3-turbo")
WHISPER_FAMILIES = ("openai/whisper-", "distil-whisper/")
# Deepgram-style `model_config` keys and what Whisper can do with them.
NATIVE_TRUE = frozenset({"smart_format", "punctuate"})  # Whisper output is always punctuated and formatted


@dataclass(frozen=True)
class TranscriptionOptions:
    """What a caller may ask of a transcription, already parsed and typed."""

    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False
    model_config: dict[str, object] = field(default_factory=dict)
    translate: bool = False  # into English (`/audio/translations`); needs a multilingual model
    redact: bool | None = None  # personal data replaced (inferline extension); None: the tenant's default


@dataclass(frozen=True)
class Diarization:
    """`model_config[diarize]=true` and its optional speaker-count bounds."""

    min_speakers: int | None = None
    max_speakers: int | None = None


@dataclass(frozen=True)
class ChannelSegment:
    """A segment and the zero-based channel it was heard on (None when the audio was mixed down); when
    diarized, the speakers heard in it and each word's (speaker, confidence)."""

    channel: int | None
    segment: Segment
    speakers: tuple[int, ...] | None = None
    word_speakers: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class TranscriptionResult:
    """A finished transcription. `text` is the transcript; multichannel text labels each line's channel."""

    model: str
    requested_model: str
    language: str
    duration: float
    channels: int
    segments: list[ChannelSegment]
    usage_id: str
    redacted: bool = False  # personal data was replaced (asked, or the tenant's default)

    @property
    def multichannel(self) -> bool:
        return self.channels > 1

    @property
    def text(self) -> str:
        if not self.multichannel:
            return "".join(s.segment.text for s in self.segments).strip()
        return "\n".join(f"[channel {s.channel}] {s.segment.text.strip()}" for s in self.segments)


class TranscriptionService:
    """Transcribes bytes or URLs for a tenant and records one usage row per transcription."""

    def __init__(
        self,
        db: Database,
        models: ModelService,
        engine_factory: Callable[[ModelEntry], SpeechToText],
        fetcher: SafeHttpClient,
        max_bytes: int = MAX_FILE_BYTES,
        diarizer: Diarizer | None = None,
    ) -> None:
        self.db = db
        self.diarizer = diarizer
        self.models = models
        self.engine_factory = engine_factory
        self.fetcher = fetcher
        self.max_bytes = max_bytes
        self.max_in_flight = MAX_IN_FLIGHT
        self._engines: dict[str, SpeechToText] = {}
        self._in_flight = 0
        self._count_lock = threading.Lock()

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """Admission control: beyond `max_in_flight` concurrent transcriptions the caller gets a 429."""
        with self._count_lock:
            if self._in_flight >= self.max_in_flight:
                raise RateLimited(
                    f"{self._in_flight} transcriptions are already in progress; retry shortly.",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            self._in_flight += 1
        try:
            yield
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def engine(self, entry: ModelEntry) -> SpeechToText:
        """The engine for an installed model (built once; it loads its weights on first use)."""
        if entry.id not in self._engines:
            self._engines[entry.id] = self.engine_factory(entry)
        return self._engines[entry.id]

    def resolve_model(self, name: str | None, tenant_id: str | None = None) -> ModelEntry:
        """Apply the model rule of this module's docstring, among the models `tenant_id` may use (a model
        the models file keeps for other tenants is answered as an unknown one)."""
        installed = self.models.installed("stt", tenant_id)
        wanted = self.models.canonical(name, "stt") if name else name  # a registered or configured alias
        for entry in installed:
            if entry.id == wanted:
                return entry
        if not name or name in WHISPER_ALIASES or name.startswith(WHISPER_FAMILIES):
            return self.models.default("stt", tenant_id)
        names = ", ".join(e.id for e in installed) or "none"
        raise UnsupportedParameter(
            f"Model {name!r} is not available on this server, which runs Whisper. Use an installed model "
            f"({names}) or a Whisper name ({', '.join(WHISPER_ALIASES)}), which runs the default.",
            pointer="/model",
        )

    def _language(self, engine: SpeechToText, language: str | None) -> str | None:
        if not language:
            return None
        base = language.strip().lower().replace("_", "-").split("-")[0]
        if base not in engine.languages:
            raise BadRequest(
                f"Language {language!r} is not supported by {engine.model_id}.", pointer="/language"
            )
        return base

    def check_config(self, config: dict[str, object]) -> tuple[bool, Diarization | None]:
        """Validate Deepgram-style `model_config`; only what Whisper (and the diarizer) can honour is
        accepted. Returns (multichannel, diarization or None)."""
        multichannel = diarize = False
        bounds: dict[str, int] = {}
        for key, value in config.items():
            pointer = f"/model_config/{key}"
            if key == "multichannel":
                multichannel = _flag(value, pointer)
            elif key == "diarize":
                diarize = _flag(value, pointer)
            elif key in ("min_speakers", "max_speakers"):
                bounds[key] = _speaker_count(value, pointer)
            elif key in NATIVE_TRUE:
                if not _flag(value, pointer):
                    raise UnsupportedParameter(
                        f"{key}=false cannot be honoured: Whisper always punctuates and formats.",
                        pointer=pointer,
                    )
            elif key != "language":
                raise UnsupportedParameter(
                    f"model_config.{key} is not supported by the Whisper engine (supported: multichannel, "
                    "diarize, min_speakers, max_speakers, smart_format, punctuate, language).",
                    pointer=pointer,
                )
        if bounds and not diarize:
            key = next(iter(bounds))
            raise BadRequest(
                f"model_config.{key} needs model_config.diarize=true.", pointer=f"/model_config/{key}"
            )
        if bounds.get("min_speakers", 1) > bounds.get("max_speakers", MAX_SPEAKERS):
            raise ValidationFailed(
                "min_speakers must not exceed max_speakers.", pointer="/model_config/min_speakers"
            )
        if diarize and self.diarizer is None:
            raise UnsupportedParameter(
                "Diarization needs the `resemblyzer` package (pip install 'inferline[audio]').",
                pointer="/model_config/diarize",
            )
        return multichannel, Diarization(**bounds) if diarize else None

    def transcribe(
        self, tenant_id: str, data: bytes, options: TranscriptionOptions, *, source: str = "api"
    ) -> TranscriptionResult:
        """Decode `data`, transcribe it and record the usage."""
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"The file is larger than {self.max_bytes} bytes.", pointer="/file")
        entry = self.resolve_model(options.model, tenant_id)
        engine = self.engine(entry)
        language = self._language(
            engine, options.language or _str_or_none(options.model_config.get("language"))
        )
        multichannel, diarization = self.check_config(options.model_config)
        if options.translate and engine.languages == frozenset({"en"}):
            raise UnsupportedParameter(
                f"{engine.model_id} is English-only; translation needs a multilingual Whisper model "
                "(e.g. openai/whisper-base).",
                pointer="/model",
            )
        started = time.monotonic()
        segments: list[ChannelSegment] = []
        detected = language or "en"
        with self._slot():
            audio = audio_codec.decode(data, sample_rate=SAMPLE_RATE, split_channels=multichannel)
            for index, samples in enumerate(audio.channels):
                transcript = engine.transcribe(
                    samples,
                    language=language,
                    prompt=options.prompt,
                    temperature=options.temperature,
                    word_timestamps=options.word_timestamps or diarization is not None,
                    skip_silence=len(audio.channels) > 1,
                    translate=options.translate,
                )
                detected = transcript.language or detected
                channel = index if len(audio.channels) > 1 else None
                if diarization is None or self.diarizer is None:
                    segments += [ChannelSegment(channel, s) for s in transcript.segments]
                    continue
                turns = self.diarizer.diarize(
                    samples, min_speakers=diarization.min_speakers, max_speakers=diarization.max_speakers
                )
                segments += [p for s in transcript.segments for p in split_by_speaker(channel, s, turns)]
        segments.sort(key=lambda s: (s.segment.start, s.channel or 0))
        if diarization is not None:  # pieces of cut segments: number them again
            segments = [replace(s, segment=replace(s.segment, id=n)) for n, s in enumerate(segments)]
        redacted = tenant_settings.redacts(self.db, tenant_id, options.redact)
        if redacted:
            segments = [redact_segment(s) for s in segments]
        processing_ms = int((time.monotonic() - started) * 1000)
        usage_id = self._record(
            tenant_id,
            entry.id,
            options.model or entry.id,
            source,
            detected,
            audio.duration,
            len(audio.channels),
            processing_ms,
        )
        return TranscriptionResult(
            model=entry.id,
            requested_model=options.model or entry.id,
            language=detected,
            duration=round(audio.duration, 3),
            channels=len(audio.channels),
            segments=segments,
            usage_id=usage_id,
            redacted=redacted,
        )

    def transcribe_url(self, tenant_id: str, url: str, options: TranscriptionOptions) -> TranscriptionResult:
        """Fetch `url` (public addresses only, ≤ 100 MB) and transcribe it."""
        self.resolve_model(options.model, tenant_id)  # fail fast on a bad model before fetching
        data, _ = self.fetcher.get(url, pointer="/file_url")
        return self.transcribe(tenant_id, data, options)

    def transcribe_bytes(
        self, tenant_id: str, data: bytes, filename: str, *, source: str = "internal"
    ) -> TranscriptionResult:
        """For other areas (bucket ingest, summarize): transcribe an audio/video file with the default model.

        `filename` is informational (FFmpeg probes the bytes). Usage is recorded under `source`.
        """
        del filename
        return self.transcribe(tenant_id, data, TranscriptionOptions(), source=source)

    def transcribe_text(self, tenant_id: str, data: bytes, filename: str, *, source: str) -> str:
        """The text of `transcribe_bytes` (the `MediaTranscriber` other areas use)."""
        return self.transcribe_bytes(tenant_id, data, filename, source=source).text

    def _record(
        self,
        tenant_id: str,
        model: str,
        requested: str,
        source: str,
        language: str,
        seconds: float,
        channels: int,
        processing_ms: int,
    ) -> str:
        with self.db.session() as s:
            row = SttUsageRecord(
                tenant_id=tenant_id,
                model=model,
                requested_model=requested[:200],
                source=source,
                language=language,
                audio_seconds=round(seconds, 3),
                channels=channels,
                billed_seconds=round(seconds * channels, 3),
                processing_ms=processing_ms,
            )
            s.add(row)
            s.flush()
            usage_id = row.id
        ops_context.metered(self.db, tenant_id, "transcription_seconds", round(seconds * channels, 3), model)
        return usage_id


def split_by_speaker(channel: int | None, segment: Segment, turns: list[SpeakerTurn]) -> list[ChannelSegment]:
    """Each word gets the speaker whose turn it overlaps most; the segment is cut where the speaker changes
    (one segment per speaker turn, as diarizing services return them). A cut segment's pieces take their
    text and times from their words and carry no tokens."""
    labels: list[tuple[int, float]] = []
    for w in segment.words:
        turn = speaker_at(turns, w.start, w.end)
        labels.append((turn.speaker, turn.confidence) if turn else (0, 0.0))
    if not labels:
        turn = speaker_at(turns, segment.start, segment.end)
        speakers = (turn.speaker,) if turn else ()
        return [ChannelSegment(channel, segment, speakers)]
    runs: list[list[int]] = [[0]]
    for i in range(1, len(labels)):
        if labels[i][0] == labels[runs[-1][0]][0]:
            runs[-1].append(i)
        else:
            runs.append([i])
    if len(runs) == 1:
        return [ChannelSegment(channel, segment, (labels[0][0],), tuple(labels))]
    pieces = []
    for n, run in enumerate(runs):
        words: tuple[Word, ...] = tuple(segment.words[i] for i in run)
        piece = replace(
            segment,
            id=segment.id,
            start=round(words[0].start, 3) if n else segment.start,
            end=round(words[-1].end, 3) if n + 1 < len(runs) else segment.end,
            text="".join(w.word for w in words),
            tokens=(),
            words=words,
        )
        pieces.append(ChannelSegment(channel, piece, (labels[run[0]][0],), tuple(labels[i] for i in run)))
    return pieces


def redact_segment(item: ChannelSegment) -> ChannelSegment:
    """The segment with personal data replaced (`privacy.redaction`) in its text and words; the words
    of one match become one `[KIND]` word spanning their times (and the first one's speaker). A changed
    segment drops its tokens, which would spell the original. A match split across segments is not seen."""
    segment = item.segment
    text = redaction.redact(segment.text).text
    if not segment.words:
        return item if text == segment.text else replace(item, segment=replace(segment, text=text, tokens=()))
    kept = redaction.redact_words([w.word for w in segment.words])
    if text == segment.text and len(kept) == len(segment.words):
        return item
    words = tuple(
        replace(segment.words[first], word=word, end=segment.words[last].end) for word, first, last in kept
    )
    speakers = item.word_speakers
    if speakers:
        speakers = tuple(speakers[first] for _, first, _ in kept if first < len(speakers))
    return replace(item, segment=replace(segment, text=text, tokens=(), words=words), word_speakers=speakers)


def _speaker_count(value: object, pointer: str) -> int:
    try:
        count = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    except ValueError:
        count = None
    if count is None or not 1 <= count <= MAX_SPEAKERS:
        raise ValidationFailed(
            f"Expected a whole number of speakers from 1 to {MAX_SPEAKERS}.", pointer=pointer
        )
    return count


def _flag(value: object, pointer: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequest("Expected a boolean (true or false).", pointer=pointer)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _timestamp(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def to_srt(result: TranscriptionResult) -> str:
    """SubRip cues, numbered from 1; multichannel cues start with `[channel N]`."""
    cues = []
    for n, item in enumerate(result.segments, start=1):
        label = f"[channel {item.channel}] " if item.channel is not None else ""
        start, end = _timestamp(item.segment.start, ","), _timestamp(item.segment.end, ",")
        cues.append(f"{n}\n{start} --> {end}\n{label}{item.segment.text.strip()}\n")
    return "\n".join(cues)


def to_vtt(result: TranscriptionResult) -> str:
    """WebVTT cues; multichannel cues carry the channel as a voice span (`<v channel 0>`)."""
    cues = ["WEBVTT\n"]
    for item in result.segments:
        voice = f"<v channel {item.channel}>" if item.channel is not None else ""
        start, end = _timestamp(item.segment.start, "."), _timestamp(item.segment.end, ".")
        cues.append(f"{start} --> {end}\n{voice}{item.segment.text.strip()}\n")
    return "\n".join(cues)
