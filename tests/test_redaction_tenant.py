"""The per-tenant redaction default (`PUT /v2/admin/tenants/{id}/settings`, `inferline tenants settings`):
with it on, personal data never reaches the database for that tenant, whatever the request says (messages,
synchronous and asynchronous transcriptions, recordings, insight inputs); other tenants are unaffected."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import httpx
import numpy as np
import pytest
import telnyx

from inferline.config import Settings
from inferline.privacy.cli import cmd_settings
from inferline.privacy.redaction import redact, redact_words
from inferline.stores.audio_tables import SttTranscriptionJob
from inferline.stores.conversations_tables import ConversationMessage
from tests.audio_samples import VOICE_FILE, wav
from tests.conftest import LiveServer
from tests.test_foundation import assert_envelope

SECRET = "Card 4111 1111 1111 1111, mail jane@example.com, phone (415) 555-0134."
REDACTED = "Card [CARD], mail [EMAIL], phone [PHONE]."
# Piper speaks the digits (without its random noise, so the audio is the same every run); Whisper writes
# them back as "415 555 0134", a [PHONE].
SPOKEN = "My phone number is four one five, five five five, zero one three four."
MARKER = re.compile(r"\[PHONE\]")
ASYNC_PATH = "/inferline/transcriptions"


@cache
def spoken(text: str) -> bytes:
    """`text` spoken by the test Piper voice with its noise off: the same WAV every run."""
    from piper import PiperVoice, SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    voice = PiperVoice.load(VOICE_FILE)
    return wav(np.concatenate([c.audio_float_array for c in voice.synthesize(text, syn_config=config)]))


@dataclass
class Tenant:
    id: str
    sdk: telnyx.Telnyx
    http: httpx.Client


def _tenant(server: LiveServer, tenant_id: str) -> Iterator[Tenant]:
    _, key = server.container.keys.create(tenant_id, name="redaction")
    sdk = telnyx.Telnyx(api_key=key, base_url=server.v2, _strict_response_validation=True, max_retries=0)
    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {key}"}, timeout=300) as http:
        yield Tenant(tenant_id, sdk, http)


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    _, key = server.container.keys.create("redaction-admin", scope="admin")
    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {key}"}) as http:
        yield http


@pytest.fixture(scope="module")
def on(server: LiveServer, admin: httpx.Client) -> Iterator[Tenant]:
    """A tenant whose admin turned redaction on."""
    answer = admin.put("/admin/tenants/redacting-tenant/settings", json={"redact": True})
    assert answer.status_code == 200, answer.text
    yield from _tenant(server, "redacting-tenant")


@pytest.fixture(scope="module")
def off(server: LiveServer) -> Iterator[Tenant]:
    yield from _tenant(server, "plain-tenant")


def _stored_texts(server: LiveServer, conversation_id: str) -> list[str]:
    with server.container.db.session() as s:
        rows = s.query(ConversationMessage.text).filter_by(conversation_id=conversation_id)
        return [t for (t,) in rows.order_by(ConversationMessage.seq)]


def _texts(body: dict) -> str:
    """Every text of a verbose_json transcription: the text, segments' texts and words."""
    segments = body.get("segments") or []
    words = [w["word"] for s in segments for w in s.get("words") or []] + [
        w["word"] for w in body.get("words") or []
    ]
    return " ".join([body["text"], *(s["text"] for s in segments), *words])


def test_words_of_one_match_become_one_marker() -> None:
    words = [
        " mail",
        " jane@example.com,",
        " card",
        " 4111",
        "-1111",
        "-1111",
        "-1111",
        " or",
        " (415)",
        " 555",
        "-0134.",
    ]
    assert redact_words(words) == [
        (" mail", 0, 0),
        (" [EMAIL],", 1, 1),
        (" card", 2, 2),
        (" [CARD]", 3, 6),
        (" or", 7, 7),
        (" [PHONE].", 8, 10),
    ]
    assert redact_words([" no", " numbers"]) == [(" no", 0, 0), (" numbers", 1, 1)]


