"""Diarization: the error rate of `model_config[diarize]=true` on mono conversations between different
synthetic voices (Piper joe + espeak-ng voices), next to the baseline of one speaker per channel (the same
conversation with each voice on its own channel, `multichannel=true`); and what diarizing costs in speed.

DER is scored on the transcript's words (a diarized word's `speaker`, a multichannel word's `channel`) against
the reference turns, with a 0.25 s collar, hypothesis speakers mapped onto the reference speakers one-to-one.
Whisper's word timing (speech between words counts as missed) weighs in both columns alike; the "wrong
speaker" row is the speaker attribution alone.
Under BENCH_SMOKE=1 only the first three turns of each conversation are used.
"""

from __future__ import annotations

import time

import httpx

from bench.common import BENCH_KEY, Row, live_server, pick
from tests import speakers
from tests.audio_samples import wav

MODEL = "openai/whisper-tiny.en"


def _transcribe(
    http: httpx.Client, data: bytes, config: dict[str, str], key: str = "segments"
) -> tuple[list, float]:
    """The response's segments (or words) and the seconds the request took."""
    started = time.perf_counter()
    r = http.post(
        "/ai/audio/transcriptions",
        data={"model": MODEL, "response_format": "verbose_json", **config},
        files={"file": ("call.wav", data)},
    )
    return r.raise_for_status().json()[key], time.perf_counter() - started


def run() -> list[Row]:
    rows: list[Row] = []
    with (
        live_server() as (url, _),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=600) as http,
    ):
        for label, lines in (("2 speakers", speakers.TWO_SPEAKERS), ("3 speakers", speakers.THREE_SPEAKERS)):
            lines = pick(lines, lines[:3])
            mono, turns = speakers.conversation(lines)
            seconds = len(mono) / speakers.RATE
            mono_wav = wav(mono, rate=speakers.RATE)
            split_wav = wav(speakers.channels(lines), rate=speakers.RATE)
            _transcribe(http, mono_wav, {"model_config[diarize]": "true"})  # loads the models
            plain, plain_s = _transcribe(http, mono_wav, {})
            diarized, diarized_s = _transcribe(http, mono_wav, {"model_config[diarize]": "true"})
            multichannel = {"model_config[multichannel]": "true", "timestamp_granularities[]": "word"}
            per_channel, _ = _transcribe(http, split_wav, multichannel, key="words")
            words = [(w["start"], w["end"], w["speaker"]) for s in diarized for w in s["words"]]
            der = speakers.der_parts(turns, words)
            base = speakers.der_parts(turns, [(w["start"], w["end"], w["channel"]) for w in per_channel])
            del plain
            n = len({t.speaker for t in turns})
            rows += [
                Row(f"Diarization error rate, {label} mono ({seconds:.0f} s)", sum(der) * 100,
                    sum(base) * 100, "% DER", f"one speaker per channel ({n}-channel file)",
                    higher_is_better=False),
                Row(f"  of which speech on the wrong speaker, {label}", der[2] * 100, base[2] * 100,
                    "% DER", "one speaker per channel", higher_is_better=False),
                Row(f"Diarized transcription speed, {label}", seconds / diarized_s, seconds / plain_s,
                    "x realtime", f"the same transcription without diarize ({MODEL})"),
            ]  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
