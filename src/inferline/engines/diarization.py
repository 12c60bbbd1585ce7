"""Speaker diarization engines: 16 kHz mono float32 samples in, speaker turns out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

MAX_SPEAKERS = 8
"""The most speakers a caller may ask for (`model_config[max_speakers]`)."""


@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of speech by one speaker; speakers are numbered from 0 in order of first appearance."""

    start: float
    end: float
    speaker: int
    confidence: float  # 0..1: how clearly this stretch belongs to its speaker rather than another


class Diarizer(Protocol):
    """Who spoke when, in one mono signal."""

    def diarize(
        self, samples: np.ndarray, *, min_speakers: int | None = None, max_speakers: int | None = None
    ) -> list[SpeakerTurn]:
        """Speaker turns in time order over the speech in `samples` (silence belongs to no turn)."""
        ...


def speaker_at(turns: list[SpeakerTurn], start: float, end: float) -> SpeakerTurn | None:
    """The turn that overlaps [start, end] most, else the nearest one (None when there are no turns)."""
    if not turns:
        return None
    best = max(turns, key=lambda t: min(end, t.end) - max(start, t.start))
    if min(end, best.end) - max(start, best.start) > 0:
        return best
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(middle - t.start), abs(middle - t.end)))
