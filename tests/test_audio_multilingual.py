"""Non-English speech, spoken by espeak-ng's German and Spanish voices, on the multilingual Whisper model
(openai/whisper-base, which `make models-test` installs): language detection and the `language` parameter
(telnyx SDK), translation into English (openai SDK, `/v1/audio/translations`), diarization of a German call
between two voices, and a German call recording into a conversation."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest
import telnyx

from tests import speakers
from tests.audio_samples import wav, words
from tests.conftest import LiveServer
from tests.test_foundation import assert_envelope

MULTILINGUAL = "openai/whisper-base"
GERMAN = "Guten Morgen, vielen Dank für Ihren Anruf. Meine Bestellung ist noch nicht angekommen."
SPANISH = "Buenos días, gracias por llamar. Necesito ayuda con mi factura."
GERMAN_CALL = [
    (0, "Guten Tag, hier ist der Kundendienst. Wie kann ich Ihnen helfen?"),
    (1, "Hallo, mein Internet fällt seit Montag jeden Abend aus."),
    (0, "Das tut mir leid. Können Sie mir bitte Ihre Kundennummer sagen?"),
    (1, "Ja, natürlich. Sie lautet vier fünf sechs sieben acht neun."),
    (0, "Danke. Es gibt eine Störung in Ihrer Gegend, sie wird heute Abend behoben."),
    (1, "Sehr gut, vielen Dank für Ihre Hilfe."),
]
GERMAN_VOICES = ("espeak:de+m3", "espeak:de+f3")  # a male and a female German voice


@pytest.fixture(scope="module", autouse=True)
def needs_espeak() -> None:
    assert speakers.espeak_available(), "espeak-ng is needed (make models-test installs it)"


def spoken(voice: str, text: str) -> bytes:
    return wav(speakers.say(voice, text), rate=speakers.RATE)


@pytest.mark.slow
def test_language_is_detected(client: telnyx.Telnyx) -> None:
    result = client.ai.audio.transcribe(
        model=MULTILINGUAL, file=("de.wav", spoken("espeak:de", GERMAN)), response_format="verbose_json"
    )
    assert result.model_extra and result.model_extra["language"] == "de"
    heard = set(words(result.text))
    assert {"guten", "morgen", "bestellung"} <= heard, result.text


@pytest.mark.slow
def test_language_parameter_and_its_errors(client: telnyx.Telnyx, http: httpx.Client) -> None:
    audio = spoken("espeak:es", SPANISH)
    result = client.ai.audio.transcribe(
        model=MULTILINGUAL, file=("es.wav", audio), language="es", response_format="verbose_json"
    )
    assert result.model_extra and result.model_extra["language"] == "es"
    assert {"gracias", "llamar", "factura"} <= set(words(result.text)), result.text
    path = "/ai/audio/transcriptions"
    cases = [
        ({"model": MULTILINGUAL, "language": "xx"}, 400),  # no such language
        ({"model": "openai/whisper-tiny.en", "language": "es"}, 400),  # an English-only model
    ]
    for form, status in cases:
        error = assert_envelope(http.post(path, data=form, files={"file": ("es.wav", audio)}), status)
        assert error["source"]["pointer"] == "/language"


@pytest.mark.slow
def test_german_speech_is_translated_into_english(server: LiveServer) -> None:
    v1 = openai.OpenAI(api_key=server.key_a, base_url=server.url + "/v1", max_retries=0)
    result = v1.audio.translations.create(
        model=MULTILINGUAL, file=("de.wav", spoken("espeak:de", GERMAN)), response_format="verbose_json"
    )
    heard = set(words(result.text))
    german = {"guten", "morgen", "vielen", "dank", "danke", "meine", "nicht", "noch"}
    assert {"thank", "you", "my", "not"} <= heard and not german & heard, result.text
    assert result.model_extra and result.model_extra["task"] == "translate"


@pytest.mark.slow
def test_german_call_between_two_voices_is_diarized(client: telnyx.Telnyx) -> None:
    mono, turns = speakers.conversation(GERMAN_CALL, GERMAN_VOICES)
    result = client.ai.audio.transcribe(
        model=MULTILINGUAL,
        file=("call.wav", wav(mono, rate=speakers.RATE), "audio/wav"),
        language="de",
        response_format="verbose_json",
        model_config={"diarize": True},
    )
    segments = result.segments or []
    assert {s.speakers[0] for s in segments if s.speakers} == {0, 1}
    words_ = [w for s in segments for w in s.words or []]

    def reference(t: float) -> int | None:
        return next((x.speaker for x in turns if x.start - 0.2 <= t <= x.end + 0.2), None)

    right = sum(w.speaker == reference((w.start + w.end) / 2) for w in words_)
    assert words_ and right >= 0.9 * len(words_), f"{right}/{len(words_)} words on the right speaker"
    hypothesis = [(s.start, s.end, s.speakers[0]) for s in segments if s.speakers]
    assert speakers.der(turns, hypothesis) < 0.25
    assert {"guten", "tag", "internet", "abend"} <= set(words(result.text)), result.text


@pytest.mark.slow
def test_german_recording_becomes_a_conversation(client: telnyx.Telnyx, http: httpx.Client) -> None:
    agent, customer = GERMAN_CALL[0][1], GERMAN_CALL[1][1]
    a, b = speakers.say(GERMAN_VOICES[0], agent), speakers.say(GERMAN_VOICES[1], customer)
    gap = np.zeros(int(0.6 * speakers.RATE), dtype=np.float32)
    left = np.concatenate([a, gap, np.zeros_like(b)])
    right = np.concatenate([np.zeros_like(a), gap, b])
    answer = http.post(
        "/ai/conversations/recordings",
        files={"file": ("anruf.wav", wav([left, right], rate=speakers.RATE), "audio/wav")},
        data={"model": MULTILINGUAL, "language": "de", "channel_roles": '{"0": "assistant", "1": "user"}'},
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    conversation = answer.json()["data"]["conversation"]
    assert conversation["metadata"]["transcription_model"] == MULTILINGUAL
    messages = list(client.ai.conversations.messages.list(conversation["id"]))
    assert [m.role for m in messages] == ["assistant", "user"]
    assert "kundendienst" in words(messages[0].text) and "internet" in words(messages[1].text)
