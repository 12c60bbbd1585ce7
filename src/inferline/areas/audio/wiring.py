"""Builds the audio area: transcription (faster-whisper), speech (Piper) and STT reports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from inferline import catalog
from inferline.areas.audio.reports.service import JOB_KIND as STT_REPORT_KIND
from inferline.areas.audio.reports.service import SttReportService
from inferline.areas.audio.speech.service import SpeechService
from inferline.areas.audio.speech.stored import StoredSpeechService
from inferline.areas.audio.transcription.async_jobs import JOB_KIND as ASYNC_KIND
from inferline.areas.audio.transcription.async_jobs import AsyncTranscriptionService, Webhooks
from inferline.areas.audio.transcription.protocol import render_async
from inferline.areas.audio.transcription.service import MAX_FILE_BYTES, TranscriptionService
from inferline.areas.models.service import ModelService
from inferline.config import Settings
from inferline.engines.diarization import Diarizer
from inferline.jobs import JobQueue, JobRegistry
from inferline.net.safe_http import SafeHttpClient
from inferline.stores.db import Database


@dataclass(frozen=True)
class AudioArea:
    transcription: TranscriptionService
    speech: SpeechService
    stored_speech: StoredSpeechService
    stt_reports: SttReportService
    async_transcriptions: AsyncTranscriptionService


def build_audio(
    settings: Settings,
    db: Database,
    jobs: JobQueue,
    registry: JobRegistry,
    models: ModelService,
    webhooks: Webhooks,
) -> AudioArea:
    """The audio services; STT report CSVs and asynchronous transcriptions are jobs registered here, the
    latter announced through the signed `webhooks`."""
    stt_reports = SttReportService(db, jobs)
    registry.register(STT_REPORT_KIND, stt_reports.generate, on_failure=stt_reports.mark_failed)
    transcription = build_transcription(settings, db, models)
    async_transcriptions = AsyncTranscriptionService(db, jobs, transcription, webhooks, render_async)
    registry.register(ASYNC_KIND, async_transcriptions.run, on_failure=async_transcriptions.on_failure)
    stored_speech = StoredSpeechService(db, settings.tts_audio_ttl_seconds)  # `output_type: audio_id`
    speech = build_speech(models, settings.tts_variation)
    return AudioArea(transcription, speech, stored_speech, stt_reports, async_transcriptions)


def build_transcription(settings: Settings, db: Database, models: ModelService) -> TranscriptionService:
    """Whisper on faster-whisper for every installed (packaged or registered) speech-to-text model, with its
    per-model settings (threads, device); each loads on first use."""
    from inferline.engines.whisper_stt import WhisperEngine

    def engine(entry: catalog.ModelEntry) -> WhisperEngine:
        model_settings = models.settings(entry.id)
        return WhisperEngine(
            entry.id,
            catalog.model_dir(models.models_dir, entry),
            english_only=entry.languages == ("en",),
            cpu_threads=model_settings.threads or os.cpu_count() or 2,
            device=model_settings.device or "cpu",
            niceness=settings.transcription_niceness,
        )

    fetcher = SafeHttpClient(settings.fetch_allow, max_bytes=MAX_FILE_BYTES)  # `file_url` downloads
    return TranscriptionService(db, models, engine, fetcher, diarizer=build_diarizer())


def build_diarizer() -> Diarizer | None:
    """Silero VAD + the Resemblyzer speaker encoder + clustering, where the `resemblyzer` package is
    installed (the `diarize` extra); without it `model_config[diarize]` is a 400 naming the package."""
    from inferline.engines import resemblyzer_diarizer

    if not resemblyzer_diarizer.available():
        return None
    return resemblyzer_diarizer.ResemblyzerDiarizer(threads=max(1, min(4, os.cpu_count() or 1)))


def build_speech(models: ModelService, variation: float = 1.0) -> SpeechService:
    """Piper for every installed (packaged or registered) text-to-speech voice, listed on first use and again
    when the registered voices change (the model service re-reads the registry at most every second, at once
    after a change made in this process); a voice's engine, loaded or not, is kept while it stays listed.
    `variation` scales each voice's sampling noise (`INFERLINE_TTS_VARIATION`)."""
    from inferline.engines.piper_tts import PiperEngine
    from inferline.engines.tts import TextToSpeech, VoiceInfo

    held: dict[tuple[str, Path, bool], PiperEngine] = {}

    def engines() -> list[TextToSpeech]:
        voices: list[PiperEngine] = []
        kept: dict[tuple[str, Path, bool], PiperEngine] = {}
        for entry in models.installed("tts"):
            voice_file = catalog.model_dir(models.models_dir, entry) / entry.main_file
            engine = held.get((entry.id, voice_file, False)) or PiperEngine(
                entry.id, voice_file, variation=variation
            )
            renamed = any(v.voice.voice_id == engine.voice.voice_id for v in voices)
            if renamed:  # a registered copy of a voice already listed: named after its model id instead
                name = entry.id.rsplit("/", 1)[-1]
                engine = held.get((entry.id, voice_file, True)) or PiperEngine(
                    entry.id, voice_file, VoiceInfo(name, name, engine.voice.language), variation
                )
            kept[(entry.id, voice_file, renamed)] = engine
            voices.append(engine)
        held.clear()
        held.update(kept)
        return list(voices)

    def version() -> tuple[tuple[str, str, object], ...]:
        return tuple((r.id, r.slug, r.created_at) for r in models.registered() if r.kind == "tts")

    return SpeechService(engines, allowed=models.allowed, version=version)
