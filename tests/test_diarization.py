"""Speaker diarization (`model_config[diarize]=true`) on conversations between different synthetic voices,
through the telnyx SDK in strict mode; bad `model_config` through raw HTTP."""

from __future__ import annotations

import itertools

import httpx
import numpy as np
import pytest
import telnyx

from tests import speakers
from tests.audio_samples import wav
from tests.test_foundation import assert_envelope

PATH = "/ai/audio/transcriptions"
TOLERANCE = 0.8  # seconds between a detected change of speaker and the reference boundary


@pytest.fixture(scope="module")
def two_speakers() -> tuple[bytes, list[speakers.Turn]]:
    assert speakers.espeak_available(), "espeak-ng is needed (make models-test installs it)"
    mono, turns = speakers.conversation(speakers.TWO_SPEAKERS)
    return wav(mono, rate=speakers.RATE), turns


def _reference_speaker(turns: list[speakers.Turn], t: float) -> int | None:
    return next((turn.speaker for turn in turns if turn.start - 0.2 <= t <= turn.end + 0.2), None)


@pytest.mark.slow
def test_two_speakers_mono_gets_two_speakers_at_the_turns(
    client: telnyx.Telnyx, two_speakers: tuple[bytes, list[speakers.Turn]]
) -> None:
    data, turns = two_speakers
    result = client.ai.audio.transcribe(
        model="openai/whisper-tiny.en",
        file=("call.wav", data, "audio/wav"),
        response_format="verbose_json",
        model_config={"diarize": True},
    )
    segments = result.segments or []
    assert segments and all(s.speakers is not None and len(s.speakers) == 1 for s in segments)
    assert {s.speakers[0] for s in segments if s.speakers} == {0, 1}
    # Speakers are numbered in order of appearance, so reference speaker n is speaker n.
    words = [w for s in segments for w in s.words or []]
    assert words and all(w.speaker in (0, 1) and 0 <= (w.speaker_confidence or 0) <= 1 for w in words)
    right = sum(w.speaker == _reference_speaker(turns, (w.start + w.end) / 2) for w in words)
    assert right >= 0.95 * len(words), f"{right}/{len(words)} words on the right speaker"
    # Every change of speaker between consecutive segments sits at a reference boundary, and every
    # reference boundary has one.
    changes = [b.start for a, b in itertools.pairwise(segments) if a.speakers != b.speakers]
    boundaries = [(a.end + b.start) / 2 for a, b in itertools.pairwise(turns)]
    assert len(changes) == len(boundaries), (changes, boundaries)
    for change, boundary in zip(changes, boundaries, strict=True):
        assert abs(change - boundary) <= TOLERANCE, (change, boundary)


@pytest.mark.slow
def test_max_speakers_bounds_the_count(
    client: telnyx.Telnyx, two_speakers: tuple[bytes, list[speakers.Turn]]
) -> None:
    data, _ = two_speakers
    result = client.ai.audio.transcribe(
        model="openai/whisper-tiny.en",
        file=("call.wav", data, "audio/wav"),
        response_format="verbose_json",
        model_config={"diarize": True, "max_speakers": 1},
    )
    assert {tuple(s.speakers or ()) for s in result.segments or []} == {(0,)}


@pytest.mark.parametrize(
    ("config", "status", "pointer"),
    [
        ({"model_config[diarize]": "maybe"}, 400, "/model_config/diarize"),
        ({"model_config[max_speakers]": "2"}, 400, "/model_config/max_speakers"),  # without diarize
        (
            {"model_config[diarize]": "true", "model_config[max_speakers]": "0"},
            422,
            "/model_config/max_speakers",
        ),
        (
            {"model_config[diarize]": "true", "model_config[min_speakers]": "two"},
            422,
            "/model_config/min_speakers",
        ),
        (
            {
                "model_config[diarize]": "true",
                "model_config[min_speakers]": "3",
                "model_config[max_speakers]": "2",
            },
            422,
            "/model_config/min_speakers",
        ),
        ({"model_config": '{"diarize": true, "max_speakers": 99}'}, 422, "/model_config/max_speakers"),
    ],
)
def test_bad_diarization_config_is_an_envelope(
    http: httpx.Client, config: dict[str, str], status: int, pointer: str
) -> None:
    data = wav(np.zeros(8000, dtype=np.float32), rate=16000)
    error = assert_envelope(http.post(PATH, data=config, files={"file": ("a.wav", data)}), status)
    assert error["source"]["pointer"] == pointer
