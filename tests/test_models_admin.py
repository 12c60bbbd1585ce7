"""`/v2/admin/models`: the model registry over HTTP for admin-scoped keys (list, show, register from a path on
the server, remove); every other key gets 403 code 10010. Runs against the server of test_models_tenants (its
own models directory, so nothing is registered into the shared test models)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import telnyx

from inferline.areas.models.registry import ModelRegistry
from inferline.stores.db import Database
from tests import audio_samples as audio
from tests.conftest import API_KEY
from tests.databases import DatabaseFactory
from tests.test_models_tenants import HELLO, VOICE_DIR, Server, serve


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory, databases)


def test_admin_registers_lists_and_removes_models(registry_server: Server, tmp_path: Path) -> None:
    server = registry_server
    source = tmp_path / "voice"
    source.mkdir()
    shutil.copyfile(VOICE_DIR / "voice.onnx", source / "en_US-joe-medium.onnx")
    shutil.copyfile(VOICE_DIR / "voice.onnx.json", source / "en_US-joe-medium.onnx.json")
    registration = {"source": str(source), "id": "admin/joe"}
    for key in (API_KEY, server.key_b):  # inference keys of both tenants: 403 for every method
        for method, path, body in (
            ("GET", "/models", None),
            ("GET", "/models/acme/minilm", None),
            ("POST", "/models", registration),
            ("DELETE", "/models/acme/minilm", None),
        ):
            denied = httpx.request(
                method, server.url + "/v2/admin" + path, json=body, headers={"Authorization": f"Bearer {key}"}
            )
            assert denied.status_code == 403 and denied.json()["errors"][0]["code"] == "10010"
    assert server.container.models.registry.get("acme/minilm") is not None
    _, admin_key = server.container.keys.create("ops", scope="admin")
    admin = httpx.Client(
        base_url=server.url + "/v2/admin", headers={"Authorization": f"Bearer {admin_key}"}, timeout=120
    )
    created = admin.post("/models", json=registration)
    assert created.status_code == 201, created.text
    record = created.json()["data"]
    assert (record["id"], record["kind"], record["state"]) == ("admin/joe", "tts", "installed")
    folder = server.container.models.models_dir / "admin--joe"
    assert {f["name"] for f in record["files"]} == {"voice.onnx", "voice.onnx.json"}
    assert all((folder / f["name"]).is_file() for f in record["files"])
    assert "admin/joe" in {m.id for m in server.telnyx().ai.openai.list_models().data}
    listed = {m["id"]: m for m in admin.get("/models").json()["data"]}
    assert listed["admin/joe"]["state"] == "installed" and listed["acme/minilm"]["kind"] == "embeddings"
    assert admin.get("/models/admin/joe").json()["data"]["source"] == str(source)
    # What cannot be registered is a 422 naming the field.
    for body, pointer in (
        ({"source": str(tmp_path / "nothing")}, "/source"),
        (registration, "/id"),  # the name is taken
        ({"source": str(source), "id": "admin/joe2", "settings": {"context": 4096}}, "/settings"),
    ):
        refused = admin.post("/models", json=body)
        error = refused.json()["errors"][0]
        assert (refused.status_code, error["code"], error["source"]) == (422, "10004", {"pointer": pointer})
    removed = admin.delete("/models/admin/joe")
    assert removed.status_code == 200 and removed.json()["data"]["state"] == "removed"
    assert not folder.exists() and admin.get("/models/admin/joe").status_code == 404
    assert admin.delete("/models/admin/joe").status_code == 404
    packaged = admin.delete("/models/sentence-transformers/all-MiniLM-L6-v2")
    assert packaged.status_code == 422 and "packaged" in packaged.json()["errors"][0]["detail"]


def test_voices_follow_the_registry_while_the_server_runs(registry_server: Server, tmp_path: Path) -> None:
    """A Piper voice registered after the voices were first listed is listed and speaks at once; removed
    (here by another process sharing the database, as `inferline models remove`), it is listed and usable no
    more."""
    server = registry_server
    client = server.telnyx()
    before = {v.voice_id for v in client.text_to_speech.list_voices().voices or []}  # voices read now
    voice_id = "Telnyx.Piper.live-voice"  # a second copy of joe: named after its model id
    assert voice_id not in before
    source = tmp_path / "voice"
    source.mkdir()
    shutil.copyfile(VOICE_DIR / "voice.onnx", source / "en_US-joe-medium.onnx")
    shutil.copyfile(VOICE_DIR / "voice.onnx.json", source / "en_US-joe-medium.onnx.json")
    _, admin_key = server.container.keys.create("ops-voices", scope="admin")
    admin = httpx.Client(
        base_url=server.url + "/v2/admin", headers={"Authorization": f"Bearer {admin_key}"}, timeout=120
    )
    created = admin.post("/models", json={"source": str(source), "id": "admin/live-voice"})
    assert created.status_code == 201, created.text
    listed = {v.voice_id: v for v in client.text_to_speech.list_voices().voices or []}
    assert set(listed) == before | {voice_id} and listed[voice_id].language == "en-US"
    raw = client.text_to_speech.with_raw_response.generate_speech(
        text=HELLO, voice=voice_id, telnyx={"response_format": "wav"}
    )
    assert raw.headers["x-inferline-voice"] == voice_id
    heard = server.telnyx(server.key_b).ai.audio.transcribe(  # tenant B's Whisper model
        model="acme/whisper-b", file=("v.wav", raw.http_response.content)
    )
    assert audio.words(heard.text) == audio.words(HELLO)

    other = Database(server.container.settings.resolved_database_url)  # another process's registry
    try:
        ModelRegistry(other, server.container.models.models_dir).remove("admin/live-voice")
    finally:
        other.dispose()
    deadline = time.monotonic() + 30  # other processes' changes are read within the registry's TTL
    while voice_id in {v.voice_id for v in client.text_to_speech.list_voices().voices or []}:
        assert time.monotonic() < deadline, "the removed voice is still listed"
        time.sleep(0.2)
    with pytest.raises(telnyx.BadRequestError, match="not available"):
        client.text_to_speech.generate_speech(text=HELLO, voice=voice_id, output_type="base64_output")