def test_admin_manages_the_default(server: LiveServer, admin: httpx.Client, settings: Settings) -> None:
    tenant = "settings-tenant"
    got = admin.get(f"/admin/tenants/{tenant}/settings")
    assert got.status_code == 200 and got.json()["data"]["redact"] is False  # unset: off
    put = admin.put(f"/admin/tenants/{tenant}/settings", json={"redact": True})
    assert put.status_code == 200 and put.json()["data"]["redact"] is True
    assert admin.put(f"/admin/tenants/{tenant}/settings", json={}).json()["data"]["redact"] is True  # kept
    assert admin.get(f"/admin/tenants/{tenant}/settings").json()["data"]["redact"] is True
    # The CLI reads and changes the same setting in the database.
    cmd_settings(settings, argparse.Namespace(tenant=tenant, redact="off", json=False))
    assert admin.get(f"/admin/tenants/{tenant}/settings").json()["data"]["redact"] is False

    error = assert_envelope(admin.put(f"/admin/tenants/{tenant}/settings", json={"redact": "maybe"}), 422)
    assert error["source"]["pointer"] == "/redact"
    assert_envelope(admin.put(f"/admin/tenants/{tenant}/settings", json={"colour": "red"}), 422)
    assert_envelope(admin.put(f"/admin/tenants/{'x' * 65}/settings", json={"redact": True}), 422)
    _, inference = server.container.keys.create(tenant, name="not admin")
    refused = httpx.put(
        f"{server.v2}/admin/tenants/{tenant}/settings",
        json={"redact": False},
        headers={"Authorization": f"Bearer {inference}"},
    )
    assert assert_envelope(refused, 403)["code"] == "10010"


def test_messages_are_redacted_by_default_and_the_request_cannot_opt_out(
    server: LiveServer, on: Tenant, off: Tenant
) -> None:
    conv = on.sdk.ai.conversations.create()
    on.sdk.ai.conversations.add_message(conv.id, role="user", content=SECRET)
    on.sdk.ai.conversations.add_message(conv.id, role="user", content=SECRET, extra_body={"redact": True})
    # An explicit opt-out is refused with a 400 naming it (not silently overruled), and nothing is stored.
    refused = on.http.post(
        f"/ai/conversations/{conv.id}/message", json={"role": "user", "content": SECRET, "redact": False}
    )
    assert assert_envelope(refused, 400)["source"]["pointer"] == "/redact"
    assert [m.text for m in on.sdk.ai.conversations.messages.list(conv.id)] == [REDACTED, REDACTED]
    assert _stored_texts(server, conv.id) == [REDACTED, REDACTED]
    # Another tenant's messages are stored as sent.
    other = off.sdk.ai.conversations.create()
    off.sdk.ai.conversations.add_message(other.id, role="user", content=SECRET)
    assert _stored_texts(server, other.id) == [SECRET]


@pytest.mark.slow
def test_transcripts_are_redacted_by_default(server: LiveServer, on: Tenant, off: Tenant) -> None:
    audio = spoken(SPOKEN)
    form = {"model": "openai/whisper-tiny.en", "response_format": "verbose_json"}
    words = {**form, "timestamp_granularities[]": "word"}

    plain = off.http.post("/ai/audio/transcriptions", data=form, files={"file": ("a.wav", audio)})
    assert plain.status_code == 200, plain.text
    assert redact(plain.json()["text"]).counts == {"PHONE": 1}, plain.json()["text"]  # the audio has one
    assert "x-inferline-redacted" not in plain.headers

    # Synchronous: text, segments and words (one [PHONE] word spanning the digits' times), no tokens.
    answer = on.http.post("/ai/audio/transcriptions", data=words, files={"file": ("a.wav", audio)})
    assert answer.status_code == 200 and answer.headers["x-inferline-redacted"] == "true"
    body = answer.json()
    assert MARKER.search(body["text"]) and not re.search(r"\d", _texts(body)), _texts(body)
    assert any(MARKER.match(w["word"]) for w in body["words"])
    assert all(not s["tokens"] for s in body["segments"] if MARKER.search(s["text"]))

    # A synchronous or asynchronous request that says redact=false is refused (400 at /redact), not overruled.
    for path in ("/ai/audio/transcriptions", ASYNC_PATH):
        refused = on.http.post(path, data={**words, "redact": "false"}, files={"file": ("a.wav", audio)})
        assert assert_envelope(refused, 400)["source"]["pointer"] == "/redact"

    # Asynchronous: the stored result holds no original.
    created = on.http.post(ASYNC_PATH, data=words, files={"file": ("a.wav", audio)}).json()["data"]
    deadline = time.monotonic() + 120
    while (job := on.http.get(f"{ASYNC_PATH}/{created['id']}").json()["data"])["status"] == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert job["status"] == "completed" and MARKER.search(job["result"]["text"])
    with server.container.db.session() as s:
        stored = s.get(SttTranscriptionJob, created["id"])
        assert stored is not None and not re.search(r"\d", _texts(stored.result)), stored.result

    # A recording that says redact=false is refused before anything is stored; one without `redact` becomes
    # a conversation without the number.
    refused = on.http.post(
        "/ai/conversations/recordings",
        files={"file": ("call.wav", audio, "audio/wav")},
        data={"mode": "diarize", "redact": "false"},
    )
    assert assert_envelope(refused, 400)["source"]["pointer"] == "/redact"
    recording = on.http.post(
        "/ai/conversations/recordings",
        files={"file": ("call.wav", audio, "audio/wav")},
        data={"mode": "diarize"},
    )
    assert recording.status_code == 200, recording.text
    data = recording.json()["data"]
    assert data["conversation"]["metadata"]["redacted"] == "true"
    texts = _stored_texts(server, data["conversation"]["id"])
    assert MARKER.search(" ".join(texts)) and not any(redact(t).counts for t in texts)


