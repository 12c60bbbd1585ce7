"""Text-to-speech: /v2/text-to-speech/* via the telnyx SDK (strict, raw bytes) and OpenAI /v2/audio/speech."""

from __future__ import annotations

import base64
import io
import wave

import av
import httpx
import numpy as np
import openai
import pytest
import telnyx

from tests import audio_samples as audio
from tests.conftest import LiveServer
from tests.test_foundation import assert_envelope

VOICE = "Telnyx.Piper.en_US-joe-medium"
SENTENCE = "Thank you for calling, how can I help you today?"


def decode(data: bytes, fmt: str | None = None, rate: int | None = None) -> tuple[np.ndarray, int, str]:
    """Mono float samples in [-1, 1], sample rate and codec name, decoded independently with FFmpeg."""
    options = {"sample_rate": str(rate)} if rate else {}
    with av.open(io.BytesIO(data), format=fmt, options=options) as c:
        ctx = c.streams.audio[0].codec_context
        frames = []
        for frame in c.decode(audio=0):
            array = (
                frame.to_ndarray().reshape(ctx.channels, -1)[0]
                if frame.format.is_packed is False
                else (frame.to_ndarray().reshape(-1)[:: ctx.channels])
            )
            scale = float(np.iinfo(array.dtype).max + 1) if array.dtype.kind == "i" else 1.0
            frames.append(array.astype(np.float32) / scale)
        return np.concatenate(frames), ctx.sample_rate, ctx.name


def transcribe(client: telnyx.Telnyx, data: bytes, name: str) -> str:
    return client.ai.audio.transcribe(model="openai/whisper-tiny.en", file=(name, data)).text


def test_round_trip_binary_mp3(client: telnyx.Telnyx) -> None:
    """TTS output transcribed back by Whisper gives the same words."""
    raw = client.text_to_speech.with_raw_response.generate_speech(text=SENTENCE, voice=VOICE)
    assert raw.headers["content-type"] == "audio/mpeg"
    assert raw.headers["x-inferline-voice"] == VOICE
    data = raw.http_response.content
    samples, rate, codec = decode(data)
    assert codec.startswith("mp3") and rate == 24000 and len(samples) / rate > 1.5
    assert audio.words(transcribe(client, data, "speech.mp3")) == audio.words(SENTENCE)


def test_base64_output(client: telnyx.Telnyx) -> None:
    result = client.text_to_speech.generate_speech(
        text="Good morning.",
        voice="telnyx.Piper.joe",
        output_type="base64_output",
        telnyx={"response_format": "wav"},
    )
    data = base64.b64decode(result.base64_audio or "")
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert w.getnframes() > 24000 * 0.4


def test_telephony_mulaw_8khz_round_trip(client: telnyx.Telnyx) -> None:
    raw = client.text_to_speech.with_raw_response.generate_speech(
        text=SENTENCE, voice=VOICE, telnyx={"response_format": "mulaw", "sampling_rate": 8000}
    )
    assert raw.headers["content-type"] == "audio/basic"
    data = raw.http_response.content
    samples, rate, codec = decode(data, fmt="mulaw", rate=8000)
    assert codec == "pcm_mulaw" and rate == 8000
    assert len(data) == len(samples)  # one byte per sample
    assert np.abs(samples).max() > 0.1
    as_wav = audio.wav(samples, rate=8000)
    assert audio.words(transcribe(client, as_wav, "call.wav")) == audio.words(SENTENCE)


@pytest.mark.parametrize(
    ("fmt", "codec", "rate"), [("ogg", "opus", 48000), ("flac", "flac", 16000), ("mp3", "mp3", 22050)]
)
def test_formats_and_rates(http: httpx.Client, fmt: str, codec: str, rate: int) -> None:
    response = http.post(
        "/text-to-speech/speech",
        json={
            "text": "Hello there.",
            "voice": VOICE,
            "telnyx": {"response_format": fmt, "sampling_rate": rate},
        },
    )
    assert response.status_code == 200, response.text
    samples, got_rate, got_codec = decode(response.content)
    assert got_codec.startswith(codec) and len(samples) > 0
    assert got_rate == rate or fmt == "ogg"  # Opus always decodes at 48 kHz


