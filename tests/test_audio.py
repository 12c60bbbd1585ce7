"""Speech-to-text: POST /v2/ai/audio/transcriptions via the telnyx SDK (strict), the openai SDK, raw HTTP."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
import telnyx

from inferline.net.policy import AllowList
from tests import audio_samples as audio
from tests.conftest import LiveServer
from tests.test_foundation import assert_envelope

HELLO = "Please call me back tomorrow morning."
WEATHER = "The weather is sunny and warm today."
PATH = "/ai/audio/transcriptions"


@pytest.fixture(scope="module")
def hello_wav() -> bytes:
    return audio.wav(audio.speech(HELLO))


def test_sdk_verbose_json_with_segments(client: telnyx.Telnyx, hello_wav: bytes) -> None:
    raw = client.ai.audio.with_raw_response.transcribe(
        model="distil-whisper/distil-large-v2",
        file=("hello.wav", hello_wav, "audio/x-wav"),
        response_format="verbose_json",
        timestamp_granularities="segment",
    )
    result = raw.parse()
    assert audio.words(result.text) == audio.words(HELLO)
    assert result.duration == pytest.approx(len(audio.speech(HELLO)) / audio.RATE, abs=0.05)
    # Whisper quantises times and may run a little past the end of a short clip.
    assert (
        result.segments and 0 <= result.segments[0].start < result.segments[-1].end <= result.duration + 0.6
    )
    assert audio.words(" ".join(s.text for s in result.segments)) == audio.words(HELLO)
    # The Telnyx name maps to the installed Whisper model, which is reported.
    assert raw.headers["x-inferline-model"] == "openai/whisper-tiny.en"
    assert raw.http_response.json()["model"] == "openai/whisper-tiny.en"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("speech.mp3", lambda s: audio.encoded(s, "mp3")),
        ("speech.ogg", lambda s: audio.container(s, "ogg", "libopus")),
        ("speech.flac", lambda s: audio.container(s, "flac", "flac")),
        ("speech.m4a", lambda s: audio.container(s, "ipod", "aac")),
        ("speech.webm", lambda s: audio.container(s, "webm", "libopus")),
        ("speech.mp4", lambda s: audio.container(s, "mp4", "aac")),
    ],
)
def test_containers_decode_whatever_the_name(client: telnyx.Telnyx, name: str, make) -> None:  # type: ignore[no-untyped-def]
    data = make(audio.speech(WEATHER))
    # The content type is deliberately wrong: the server probes the bytes.
    result = client.ai.audio.transcribe(
        model="openai/whisper-large-v3-turbo", file=(name, data, "application/octet-stream")
    )
    assert audio.words(result.text) == audio.words(WEATHER)
    assert result.segments is None and result.duration is None  # plain json is text only


def test_stereo_call_is_transcribed_per_channel(client: telnyx.Telnyx) -> None:
    left = audio.speech(HELLO)
    right = np.concatenate([np.zeros(len(left) + audio.RATE // 2, np.float32), audio.speech(WEATHER)])
    result = client.ai.audio.transcribe(
        model="openai/whisper-tiny.en",
        file=("call.wav", audio.wav([left, right]), "audio/wav"),
        response_format="verbose_json",
        model_config={"multichannel": True},  # sent as model_config[multichannel]=true
    )
    channels = {s.channel for s in result.segments or []}
    assert channels == {0, 1}
    first, *_, last = result.segments or []
    assert first.channel == 0 and last.channel == 1 and first.start < last.start
    lines = result.text.splitlines()
    assert lines[0].startswith("[channel 0]") and lines[-1].startswith("[channel 1]")
    assert audio.words(lines[0]) == ["channel", "0", *audio.words(HELLO)]
    assert audio.words(lines[-1]) == ["channel", "1", *audio.words(WEATHER)]


def test_mono_mixdown_by_default(http: httpx.Client) -> None:
    stereo = audio.wav([audio.speech(WEATHER), audio.speech(WEATHER)])
    body = http.post(PATH, data={"response_format": "verbose_json"}, files={"file": ("a.wav", stereo)}).json()
    assert audio.words(body["text"]) == audio.words(WEATHER)
    assert all("channel" not in s for s in body["segments"])


def test_model_config_as_json_string(http: httpx.Client, hello_wav: bytes) -> None:
    response = http.post(
        PATH,
        data={"model": "whisper-1", "model_config": '{"smart_format": true, "language": "en"}'},
        files={"file": ("a.wav", hello_wav)},
    )
    assert response.status_code == 200, response.text
    assert audio.words(response.json()["text"]) == audio.words(HELLO)


def test_openai_sdk_verbose_words_srt_vtt(server: LiveServer, hello_wav: bytes) -> None:
    oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai", max_retries=0)
    verbose = oai.audio.transcriptions.create(
        model="whisper-1",
        file=("hello.wav", hello_wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert audio.words(verbose.text) == audio.words(HELLO)
    assert verbose.language == "en" and verbose.duration > 1
    assert [w.word.lower().strip(".,") for w in verbose.words or []] == audio.words(HELLO)
    assert all(a.end <= b.start + 0.01 for a, b in zip(verbose.words, verbose.words[1:], strict=False))

    srt = oai.audio.transcriptions.create(model="whisper-1", file=("h.wav", hello_wav), response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:0") and audio.words(HELLO)[0] in srt.lower()
    vtt = oai.audio.transcriptions.create(model="whisper-1", file=("h.wav", hello_wav), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:0")
    text = oai.audio.transcriptions.create(
        model="whisper-1", file=("h.wav", hello_wav), response_format="text"
    )
    assert audio.words(text) == audio.words(HELLO)


def test_stereo_vtt_labels_voices(http: httpx.Client) -> None:
    left, right = audio.speech(HELLO), audio.speech(WEATHER)
    right = np.concatenate([np.zeros(len(left) + audio.RATE // 2, np.float32), right])
    response = http.post(
        PATH,
        data={"response_format": "vtt", "model_config[multichannel]": "true"},
        files={"file": ("call.wav", audio.wav([left, right]))},
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/vtt")
    assert "<v channel 0>" in response.text and "<v channel 1>" in response.text


@pytest.mark.parametrize(
    ("data", "status", "pointer"),
    [
        ({"model": "deepgram/nova-3"}, 400, "/model"),
        ({"model": "no/such-model"}, 400, "/model"),
        ({"model_config[diarize]": "maybe"}, 400, "/model_config/diarize"),
        ({"model_config[punctuate]": "false"}, 400, "/model_config/punctuate"),
        ({"model_config": "[1, 2]"}, 400, "/model_config"),
        ({"language": "fr"}, 400, "/language"),  # tiny.en is English-only
        ({"response_format": "xml"}, 422, "/response_format"),
        ({"timestamp_granularities[]": "segment"}, 422, "/"),  # needs verbose_json
        ({"timestamp_granularities[]": "char", "response_format": "verbose_json"}, 422, None),
        ({"surprise": "1"}, 422, "/surprise"),
        ({"file_url": "http://example.invalid/a.wav"}, 400, "/file"),  # file and file_url together
    ],
)
def test_bad_input_is_an_envelope(
    http: httpx.Client, hello_wav: bytes, data: dict, status: int, pointer: str | None
) -> None:
    error = assert_envelope(http.post(PATH, data=data, files={"file": ("a.wav", hello_wav)}), status)
    if pointer is not None:
        assert error["source"]["pointer"].startswith(pointer)


def test_undecodable_and_missing_file(http: httpx.Client) -> None:
    error = assert_envelope(http.post(PATH, files={"file": ("a.wav", b"RIFF....not really audio")}), 400)
    assert error["source"]["pointer"] == "/file" and "could not be decoded" in error["detail"]
    assert_envelope(http.post(PATH, files={"file": ("empty.mp3", b"")}), 400)
    assert_envelope(http.post(PATH, data={"model": "whisper-1"}), 400)  # url-encoded, neither file nor URL
    assert_envelope(http.post(PATH, json={"model": "whisper-1"}), 400)
    two = [("file", ("a.wav", b"1")), ("file", ("b.wav", b"2"))]
    assert assert_envelope(http.post(PATH, files=two), 400)["code"] == "10015"
    broken = http.post(PATH, headers={"content-type": "multipart/form-data"}, content=b"x")
    assert assert_envelope(broken, 400)["code"] == "10015"


def test_openai_client_on_the_openai_base(server: LiveServer, hello_wav: bytes) -> None:
    """One OpenAI client at /v2/ai/openai (as for chat and embeddings) also reaches audio."""
    oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0)
    text = oai.audio.transcriptions.create(model="whisper-1", file=("h.wav", hello_wav)).text
    assert audio.words(text) == audio.words(HELLO)
    assert oai.audio.speech.create(model="tts-1", voice="alloy", input="Hi.").content[:3] in (
        b"ID3",
        b"\xff\xfb",
    )


def test_file_over_the_limit_is_413(
    http: httpx.Client, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.container.transcription, "max_bytes", 1000)
    error = assert_envelope(http.post(PATH, files={"file": ("big.wav", b"\0" * 1001)}), 413)
    assert error["source"]["pointer"] == "/file"


def test_busy_server_is_429_with_retry_after(
    client: telnyx.Telnyx,
    http: httpx.Client,
    server: LiveServer,
    hello_wav: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server.container.transcription, "max_in_flight", 0)
    response = http.post(PATH, files={"file": ("a.wav", hello_wav)})
    assert assert_envelope(response, 429)["code"] == "10011" and response.headers["retry-after"] == "5"
    with pytest.raises(telnyx.RateLimitError):
        client.ai.audio.transcribe(model="whisper-1", file=("a.wav", hello_wav))  # client has max_retries=0


def test_sdk_bad_request_is_typed(client: telnyx.Telnyx, hello_wav: bytes) -> None:
    with pytest.raises(telnyx.BadRequestError) as info:
        client.ai.audio.transcribe(model="deepgram/nova-3", file=("a.wav", hello_wav))
    assert info.value.status_code == 400


@pytest.fixture()
def wav_server(hello_wav: bytes) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/hello.wav")
                self.end_headers()
                return
            self.send_response(200 if self.path == "/hello.wav" else 404)
            self.send_header("Content-Type", "audio/wav")
            self.end_headers()
            self.wfile.write(hello_wav)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_file_url_refuses_loopback_by_default(client: telnyx.Telnyx, wav_server: str) -> None:
    with pytest.raises(telnyx.BadRequestError) as info:
        client.ai.audio.transcribe(model="openai/whisper-tiny.en", file_url=wav_server + "/hello.wav")
    assert "private, loopback" in str(info.value)


def test_file_url_fetched_when_operator_allows(
    client: telnyx.Telnyx, server: LiveServer, wav_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetcher = server.container.transcription.fetcher
    monkeypatch.setattr(fetcher.policy, "allow", AllowList.parse("127.0.0.1"))
    result = client.ai.audio.transcribe(model="openai/whisper-tiny.en", file_url=wav_server + "/redirect")
    assert audio.words(result.text) == audio.words(HELLO)
    with pytest.raises(telnyx.BadRequestError, match="HTTP 404"):
        client.ai.audio.transcribe(model="openai/whisper-tiny.en", file_url=wav_server + "/missing.wav")


def test_transcribe_bytes_interface_records_usage(server: LiveServer, hello_wav: bytes) -> None:
    """The in-process interface other areas use (bucket ingest, summarize)."""
    from sqlalchemy import select

    from inferline.stores.audio_tables import SttUsageRecord

    result = server.container.transcription.transcribe_bytes("tenant-iface", hello_wav, "hello.wav")
    assert audio.words(result.text) == audio.words(HELLO)
    with server.container.db.session() as s:
        row = s.execute(select(SttUsageRecord).where(SttUsageRecord.id == result.usage_id)).scalar_one()
        assert row.tenant_id == "tenant-iface" and row.source == "internal"
        assert row.model == "openai/whisper-tiny.en" and row.audio_seconds == pytest.approx(result.duration)
