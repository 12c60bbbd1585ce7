"""Speech streams from its first clause on, WAV included: the first chunk is the first clause (cut at its
comma), and a WAV starts with a streaming header (sizes unknown) followed by PCM as it is synthesised. The
audio is still right: whisper transcribes the streamed WAV, and a whole WAV (base64 output) carries its real
sizes."""

from __future__ import annotations

import base64
import io
import struct
import wave

import httpx
import telnyx

from tests import audio_samples as audio
from tests.test_tts_stream import collect

VOICE = "Telnyx.Piper.en_US-joe-medium"
SENTENCE = "Thank you for calling, how can I help you today?"


def transcript(client: telnyx.Telnyx, wav: bytes) -> list[str]:
    return audio.words(client.ai.audio.transcribe(model="openai/whisper-tiny.en", file=("s.wav", wav)).text)


def test_websocket_wav_streams_the_first_clause_then_the_rest(client: telnyx.Telnyx) -> None:
    with client.text_to_speech.stream(extra_query={"voice": VOICE, "audio_format": "wav"}) as conn:
        conn.send({"text": SENTENCE})
        events, data = collect(conn)
    chunks = [base64.b64decode(e.audio) for e in events if e.type == "audio_chunk" and e.audio]
    assert len(chunks) == 2, [len(c) for c in chunks]  # "Thank you for calling," then the rest
    riff, size, wave_id, data_id, data_size = struct.unpack_from("<4sI4s24x4sI", chunks[0])
    assert (riff, wave_id, data_id) == (b"RIFF", b"WAVE", b"data") and size == data_size == 0xFFFFFFFF
    assert len(chunks[0]) > 44 + 2 * 24000 // 4  # the header and the clause's samples (about a second)
    assert transcript(client, data) == audio.words(SENTENCE)


def test_http_wav_is_streamed_and_whole(client: telnyx.Telnyx, http: httpx.Client) -> None:
    body = {"text": SENTENCE, "voice": VOICE, "telnyx": {"response_format": "wav"}}
    with http.stream("POST", "/text-to-speech/speech", json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
        assert "content-length" not in response.headers  # chunked: sent as it is synthesised
        streamed = response.read()
    with wave.open(io.BytesIO(streamed)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert len(w.readframes(10**9)) == len(streamed) - 44
    assert transcript(client, streamed) == audio.words(SENTENCE)

    whole = client.text_to_speech.generate_speech(
        text=SENTENCE, voice=VOICE, output_type="base64_output", telnyx={"response_format": "wav"}
    )
    data = base64.b64decode(whole.base64_audio or "")
    riff_size, data_size = struct.unpack_from("<I", data, 4)[0], struct.unpack_from("<I", data, 40)[0]
    assert (riff_size, data_size) == (len(data) - 8, len(data) - 44)
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnframes() == (len(data) - 44) // 2 > 24000
