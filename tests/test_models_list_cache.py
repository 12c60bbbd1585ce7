"""The models list is cached per tenant for `REGISTRY_TTL_SECONDS` (1 s): a model registered or a fine-tune
finished by another replica (another process's view of the same database) shows up in the list within that
time, and disappears again when removed there; other tenants never see a tenant's fine-tune."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import openai
import telnyx

from inferline.areas.models.registry import ModelRegistry
from inferline.areas.models.service import REGISTRY_TTL_SECONDS
from inferline.stores.db import Database
from inferline.stores.fine_tuning_tables import FineTuningJob
from tests.conftest import MODELS_DIR, LiveServer
from tests.fine_tunes import succeeded_fine_tune

VOICE_DIR = MODELS_DIR / "rhasspy--piper-en_US-joe-medium"
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def listed(sdk: telnyx.Telnyx) -> set[str]:
    return {m.id for m in sdk.ai.openai.list_models().data}


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll until `condition()`; fail if it is still false after several cache lifetimes."""
    deadline = time.monotonic() + 5 * REGISTRY_TTL_SECONDS
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_model_registered_by_another_replica_is_listed_within_the_cache_time(
    server: LiveServer, client: telnyx.Telnyx, tmp_path: Path
) -> None:
    source = tmp_path / "voices"
    source.mkdir()
    (source / "en_US-cache-test.onnx").symlink_to(VOICE_DIR / "voice.onnx")
    (source / "en_US-cache-test.onnx.json").symlink_to(VOICE_DIR / "voice.onnx.json")
    model_id = "local/cache-test-voice"
    assert model_id not in listed(client)  # the list is now cached by the server

    replica = Database(server.container.db.url)
    registry = ModelRegistry(replica, server.container.models.models_dir)
    try:
        registry.add(str(source), model_id=model_id, kind="tts", link=True)
        try:
            wait_until(lambda: model_id in listed(client), "a model registered elsewhere was not listed")
        finally:
            registry.remove(model_id)
        wait_until(lambda: model_id not in listed(client), "a model removed elsewhere was still listed")
    finally:
        replica.engine.dispose()


def test_fine_tune_finished_by_another_replica_is_listed_within_the_cache_time(
    server: LiveServer, client: telnyx.Telnyx, client_b: telnyx.Telnyx
) -> None:
    tenant = server.container.keys.authenticate(server.key_a).tenant_id
    model_id = f"ft:{BASE}:cache-test:0123abcd"
    adapter = Path(tenant) / "cache-test.gguf"
    path = server.container.fine_tuning.adapters_dir / adapter
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF")  # the list only needs the adapter file to exist
    assert model_id not in listed(client) and model_id not in listed(client_b)  # both lists now cached

    replica = Database(server.container.db.url)
    try:
        with replica.session() as s:
            job = succeeded_fine_tune(tenant, BASE, model_id, str(adapter))
            s.add(job)
            s.flush()
            job_id = job.id
        try:
            wait_until(lambda: model_id in listed(client), "a fine-tune finished elsewhere was not listed")
            oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0)
            assert oai.models.retrieve(model_id).owned_by == tenant
            assert model_id not in listed(client_b)
        finally:
            with replica.session() as s:
                row = s.get(FineTuningJob, job_id)
                if row is not None:
                    s.delete(row)
            path.unlink()
        wait_until(lambda: model_id not in listed(client), "a deleted fine-tune was still listed")
    finally:
        replica.engine.dispose()
