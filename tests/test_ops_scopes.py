"""Scoped keys (issue 18): admin / inference / read against read, write and admin endpoints; the admin
endpoints."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import telnyx
import websockets.exceptions

from tests.conftest import LiveServer

EXPECTED = {  # scope -> (GET /ai/models, POST /ai/conversations, GET /admin/keys)
    "admin": (200, 200, 200),
    "inference": (200, 200, 403),
    "read": (200, 403, 403),
}


def _sdk(server: LiveServer, key: str) -> telnyx.Telnyx:
    return telnyx.Telnyx(api_key=key, base_url=server.v2, _strict_response_validation=True, max_retries=0)


@pytest.mark.parametrize("scope", sorted(EXPECTED))
def test_scope_matrix(server: LiveServer, scope: str) -> None:
    _, key = server.container.keys.create(f"scoped-{scope}", name=scope, scope=scope)
    sdk = _sdk(server, key)
    _, write, admin = EXPECTED[scope]

    assert sdk.ai.openai.list_models().data is not None  # read: every scope
    if write == 200:
        assert sdk.ai.conversations.create(name="scoped").id
    else:
        with pytest.raises(telnyx.PermissionDeniedError) as refused:
            sdk.ai.conversations.create(name="scoped")
        assert refused.value.status_code == 403
        assert refused.value.body["errors"][0]["code"] == "10010"
    got = httpx.get(f"{server.v2}/admin/keys", headers={"Authorization": f"Bearer {key}"})
    assert got.status_code == admin, got.text
    if admin == 403:
        error = got.json()["errors"][0]
        assert error["code"] == "10010" and error["title"] == "Authorization failed"


def test_existing_keys_default_to_inference(server: LiveServer) -> None:
    for key in (server.key_a, server.key_b):  # seeded and created without a scope
        assert server.container.keys.authenticate(key).scope == "inference"


def test_admin_endpoints_manage_keys_limits_and_tenants(server: LiveServer) -> None:
    _, admin = server.container.keys.create("ops-admin", scope="admin")
    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {admin}"}) as http:
        created = http.post("/admin/keys", json={"tenant_id": "ops-new", "name": "console", "scope": "read"})
        assert created.status_code == 201, created.text
        body = created.json()["data"]
        assert body["scope"] == "read" and body["tenant_id"] == "ops-new" and body["key"].startswith("KEY")
        listed = http.get("/admin/keys", params={"tenant_id": "ops-new"}).json()["data"]
        assert [k["id"] for k in listed] == [body["id"]] and "key" not in listed[0]  # the secret: shown once
        assert _sdk(server, body["key"]).ai.openai.list_models().data is not None

        limits = http.put("/admin/tenants/ops-new/limits", json={"chat_requests": 5, "window_seconds": 30})
        assert limits.status_code == 200, limits.text
        assert limits.json()["data"]["chat_requests"] == 5 and limits.json()["data"]["window_seconds"] == 30
        tenants = {t["id"]: t for t in http.get("/admin/tenants").json()["data"]}
        assert tenants["ops-new"]["active_keys"] == 1 and tenants["ops-new"]["limits"]["chat_requests"] == 5
        bad = http.put("/admin/tenants/ops-new/limits", json={"chat_requests": -1})
        assert bad.status_code == 422 and bad.json()["errors"][0]["code"] == "10004"
        bad_scope = http.post("/admin/keys", json={"tenant_id": "x", "scope": "root"})
        assert bad_scope.status_code == 422
        assert http.delete("/admin/tenants/ops-new/limits").status_code == 200
        assert http.get("/admin/tenants/ops-new/limits").status_code == 404

        revoked = http.delete(f"/admin/keys/{body['id']}")
        assert revoked.status_code == 200 and revoked.json()["data"]["revoked_at"]
    with pytest.raises(telnyx.AuthenticationError):
        _sdk(server, body["key"]).ai.openai.list_models()


def test_tts_websocket_needs_an_inference_key(server: LiveServer) -> None:
    """The WebSocket handshake is a GET, but it synthesizes: a `read` key is refused with the reason, an
    `inference` key speaks, and the characters are metered for that key."""
    voice = {"voice": "Telnyx.Piper.en_US-joe-medium", "audio_format": "pcm"}
    _, read = server.container.keys.create("scoped-tts", scope="read")
    info, inference = server.container.keys.create("scoped-tts", scope="inference")
    with (
        pytest.raises(websockets.exceptions.InvalidStatus) as refused,
        _sdk(server, read).text_to_speech.stream(extra_query=voice),
    ):
        pass
    assert refused.value.response.status_code == 403
    error = json.loads(refused.value.response.body)["errors"][0]
    assert error["code"] == "10010" and "'read' scope" in error["detail"]

    with _sdk(server, inference).text_to_speech.stream(extra_query=voice) as conn:
        conn.send({"text": "Hello there."})
        events = []
        for event in conn:
            events.append(event.type)
            if event.type in ("final", "error"):
                break
    assert events[0] == "audio_chunk" and events[-1] == "final"
    deadline = time.monotonic() + 30  # metered once the server has seen the socket close
    while True:
        rows = server.container.usage.report("scoped-tts", by="key")
        metered = [(r["key_id"], r["quantity"]) for r in rows if r["metric"] == "tts_characters"]
        if metered or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert metered == [(info.id, len("Hello there."))]
