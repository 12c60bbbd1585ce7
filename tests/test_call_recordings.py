"""A call recording becomes a conversation in one request (`POST /v2/ai/conversations/recordings`, inferline
extension): a stereo WAV made by the local voice → messages with roles, timestamps and channels → the insight
group's run → a signed webhook verified with the telnyx SDK. Also role mapping, diarized mono, redaction of
the recording path, and bad input."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import telnyx

from inferline.privacy.redaction import redact
from inferline.stores.conversations_tables import ConversationMessage
from tests.audio_samples import RATE, speech, wav
from tests.conftest import LiveServer
from tests.test_insights_e2e import wait_run
from tests.test_insights_webhooks import Receiver, public_key

CUSTOMER = "Hello, my parcel has not arrived after two weeks."
AGENT = "Sorry about that. I have sent a replacement today."
URL = "/ai/conversations/recordings"


def stereo(first: str, second: str) -> bytes:
    """Channel 0 says `first`, then channel 1 `second` after a short pause."""
    a, b = speech(first), speech(second)
    gap = np.zeros(int(0.6 * RATE), dtype=np.float32)
    left = np.concatenate([a, gap, np.zeros_like(b)])
    right = np.concatenate([np.zeros_like(a), gap, b])
    return wav([left, right])


def post(http: httpx.Client, audio: bytes, **fields: str) -> httpx.Response:
    return http.post(URL, files={"file": ("call.wav", audio, "audio/wav")}, data=fields, timeout=300)


@pytest.mark.slow
def test_stereo_recording_to_verified_webhook(
    server: LiveServer, client: telnyx.Telnyx, http: httpx.Client
) -> None:
    receiver = Receiver([200])
    try:
        template = client.ai.conversations.insights.create(
            name="issue", instructions="What is the customer's problem?", extra_body={"evidence": True}
        ).data
        group = client.ai.conversations.insight_groups.insight_groups(name="calls", webhook=receiver.url).data
        client.ai.conversations.insight_groups.insights.assign(template.id, group_id=group.id)
        answer = post(
            http,
            stereo(CUSTOMER, AGENT),  # the same audio every run (`audio_samples`): the words asserted below
            metadata=json.dumps({"call_control_id": "v3:rec-call"}),
            insight_group_id=group.id,
        )
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        conv_id = data["conversation"]["id"]
        meta = data["conversation"]["metadata"]
        assert meta["call_control_id"] == "v3:rec-call" and meta["recording_channels"] == "2"
        assert meta["recording_mode"] == "multichannel" and meta["insight_group_id"] == group.id
        assert data["insight_run"]["status"] == "pending"

        messages = list(client.ai.conversations.messages.list(conv_id))  # strict SDK types
        assert [m.role for m in messages] == ["user", "assistant"]
        assert [m.metadata["channel"] for m in messages if m.metadata] == [0, 1]
        assert "parcel" in messages[0].text.lower() and "replacement" in messages[1].text.lower()
        first, second = (m.metadata or {} for m in messages)
        assert 0 <= first["start_ms"] < first["end_ms"] <= second["start_ms"] < second["end_ms"]  # type: ignore[operator]
        assert second["end_ms"] <= int(meta["recording_duration_ms"]) + 100  # type: ignore[operator]

        (runs, _seen) = wait_run(client, conv_id, 1)
        assert runs[0].status == "completed", runs[0].model_dump()
        receiver.wait(1, timeout=60)
        headers, body = receiver.requests[0]
        event = client.webhooks.unwrap(body, headers=headers, key=public_key(http))
        assert event.data is not None and event.data.event_type == "call.conversation_insights.generated"
        payload = event.data.payload
        assert payload is not None and payload.conversation_id == conv_id
        assert payload.call_control_id == "v3:rec-call"
        (result,) = json.loads(body)["data"]["payload"]["results"]
        assert result["insight_id"] == template.id and result["evidence"]
        ids = {str(m["id"]) for m in http.get(f"/ai/conversations/{conv_id}/messages").json()["data"]}
        for item in result["evidence"]:
            assert item["message_id"] in ids and item["end_ms"] > item["start_ms"]
    finally:
        receiver.close()


@pytest.mark.slow
def test_roles_are_configurable_and_redaction_keeps_originals_out(
    server: LiveServer, client: telnyx.Telnyx, http: httpx.Client
) -> None:
    answer = post(
        http,
        stereo(
            "Please call me back on four one five, five five five, zero one three four.",
            "Sure, I will call you back today.",
        ),
        channel_roles=json.dumps({"0": "assistant", "1": "user"}),
        redact="true",
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert [m["role"] for m in data["messages"]] == ["assistant", "user"]
    assert data["conversation"]["metadata"]["redacted"] == "true" and data["insight_run"] is None
    with server.container.db.session() as s:
        stored = s.query(ConversationMessage.text).filter_by(conversation_id=data["conversation"]["id"]).all()
    assert stored and all(not redact(t).counts for (t,) in stored)  # nothing left to redact
    assert any("[PHONE]" in t for (t,) in stored), stored  # and the number was there to be redacted


@pytest.mark.slow
def test_mono_recording_is_diarized(client: telnyx.Telnyx, http: httpx.Client) -> None:
    from tests.speakers import RATE as SPEAKER_RATE
    from tests.speakers import conversation, espeak_available

    if not espeak_available():
        pytest.skip("espeak-ng (make models-test) gives the second voice")
    mono, _turns = conversation([(0, CUSTOMER), (1, AGENT)])
    answer = post(http, wav(mono, SPEAKER_RATE))
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["conversation"]["metadata"]["recording_mode"] == "diarize"
    assert data["messages"] and all("speaker" in m["metadata"] for m in data["messages"])
    assert {m["role"] for m in data["messages"]} <= {"user", "assistant"}


def test_bad_recording_requests(http: httpx.Client, client_b: telnyx.Telnyx) -> None:
    audio = wav(np.zeros(1600, dtype=np.float32), 16000)
    cases = [
        (http.post(URL, data={"mode": "auto"}), 400, "/file"),
        (
            http.post(URL, files={"file": ("a.wav", audio)}, data={"file_url": "https://x.test/a.wav"}),
            400,
            "/file",
        ),
        (post(http, audio, mode="loud"), 422, "/mode"),
        (post(http, audio, channel_roles='{"0": "agent"}'), 422, "/channel_roles"),
        (post(http, audio, channel_roles="[1]"), 400, "/channel_roles"),
        (post(http, audio, metadata='{"a": 1}'), 422, "/metadata"),
        (post(http, audio, redact="maybe"), 422, "/redact"),
        (post(http, audio, colour="red"), 400, "/colour"),
        (http.post(URL, json={"file_url": "x"}), 400, "/file"),
    ]
    for response, status, pointer in cases:
        assert response.status_code == status, response.text
        assert response.json()["errors"][0]["source"]["pointer"] == pointer
    other = client_b.ai.conversations.insight_groups.insight_groups(name="not yours").data
    missing = post(http, audio, insight_group_id=other.id)  # checked before transcribing
    assert missing.status_code == 404
    silent = post(http, audio)
    assert silent.status_code == 400 and "No speech" in silent.json()["errors"][0]["detail"]
