"""Conversations between different synthetic voices, with the reference of who spoke when: the installed
Piper voice (rhasspy/piper-en_US-joe-medium) and espeak-ng voices (Debian's `espeak-ng`, which
`make models-test` installs). Used by the diarization tests and bench/bench_diarization.py."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

import numpy as np

from inferline.areas.audio import codec as audio_codec

RATE = 16_000
PAUSE_SECONDS = 0.5
VOICES = ("piper", "espeak:en-us+f3", "espeak:en-gb-scotland+m7")  # three audibly different speakers


@dataclass(frozen=True)
class Turn:
    speaker: int
    start: float
    end: float
    text: str


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


@cache
def say(voice: str, text: str) -> np.ndarray:
    """`text` spoken by `voice` as 16 kHz mono float32, leading and trailing silence trimmed."""
    if voice == "piper":
        from tests.audio_samples import speech, wav

        data = wav(speech(text))
    else:
        name = voice.split(":", 1)[1]
        data = subprocess.run(
            ["espeak-ng", "-v", name, "-s", "165", "--stdout", text], check=True, capture_output=True
        ).stdout
    samples = audio_codec.decode(data, sample_rate=RATE).channels[0]
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def conversation(
    lines: list[tuple[int, str]], voices: tuple[str, ...] = VOICES
) -> tuple[np.ndarray, list[Turn]]:
    """Mono samples of the lines spoken in order (speaker index into `voices`) and the reference turns."""
    pause = np.zeros(int(PAUSE_SECONDS * RATE), dtype=np.float32)
    parts: list[np.ndarray] = [pause]
    turns: list[Turn] = []
    at = len(pause)
    for speaker, text in lines:
        samples = say(voices[speaker], text)
        turns.append(Turn(speaker, at / RATE, (at + len(samples)) / RATE, text))
        parts += [samples, pause]
        at += len(samples) + len(pause)
    return np.concatenate(parts), turns


def channels(lines: list[tuple[int, str]], voices: tuple[str, ...] = VOICES) -> list[np.ndarray]:
    """The same conversation with each speaker on a channel of its own (silence elsewhere)."""
    mono, turns = conversation(lines, voices)
    out = [np.zeros_like(mono) for _ in range(max(t.speaker for t in turns) + 1)]
    for t in turns:
        a, b = int(t.start * RATE), int(t.end * RATE)
        out[t.speaker][a:b] = mono[a:b]
    return out


def der(reference: list[Turn], hypothesis: list[tuple[float, float, int]], collar: float = 0.25) -> float:
    """Diarization error rate (see `der_parts`)."""
    return sum(der_parts(reference, hypothesis, collar))


def der_parts(
    reference: list[Turn], hypothesis: list[tuple[float, float, int]], collar: float = 0.25
) -> tuple[float, float, float]:
    """(missed, false alarm, confused speech), each / reference speech, in 10 ms frames (the sum is the DER),
    hypothesis speakers mapped one-to-one onto reference speakers to minimise the error, frames within
    `collar` seconds of a reference boundary not scored (the usual forgiveness for boundary placement)."""
    from scipy.optimize import linear_sum_assignment

    step = 0.01
    length = int(max([t.end for t in reference] + [h[1] for h in hypothesis]) / step) + 1
    ref = np.full(length, -1)
    hyp = np.full(length, -1)
    scored = np.ones(length, dtype=bool)
    for t in reference:
        ref[int(t.start / step) : int(t.end / step)] = t.speaker
        for edge in (t.start, t.end):
            scored[max(0, int((edge - collar) / step)) : int((edge + collar) / step)] = False
    for start, end, speaker in hypothesis:
        hyp[int(start / step) : int(end / step)] = speaker
    ref, hyp = ref[scored], hyp[scored]
    speech = int((ref >= 0).sum())
    n_ref, n_hyp = int(ref.max()) + 1, max(int(hyp.max()) + 1, 1)
    overlap = np.zeros((n_ref, n_hyp))
    for r in range(n_ref):
        for h in range(n_hyp):
            overlap[r, h] = np.sum((ref == r) & (hyp == h))
    rows, cols = linear_sum_assignment(-overlap)
    correct = overlap[rows, cols].sum()
    missed = np.sum((ref >= 0) & (hyp < 0))
    false_alarm = np.sum((ref < 0) & (hyp >= 0))
    confused = np.sum((ref >= 0) & (hyp >= 0)) - correct
    total = max(speech, 1)
    return float(missed / total), float(false_alarm / total), float(confused / total)


TWO_SPEAKERS = [
    (0, "Thank you for calling Acme support, this is Joe. How can I help you today?"),
    (1, "Hi Joe, my internet has been dropping every evening since Monday."),
    (0, "I am sorry to hear that. Can you tell me the account number please?"),
    (1, "Sure, it is four five six seven eight nine."),
    (0, "Thanks. I can see an outage in your area, it should be fixed by tonight."),
    (1, "Great, thank you very much for your help."),
]

THREE_SPEAKERS = [
    (0, "Good morning everyone, let us start the weekly planning meeting."),
    (1, "Morning. The release is on track, we finished the payment changes yesterday."),
    (2, "I still have two open bugs in the mobile app, both about notifications."),
    (0, "Can you fix them before Thursday, or do you need help from the web team?"),
    (2, "I think I can finish them by Wednesday evening."),
    (1, "I can review the fixes as soon as they are ready."),
    (0, "Perfect. Then we ship on Friday morning as planned."),
]
