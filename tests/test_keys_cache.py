"""Accepted API keys are cached per process for `AUTH_CACHE_SECONDS` (1 s): a key revoked by another replica
stops working here within that time, and at once on the replica that revoked it (tests/test_foundation.py).
The keys in use are re-read in the background (`ops.cache_refresh`), so their requests never wait for the
database."""

from __future__ import annotations

import time

import pytest
import telnyx

from inferline.errors import AuthenticationFailed
from inferline.keys import AUTH_CACHE_SECONDS, ApiKeyService
from inferline.keys import _hash as _digest
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


def _age(entry: object, seconds: float) -> None:
    """Make a cache entry look read `seconds` ago (instead of waiting for it)."""
    entry.read_at -= seconds  # type: ignore[attr-defined]


def test_a_key_in_use_stays_in_memory_and_a_revoked_one_is_dropped_by_the_refresh(server: LiveServer) -> None:
    """Read on demand, a key used less often than the cache time (a voice agent's turn every few seconds)
    waited for the database on every request: ~1.4 ms of a chat's time to first token. The refresh re-reads
    the keys in use in one query and keeps them trusted; a key revoked elsewhere is dropped by it, and one
    unused for `idle_seconds` is dropped too."""
    keys = ApiKeyService(server.container.db)
    info, secret = keys.create("tenant-refresh", name="refreshed")
    _, other_secret = keys.create("tenant-refresh", name="idle")
    assert keys.authenticate(secret).key_id == info.id
    keys.authenticate(other_secret)
    for entry in keys._accepted.values():
        _age(entry, 2 * AUTH_CACHE_SECONDS)
    assert keys.cached(secret) is None  # expired: the request path would read the database

    keys._accepted[_digest(other_secret)].used_at -= 1000  # unused for longer than idle_seconds
    keys.refresh(idle_seconds=300)
    principal = keys.cached(secret)
    assert principal is not None and principal.key_id == info.id  # trusted again, from memory
    assert _digest(other_secret) not in keys._accepted

    replica = Database(server.container.db.url)
    try:
        ApiKeyService(replica).revoke(info.id)
    finally:
        replica.engine.dispose()
    keys.refresh(idle_seconds=300)
    assert keys.cached(secret) is None
    with pytest.raises(AuthenticationFailed):
        keys.authenticate(secret)


def test_the_server_refreshes_the_keys_in_use(server: LiveServer) -> None:
    """The API process runs the refresh: an expired entry of a key in use is trusted again without a
    request reading the database (polled, not timed)."""
    _, secret = server.container.keys.create("tenant-refresh-live", name="live")
    sdk = telnyx.Telnyx(api_key=secret, base_url=server.v2, max_retries=0)
    assert sdk.ai.openai.list_models().data
    keys = server.container.keys
    _age(keys._accepted[_digest(secret)], 10 * AUTH_CACHE_SECONDS)
    assert keys.cached(secret) is None
    keys._accepted[_digest(secret)].used_at = time.monotonic()  # still in use
    deadline = time.monotonic() + 30
    while keys.cached(secret) is None:
        assert time.monotonic() < deadline, "the server never refreshed a key in use"
        time.sleep(0.05)
