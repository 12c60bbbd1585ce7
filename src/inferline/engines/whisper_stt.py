"""faster-whisper (CTranslate2) speech-to-text, loaded from a local model folder on first use."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from inferline.engines.cpu import SHARES, build_at_niceness, lowers_priority
from inferline.engines.stt import Segment, Transcript, Word
from inferline.logs import logged_load


class WhisperEngine:
    """One Whisper model, loaded on first use. Calls are serialised (CTranslate2 uses all threads)."""

    def __init__(
        self,
        model_id: str,
        model_dir: Path,
        *,
        english_only: bool = False,
        compute_type: str | None = None,
        cpu_threads: int = 0,
        beam_size: int = 1,
        device: str = "cpu",
        niceness: int = 0,
    ) -> None:
        self.model_id = model_id
        self.model_dir = model_dir
        self.english_only = english_only
        self.compute_type = compute_type or ("float16" if device == "cuda" else "int8")  # CTranslate2 types
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self.device = device  # "cpu", or "cuda" where CTranslate2 sees a CUDA device
        self.niceness = niceness  # added to the niceness of CTranslate2's threads (`build_at_niceness`)
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def languages(self) -> frozenset[str]:
        if self.english_only:
            return frozenset({"en"})
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        return frozenset(_LANGUAGE_CODES)

    @logged_load("stt", "_model")
    def _load(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = build_at_niceness(
                lambda: WhisperModel(
                    str(self.model_dir),
                    device=self.device,
                    compute_type=self.compute_type,
                    cpu_threads=self.cpu_threads,
                    local_files_only=True,
                ),
                self.niceness,
            )
        return self._model

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
        word_timestamps: bool = False,
        skip_silence: bool = False,
        translate: bool = False,
    ) -> Transcript:
        with self._lock:
            model = self._load()
            with SHARES.background():  # features, VAD and language detection
                segments, info = model.transcribe(
                    samples,
                    language=language or ("en" if self.english_only else None),
                    initial_prompt=prompt,
                    temperature=temperature,
                    beam_size=self.beam_size,
                    word_timestamps=word_timestamps,
                    condition_on_previous_text=False,
                    vad_filter=skip_silence,
                    task="translate" if translate else "transcribe",
                )
            out = []
            niced = lowers_priority(self.niceness)  # CTranslate2's threads run at a lowered priority
            while True:
                # Each window yields to chat decoding, like embedding batches; at a lowered priority it takes
                # no core from decoding, so a generation starting beside it keeps all its threads. On a GPU
                # the windows take no core to yield.
                with SHARES.background(contends=not niced) if self.device == "cpu" else nullcontext():
                    segment = next(segments, None)
                if segment is None:
                    break
                out.append(_segment(len(out), segment))
        return Transcript(language=info.language, duration=float(info.duration), segments=out)


def _segment(n: int, s: Any) -> Segment:
    words = tuple(Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in s.words or ())
    return Segment(
        id=n,
        start=round(float(s.start), 3),
        end=round(float(s.end), 3),
        text=s.text,
        seek=int(s.seek),
        tokens=tuple(int(t) for t in s.tokens),
        temperature=float(s.temperature or 0.0),
        avg_logprob=float(s.avg_logprob),
        compression_ratio=float(s.compression_ratio),
        no_speech_prob=float(s.no_speech_prob),
        words=words,
    )
