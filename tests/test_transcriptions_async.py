"""Asynchronous transcription (`/v2/inferline/transcriptions`): a job id at once, the durable worker
transcribes, the result is retrievable, listable and deletable, and a signed webhook (verified by the telnyx
SDK's `webhooks.unwrap`) announces completion or failure."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import telnyx

from tests import audio_samples as audio
from tests.test_foundation import assert_envelope
from tests.test_insights_webhooks import public_key, receiver_factory  # noqa: F401 (fixture)

PATH = "/inferline/transcriptions"
TEXT = "Please call me back tomorrow morning."


def _wait(http: httpx.Client, transcription_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = http.get(f"{PATH}/{transcription_id}").raise_for_status().json()["data"]
        if body["status"] != "queued":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_async_transcription_completes_with_a_signed_webhook(
    http: httpx.Client,
    client: telnyx.Telnyx,
    client_b: telnyx.Telnyx,
    receiver_factory,  # noqa: F811
) -> None:
    receiver = receiver_factory([200])
    r = http.post(
        PATH,
        data={
            "model": "openai/whisper-tiny.en",
            "webhook_url": receiver.url,
            "response_format": "verbose_json",
            "timestamp_granularities[]": "word",
        },
        files={"file": ("call.wav", audio.wav(audio.speech(TEXT)))},
    )
    assert r.status_code == 202, r.text
    created = r.json()["data"]
    assert created["status"] == "queued" and created["result"] is None
    receiver.wait(1)
    headers, body = receiver.requests[0]
    event = client.webhooks.unwrap(body, headers=headers, key=public_key(http))
    assert event.data is not None and event.data.event_type == "inferline.transcription.completed"
    payload = json.loads(body)["data"]["payload"]
    assert payload["transcription_id"] == created["id"] and payload["status"] == "completed"
    assert audio.words(payload["result"]["text"]) == audio.words(TEXT)
    done = _wait(http, created["id"])
    assert done["status"] == "completed" and done["completed_at"] is not None
    assert done["result"] == payload["result"]
    assert [w["word"] for w in done["result"]["words"]] and done["result"][
        "model"
    ] == "openai/whisper-tiny.en"
    listed = http.get(PATH, params={"page[size]": 250}).json()
    assert created["id"] in [t["id"] for t in listed["data"]] and listed["meta"]["total_results"] >= 1
    # Another tenant sees nothing of it.
    with pytest.raises(telnyx.NotFoundError):
        client_b.get(f"{PATH}/{created['id']}", cast_to=httpx.Response)
    assert http.delete(f"{PATH}/{created['id']}").status_code == 204
    assert_envelope(http.get(f"{PATH}/{created['id']}"), 404)
    assert_envelope(http.delete(f"{PATH}/{created['id']}"), 404)


def test_async_transcription_failure_is_announced(
    http: httpx.Client,
    client: telnyx.Telnyx,
    receiver_factory,  # noqa: F811
) -> None:
    receiver = receiver_factory([200])
    r = http.post(PATH, data={"webhook_url": receiver.url}, files={"file": ("a.wav", b"RIFF....not audio")})
    assert r.status_code == 202, r.text
    transcription_id = r.json()["data"]["id"]
    receiver.wait(1)
    headers, body = receiver.requests[0]
    event = client.webhooks.unwrap(body, headers=headers, key=public_key(http))
    assert event.data is not None and event.data.event_type == "inferline.transcription.failed"
    failed = _wait(http, transcription_id)
    assert failed["status"] == "failed" and "could not be decoded" in failed["error"]
    assert json.loads(body)["data"]["payload"]["error"] == failed["error"]


@pytest.mark.parametrize(
    ("data", "status", "pointer"),
    [
        ({"webhook_url": "http://10.1.2.3/hook"}, 422, "/webhook_url"),  # not an allowed target
        ({"model_config[diarize]": "maybe"}, 400, "/model_config/diarize"),
        ({"model": "deepgram/nova-3"}, 400, "/model"),
        ({"response_format": "srt"}, 400, "/response_format"),
        ({"surprise": "1"}, 422, "/surprise"),
    ],
)
def test_bad_async_request_is_an_envelope(http: httpx.Client, data: dict, status: int, pointer: str) -> None:
    wav = audio.wav(audio.speech(TEXT))
    error = assert_envelope(http.post(PATH, data=data, files={"file": ("a.wav", wav)}), status)
    assert error["source"]["pointer"].startswith(pointer)
