"""Accepted API keys are cached per process for `AUTH_CACHE_SECONDS` (1 s): a key revoked by another replica
stops working here within that time, and at once on the replica that revoked it (tests/test_foundation.py)."""

from __future__ import annotations

import time

import pytest
import telnyx

from inferline.keys import AUTH_CACHE_SECONDS, ApiKeyService
from inferline.stores.db import Database
from tests.conftest import LiveServer


def test_key_revoked_by_another_replica_stops_working_within_the_cache_time(server: LiveServer) -> None:
    info, secret = server.container.keys.create("tenant-revoked-elsewhere", name="revoked by a replica")
    sdk = telnyx.Telnyx(api_key=secret, base_url=server.v2, max_retries=0)
    assert sdk.ai.openai.list_models().data  # accepted, so now cached by the server

    replica = Database(server.container.db.url)  # another process's view of the same database
    try:
        ApiKeyService(replica).revoke(info.id)
    finally:
        replica.engine.dispose()

    deadline = time.monotonic() + 3 * AUTH_CACHE_SECONDS
    while True:
        try:
            sdk.ai.openai.list_models()
        except telnyx.AuthenticationError:
            break
        assert time.monotonic() < deadline, "a key revoked elsewhere was still accepted after 3 s"
        time.sleep(0.05)
    for _ in range(3):  # and it stays refused
        with pytest.raises(telnyx.AuthenticationError):
            sdk.ai.openai.list_models()


def test_cached_key_still_names_its_own_tenant(server: LiveServer) -> None:
    """Two tenants' keys used alternately: each request sees its own tenant's resources, cached or not."""
    _, secret_c = server.container.keys.create("tenant-cache-c", name="c")
    _, secret_d = server.container.keys.create("tenant-cache-d", name="d")
    c = telnyx.Telnyx(api_key=secret_c, base_url=server.v2, max_retries=0)
    d = telnyx.Telnyx(api_key=secret_d, base_url=server.v2, max_retries=0)
    c.ai.conversations.create(name="only-c")
    for _ in range(3):
        assert [x.name for x in c.ai.conversations.list().data] == ["only-c"]
        assert d.ai.conversations.list().data == []