@pytest.mark.slow
def test_messages_stored_before_the_default_are_redacted_on_the_way_to_the_insight_model(
    server: LiveServer, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_insights_e2e import wait_run

    runs = server.container.insight_runs
    real, seen = runs.chat, []

    class Spy:  # records what the insight model is sent, then asks the real chat service
        def complete_text(self, tenant_id: str, messages: list, **kwargs: object) -> str:  # type: ignore[type-arg]
            seen.append((tenant_id, json.dumps(messages)))
            return real.complete_text(tenant_id, messages, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runs, "chat", Spy())
    for tenant in _tenant(server, "late-redaction-tenant"):
        conv = tenant.sdk.ai.conversations.create()
        tenant.sdk.ai.conversations.add_message(conv.id, role="user", content=SECRET)  # default still off
        assert admin.put(f"/admin/tenants/{tenant.id}/settings", json={"redact": True}).status_code == 200
        template = tenant.sdk.ai.conversations.insights.create(name="ask", instructions="What is asked?").data
        group = tenant.sdk.ai.conversations.insight_groups.insight_groups(name="late").data
        tenant.sdk.ai.conversations.insight_groups.insights.assign(template.id, group_id=group.id)
        tenant.sdk.ai.conversations.add_message(
            conv.id,
            role="assistant",
            content="Thanks.",
            metadata={"end_of_conversation": True, "insight_group_id": group.id},
        )
        (done, _) = wait_run(tenant.sdk, conv.id, 1)
        assert done[0].status == "completed", done[0].model_dump()
    sent = [text for tenant_id, text in seen if tenant_id == "late-redaction-tenant"]
    assert sent and all("[CARD]" in t and "4111" not in t and "jane@" not in t for t in sent), sent
    assert _stored_texts(server, conv.id)[0] == SECRET  # the row itself is as it was stored


def test_a_per_request_flag_still_redacts_for_a_tenant_without_the_default(
    server: LiveServer, off: Tenant
) -> None:
    conv = off.sdk.ai.conversations.create()
    off.sdk.ai.conversations.add_message(conv.id, role="user", content=SECRET, extra_body={"redact": True})
    assert _stored_texts(server, conv.id) == [REDACTED]


def test_bad_redact_flag_on_a_transcription_is_a_422(http: httpx.Client) -> None:
    audio = wav(np.zeros(1600, dtype=np.float32), 16000)
    for path in ("/ai/audio/transcriptions", ASYNC_PATH):
        answer = http.post(path, data={"redact": "maybe"}, files={"file": ("a.wav", audio)})
        assert assert_envelope(answer, 422)["source"]["pointer"] == "/redact"


def test_concurrent_first_settings_of_a_tenant_all_succeed(admin: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def put(n: int) -> int:
        tenant = f"racing-tenant-{n // 8}"
        return admin.put(f"/admin/tenants/{tenant}/settings", json={"redact": n % 2 == 0}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(put, range(32))) == {200}
