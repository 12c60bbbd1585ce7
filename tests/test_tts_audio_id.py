"""Text-to-speech `output_type: audio_id`: POST answers an id at once, `GET /v2/text-to-speech/speech/{id}`
streams the audio while it is synthesised and serves it until it expires."""

from __future__ import annotations

from datetime import timedelta

import httpx
import telnyx
from sqlalchemy import update

from inferline.stores.audio_tables import TtsAudio
from inferline.stores.tables import utcnow
from tests import audio_samples as audio
from tests.conftest import LiveServer
from tests.test_foundation import assert_envelope
from tests.test_tts import SENTENCE, VOICE, decode, transcribe

LONG_TEXT = " ".join(
    f"This is sentence number {n} of a long announcement, read slowly and clearly." for n in range(1, 25)
)


def audio_id(client: telnyx.Telnyx, text: str) -> str:
    result = client.text_to_speech.generate_speech(
        text=text,
        voice=VOICE,
        output_type="audio_id",  # type: ignore[arg-type]  # documented, not yet in the SDK's Literal
    )
    assert result.base64_audio is None
    found = result.to_dict()["audio_id"]
    assert isinstance(found, str) and found
    return found


def tenant_of(server: LiveServer) -> str:
    return server.container.keys.authenticate(server.key_a).tenant_id


def test_audio_id_round_trip(client: telnyx.Telnyx, http: httpx.Client) -> None:
    """The id fetched by GET gives the audio, which Whisper transcribes back; a second GET serves it again."""
    found = audio_id(client, SENTENCE)
    first = http.get(f"/text-to-speech/speech/{found}")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "audio/mpeg"
    assert first.headers["x-inferline-voice"] == VOICE
    samples, rate, codec = decode(first.content)
    assert codec.startswith("mp3") and rate == 24000 and len(samples) / rate > 1.5
    assert audio.words(transcribe(client, first.content, "speech.mp3")) == audio.words(SENTENCE)
    again = http.get(f"/text-to-speech/speech/{found}")
    assert again.status_code == 200 and again.content == first.content


def test_audio_id_streams_while_synthesising(
    server: LiveServer, client: telnyx.Telnyx, http: httpx.Client
) -> None:
    """The first bytes of a long text arrive while the service still reports it in progress."""
    found = audio_id(client, LONG_TEXT)
    tenant = tenant_of(server)
    with http.stream("GET", f"/text-to-speech/speech/{found}") as response:
        assert response.status_code == 200
        chunks = response.iter_bytes()
        first = next(chunks)
        status_at_first_chunk = server.container.stored_speech.status(tenant, found)
        data = first + b"".join(chunks)
    assert first
    assert status_at_first_chunk == "in_progress"
    assert server.container.stored_speech.status(tenant, found) == "completed"
    samples, rate, _ = decode(data)
    assert len(samples) / rate > 40  # all 24 sentences, not just the first
    words = audio.words(transcribe(client, data, "long.mp3"))
    # The speech is the text throughout (the duration above shows none is cut off). Whisper tiny sometimes
    # loops on the repeated phrase in its last window ("read slowly and clearly read slowly ..."), so the
    # sentences are counted rather than the last words checked.
    assert words[:3] == ["this", "is", "sentence"] and words.count("announcement") >= 12


def test_audio_id_other_tenant_and_unknown_are_404(
    server: LiveServer, client: telnyx.Telnyx, http: httpx.Client
) -> None:
    found = audio_id(client, "Good morning.")
    as_b = {"Authorization": f"Bearer {server.key_b}"}
    assert_envelope(httpx.get(f"{server.v2}/text-to-speech/speech/{found}", headers=as_b), 404)
    assert_envelope(http.get("/text-to-speech/speech/not-an-id"), 404)
    assert http.get(f"/text-to-speech/speech/{found}").status_code == 200


def test_audio_id_expired_is_404(server: LiveServer, client: telnyx.Telnyx, http: httpx.Client) -> None:
    found = audio_id(client, "Good evening.")
    assert http.get(f"/text-to-speech/speech/{found}").status_code == 200
    with server.container.db.session() as s:  # the TTL elapses
        s.execute(update(TtsAudio).where(TtsAudio.id == found).values(expires_at=utcnow() - timedelta(1)))
    error = assert_envelope(http.get(f"/text-to-speech/speech/{found}"), 404)
    assert error["source"]["pointer"] == "/audio_id"