def test_pcm_is_raw_16bit(http: httpx.Client) -> None:
    response = http.post(
        "/text-to-speech/speech",
        json={"text": "Hello there.", "voice": VOICE, "telnyx": {"response_format": "pcm"}},
    )
    assert response.headers["content-type"] == "audio/pcm;rate=24000"
    pcm = np.frombuffer(response.content, dtype="<i2")
    assert len(response.content) % 2 == 0 and 0.3 < len(pcm) / 24000 < 3 and np.abs(pcm).max() > 1000


def test_the_test_server_speaks_the_same_samples_every_time(http: httpx.Client) -> None:
    """`INFERLINE_TTS_VARIATION=0` (the test server's, see conftest): identical requests, identical audio."""
    body = {"text": "How can I help you today?", "voice": VOICE, "telnyx": {"response_format": "pcm"}}
    first, second = (http.post("/text-to-speech/speech", json=body) for _ in range(2))
    assert first.status_code == second.status_code == 200
    assert len(first.content) > 10_000 and first.content == second.content


def test_variation_scales_the_voices_sampling_noise() -> None:
    """Piper samples noise for each sound and its duration: by default (1) the same text differs a little
    each time; at 0 it is the same samples every time."""
    from inferline.engines.piper_tts import PiperEngine

    def twice(variation: float) -> list[np.ndarray]:
        engine = PiperEngine("rhasspy/piper-en_US-joe-medium", audio.VOICE_FILE, variation=variation)
        return [np.concatenate(list(engine.synthesize("Thank you for calling."))) for _ in range(2)]

    varied = twice(1.0)
    assert len(varied[0]) != len(varied[1]) or not np.array_equal(varied[0], varied[1])
    steady = twice(0.0)
    assert np.array_equal(steady[0], steady[1])


def test_variation_setting_is_bounded() -> None:
    from pydantic import ValidationError

    from inferline.config import Settings

    assert Settings.model_fields["tts_variation"].default == 1.0
    for bad in (-0.1, 2.5):
        with pytest.raises(ValidationError, match="tts_variation"):
            Settings(tts_variation=bad)


def test_ssml_breaks_and_substitutions(http: httpx.Client, client: telnyx.Telnyx) -> None:
    def seconds(text: str, text_type: str) -> float:
        body = {"text": text, "voice": VOICE, "text_type": text_type, "telnyx": {"response_format": "pcm"}}
        response = http.post("/text-to-speech/speech", json=body)
        assert response.status_code == 200, response.text
        return len(response.content) / 2 / 24000

    plain = seconds("Hello world.", "text")
    paused = seconds('<speak>Hello <break time="1500ms"/> world.</speak>', "ssml")
    assert paused > plain + 1.2
    raw = client.text_to_speech.with_raw_response.generate_speech(
        text='<speak><sub alias="Thank you">TY</sub> for calling, '
        '<prosody rate="slow">have a nice day</prosody>.</speak>',
        text_type="ssml",
        voice=VOICE,
    )
    heard = audio.words(transcribe(client, raw.http_response.content, "s.mp3"))
    assert heard == audio.words("Thank you for calling, have a nice day.")


@pytest.mark.parametrize(
    ("body", "status", "pointer"),
    [
        ({"text": "Hi", "voice": "AWS.Polly.Joanna"}, 400, "/voice"),
        ({"text": "Hi", "voice": "azure.en-US-AvaMultilingualNeural"}, 400, "/voice"),
        ({"text": "Hi", "provider": "elevenlabs"}, 400, "/provider"),
        ({"text": "Hi", "voice": "Telnyx.NaturalHD.astra"}, 400, "/voice"),
        ({"text": "Hi", "voice": VOICE, "aws": {"language_code": "en-US"}}, 400, "/aws"),
        ({"text": "Hi", "voice": VOICE, "telnyx": {"temperature": 0.5}}, 400, "/telnyx/temperature"),
        ({"text": "Hi", "voice": VOICE, "telnyx": {"emotion": "happy"}}, 400, "/telnyx/emotion"),
        ({"text": "Hi", "voice": VOICE, "telnyx": {"response_format": "midi"}}, 400, "/response_format"),
        ({"text": "Hi", "voice": VOICE, "telnyx": {"sampling_rate": 12345}}, 400, "/sampling_rate"),
        ({"text": "Hi", "voice": VOICE, "language": "de-DE"}, 400, "/language"),
        ({"text": "Hi", "voice": VOICE, "voice_settings": {"pitch": 2}}, 400, "/voice_settings/pitch"),
        ({"text": "<speak>unclosed", "voice": VOICE, "text_type": "ssml"}, 400, "/text"),
        ({"text": "   ", "voice": VOICE}, 400, "/text"),
        ({"voice": VOICE}, 400, "/text"),
        ({"text": "Hi", "voice": VOICE, "output_type": "audio_url"}, 422, "/output_type"),
        ({"text": "Hi", "voice": VOICE, "surprise": True}, 422, "/surprise"),
    ],
)
def test_bad_speech_requests(http: httpx.Client, body: dict, status: int, pointer: str) -> None:
    error = assert_envelope(http.post("/text-to-speech/speech", json=body), status)
    assert error["source"]["pointer"] == pointer


