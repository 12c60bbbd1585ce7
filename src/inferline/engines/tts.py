"""Text-to-speech engines: text in, mono float32 samples out, one chunk per sentence."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

LOCAL_SYNTH_LOCK = threading.Lock()
"""Held by every in-process synthesiser: Piper phonemises with eSpeak NG's global state."""


@dataclass(frozen=True)
class VoiceInfo:
    """A voice an engine can speak with; `model` is the middle part of `Telnyx.<model>.<voice_id>`."""

    voice_id: str
    name: str
    language: str
    gender: str | None = None
    model: str = "Piper"


class TextToSpeech(Protocol):
    """A synthesiser for one voice model."""

    model_id: str
    voice: VoiceInfo

    @property
    def sample_rate(self) -> int:
        """Rate of the samples `synthesize` yields."""
        ...

    def synthesize(self, text: str, *, speed: float = 1.0, volume: float = 1.0) -> Iterator[np.ndarray]:
        """Yield mono float32 samples in [-1, 1], one chunk per sentence, as soon as each is ready."""
        ...
