"""WebSocket text-to-speech (GET /v2/text-to-speech/speech) via the telnyx SDK's `text_to_speech.stream()`."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
import telnyx
import websockets.exceptions

from tests import audio_samples as audio
from tests.conftest import LiveServer

VOICE = "Telnyx.Piper.en_US-joe-medium"


def collect(conn, until_final: bool = True) -> tuple[list, bytes]:  # type: ignore[no-untyped-def]
    events, data = [], b""
    for event in conn:
        events.append(event)
        if event.type == "audio_chunk" and event.audio:
            data += base64.b64decode(event.audio)
        if event.type in ("final", "error"):
            break
    return events, data


def test_stream_round_trip_pcm(client: telnyx.Telnyx) -> None:
    text = "Thank you for calling. How can I help you today?"
    with client.text_to_speech.stream(extra_query={"voice": VOICE, "audio_format": "pcm"}) as conn:
        conn.send({"text": " ", "voice_settings": {"voice_speed": 1.0}})
        conn.send({"text": text})
        events, pcm = collect(conn)
    chunks = [e for e in events if e.type == "audio_chunk"]
    assert len(chunks) == 2  # one per sentence, as each is ready
    assert (
        chunks[0].time_to_first_audio_frame_ms is not None and chunks[1].time_to_first_audio_frame_ms is None
    )
    assert events[-1].type == "final" and events[-1].is_final is True
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    wav = audio.wav(samples, rate=24000)
    result = client.ai.audio.transcribe(model="openai/whisper-tiny.en", file=("ws.wav", wav))
    assert audio.words(result.text) == audio.words(text)


def test_stream_several_texts_mp3(client: telnyx.Telnyx) -> None:
    with client.text_to_speech.stream(
        extra_query={"voice_id": "joe", "model_id": "Piper", "provider": "telnyx"}
    ) as conn:
        conn.send({"text": "Hello."})
        conn.send({"text": "Goodbye."})
        first_events, first = collect(conn)
        second_events, second = collect(conn)
    assert first_events[-1].type == second_events[-1].type == "final"
    for data in (first, second):
        assert len(data) > 500 and (data[:3] == b"ID3" or data[0] == 0xFF)


def test_stream_mp3_first_audio_leaves_before_its_clause_is_encoded(client: telnyx.Telnyx) -> None:
    """An encoded format's first audio leaves once a slice of the first clause is encoded: a small first
    chunk (before: the whole clause's encoding, about a third of the sentence's), and the audio is whole."""
    text = "Thank you for calling, how can I help you today?"
    with client.text_to_speech.stream(extra_query={"voice": VOICE, "audio_format": "mp3"}) as conn:
        conn.send({"text": text})
        events, data = collect(conn)
    chunks = [base64.b64decode(e.audio) for e in events if e.type == "audio_chunk" and e.audio]
    assert chunks[0] and len(chunks[0]) < len(data) // 10, [len(c) for c in chunks]
    result = client.ai.audio.transcribe(model="openai/whisper-tiny.en", file=("ws.mp3", data))
    assert audio.words(result.text) == audio.words(text)


def test_stream_unconfigured_provider_is_an_error_frame(client: telnyx.Telnyx) -> None:
    with client.text_to_speech.stream(extra_query={"voice": "AWS.Polly.Joanna"}) as conn:
        event = conn.recv()
    assert event.type == "error" and "not configured" in (event.error or "")


def test_stream_bad_settings_is_an_error_frame(client: telnyx.Telnyx) -> None:
    with client.text_to_speech.stream(extra_query={"voice": VOICE}) as conn:
        conn.send({"text": " ", "voice_settings": {"pitch": 3}})
        conn.send({"text": "Hello."})
        event = conn.recv()
    assert event.type == "error" and "pitch" in (event.error or "")


def test_stream_refuses_a_bad_key(server: LiveServer) -> None:
    bad = telnyx.Telnyx(api_key="KEYnope", base_url=server.v2, max_retries=0)
    with pytest.raises(websockets.exceptions.InvalidStatus) as info, bad.text_to_speech.stream():
        pass
    assert info.value.response.status_code == 403


def test_stream_force_interrupts(client: telnyx.Telnyx) -> None:
    long_text = " ".join(["This sentence is here to keep the synthesiser busy for a while."] * 6)
    with client.text_to_speech.stream(extra_query={"voice": VOICE, "audio_format": "pcm"}) as conn:
        conn.send({"text": long_text})
        assert conn.recv().type == "audio_chunk"  # the first sentence is out; the rest is in progress
        conn.send({"force": True, "text": "Goodbye."})
        events, _ = collect(conn)
    spoken = [e.text for e in events if e.type == "audio_chunk"]
    assert events[-1].type == "final" and spoken[-1] == "Goodbye."
    assert (
        len([t for t in spoken if t == long_text]) < 5
    )  # the long text was cut short: 6 sentences, no final


def test_plain_http_get_is_a_400_naming_the_upgrade(http: httpx.Client, server: LiveServer) -> None:
    response = http.get("/text-to-speech/speech", params={"voice": "Telnyx.Piper.en_US-joe-medium"})
    assert response.status_code == 400 and response.headers["upgrade"] == "websocket"
    assert "WebSocket" in response.json()["errors"][0]["detail"]
    assert httpx.get(server.v2 + "/text-to-speech/speech").status_code == 401