def test_unconfigured_provider_through_sdk(client: telnyx.Telnyx) -> None:
    with pytest.raises(telnyx.BadRequestError, match="not configured"):
        client.text_to_speech.generate_speech(
            text="Hi", voice="elevenlabs.v3.Adam", output_type="base64_output"
        )


def test_list_voices(client: telnyx.Telnyx) -> None:
    voices = client.text_to_speech.list_voices().voices or []
    joe = voices[0]  # the default voice comes first
    assert (joe.voice_id, joe.name, joe.provider, joe.language, joe.hosted) == (
        VOICE,
        "joe",
        "telnyx",
        "en-US",
        True,
    )
    assert len(client.text_to_speech.list_voices(provider="telnyx").voices or []) == len(voices)
    assert client.text_to_speech.list_voices(provider="aws").voices == []


def test_unknown_local_voice_is_400(http: httpx.Client) -> None:
    error = assert_envelope(
        http.post("/text-to-speech/speech", json={"text": "Hi", "voice": "Telnyx.Piper.nobody"}), 400
    )
    assert error["source"]["pointer"] == "/voice"


def test_list_voices_unknown_provider_is_422(http: httpx.Client) -> None:
    assert_envelope(http.get("/text-to-speech/voices", params={"provider": "acme"}), 422)


def test_openai_sdk_speech(server: LiveServer, client: telnyx.Telnyx) -> None:
    oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2, max_retries=0)
    response = oai.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE, response_format="wav")
    assert response.response.headers["x-inferline-voice"] == VOICE
    with wave.open(io.BytesIO(response.content)) as w:
        assert w.getframerate() == 24000
    assert audio.words(transcribe(client, response.content, "o.wav")) == audio.words(SENTENCE)

    with oai.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="One. Two. Three.", response_format="pcm"
    ) as streamed:
        assert streamed.headers["transfer-encoding"] == "chunked"
        pcm = b"".join(streamed.iter_bytes())
    assert len(pcm) > 24000  # over half a second of 16-bit audio

    for fmt, codec in (("opus", "opus"), ("aac", "aac"), ("flac", "flac"), ("mp3", "mp3")):
        data = oai.audio.speech.create(
            model="tts-1-hd", voice="nova", input="Hello.", response_format=fmt
        ).content
        assert decode(data)[2].startswith(codec)


def test_openai_speech_refusals(server: LiveServer) -> None:
    oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2, max_retries=0)
    cases = [
        ({"model": "gpt-4o-mini-tts", "voice": "alloy", "instructions": "Whisper it"}, "/instructions"),
        ({"model": "eleven_v3", "voice": "alloy"}, "/model"),
        ({"model": "tts-1", "voice": "Bob"}, "/voice"),
    ]
    for params, pointer in cases:
        with pytest.raises(openai.BadRequestError) as info:
            oai.audio.speech.create(input="Hi", **params)
        assert info.value.response.json()["errors"][0]["source"]["pointer"] == pointer
        assert info.value.param == pointer.strip("/")  # OpenAI's error object names the parameter too
    with pytest.raises(openai.UnprocessableEntityError):
        oai.audio.speech.create(model="tts-1", voice="alloy", input="Hi", speed=9)
