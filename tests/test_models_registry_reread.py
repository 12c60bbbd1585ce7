"""The models registry read by every chat and embeddings request (to resolve its model) is kept fresh off the
request path while in use (`ModelService.refresh`, called by the API process's `CacheRefresher`): requests
arriving a second or more apart no longer each wait for a registry query. Unused, or after a local change
(`forget_cache`), the request reads it itself; a read started before a local change is not kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferline.areas.models.service import REGISTRY_TTL_SECONDS, ModelService
from inferline.ops.cache_refresh import CacheRefresher
from inferline.stores.db import Database
from tests.databases import DatabaseFactory


@pytest.fixture
def models(databases: DatabaseFactory, tmp_path: Path) -> Iterator[tuple[ModelService, list[str]]]:
    db = Database(databases.new("registry"))
    db.migrate()
    service = ModelService(tmp_path, db)
    readers: list[str] = []  # the thread of each database read
    read = service.registry.all

    def counted() -> list:  # type: ignore[type-arg]
        readers.append(threading.current_thread().name)
        return read()

    service.registry.all = counted  # type: ignore[method-assign]
    yield service, readers
    db.dispose()


def test_a_registry_in_use_is_read_by_the_refresher_not_the_requests(
    models: tuple[ModelService, list[str]],
) -> None:
    service, readers = models
    me = threading.current_thread().name
    assert service.registered() == [] and readers == [me]  # the first read is the caller's
    refresher = CacheRefresher([lambda: service.refresh(60)], interval=REGISTRY_TTL_SECONDS / 2)
    refresher.start()
    try:
        for _ in range(6):  # requests 0.6 s apart: each would find the read expired half of the time
            time.sleep(REGISTRY_TTL_SECONDS * 0.6)
            assert service.registered() == []
    finally:
        refresher.stop()
    assert readers[0] == me and len(readers) >= 3
    assert set(readers[1:]) == {"cache-refresh"}  # every later read was the refresher's


def test_an_unused_registry_is_not_read_and_a_forgotten_one_is_read_by_the_request(
    models: tuple[ModelService, list[str]],
) -> None:
    service, readers = models
    me = threading.current_thread().name
    service.registered()
    service._used -= 120
    service._cache = (time.monotonic() - 2 * REGISTRY_TTL_SECONDS, [])
    service.refresh(60)  # unused for two minutes: left to the next request
    assert readers == [me]
    service.registered()
    assert readers == [me, me]
    service.forget_cache()  # a local change: the next use must see it
    service.registered()
    assert readers == [me, me, me]


def test_a_read_started_before_a_local_change_is_not_kept(models: tuple[ModelService, list[str]]) -> None:
    service, _ = models
    service.registered()
    generation = service._generation
    service.forget_cache()
    service._read(generation)  # a refresh that began before `forget_cache`
    assert service._cache is None  # dropped: the next use reads again
