"""Speech-to-text engines: 16 kHz mono float32 samples in, timed segments out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000
"""Every STT engine takes mono float32 samples at this rate."""


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """One recognised stretch of speech, times in seconds from the start of the audio."""

    id: int
    start: float
    end: float
    text: str
    seek: int = 0
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """What an engine heard in one mono signal."""

    language: str
    duration: float
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()


class SpeechToText(Protocol):
    """A loaded (or lazily loading) speech recognition model."""

    model_id: str

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
        """Recognise speech in mono float32 samples at `SAMPLE_RATE` (into English text when `translate`).

        `skip_silence` runs voice-activity detection first (long silences, e.g. one side of a call),
        which keeps timestamps exact and stops the model inventing words in silence.
        """
        ...

    @property
    def languages(self) -> frozenset[str]:
        """Language codes (ISO 639-1) the model accepts."""
        ...
