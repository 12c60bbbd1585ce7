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


class Clock:
    """The service's clock, moved by the test: the lifetimes below do not depend on how fast threads run."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def models(databases: DatabaseFactory, tmp_path: Path) -> Iterator[tuple[ModelService, list[str], Clock]]:
    db = Database(databases.new("registry"))
    db.migrate()
    clock = Clock()
    service = ModelService(tmp_path, db, clock=clock)
    readers: list[str] = []  # who made each database read: "request", or "refresher" (`service.refresh`)
    read = service.registry.all

    def counted() -> list:  # type: ignore[type-arg]
        readers.append(getattr(service, "reader", "request"))
        return read()

    service.registry.all = counted  # type: ignore[method-assign]
    yield service, readers, clock
    db.dispose()


def test_a_registry_in_use_is_read_by_the_refresher_not_the_requests(
    models: tuple[ModelService, list[str], Clock],
) -> None:
    """Requests 0.6 s apart (each would find a read made on demand expired half of the time) while the
    refresher runs every half lifetime, as `CacheRefresher` calls it: after the first, every read is the
    refresher's."""
    service, readers, clock = models
    start = clock.now
    assert service.registered() == [] and readers == ["request"]  # the first read is the caller's
    interval = REGISTRY_TTL_SECONDS / 2
    refreshes = [start + interval * (i + 1) for i in range(8)]
    requests = [start + REGISTRY_TTL_SECONDS * 0.6 * (i + 1) for i in range(6)]
    for at, who in sorted([(t, "refresher") for t in refreshes] + [(t, "request") for t in requests]):
        clock.now = at
        if who == "refresher":
            service.reader = "refresher"  # type: ignore[attr-defined]
            service.refresh(60)
            del service.reader  # type: ignore[attr-defined]
        else:
            assert service.registered() == []
    assert readers[0] == "request" and len(readers) == 1 + len(refreshes)
    assert set(readers[1:]) == {"refresher"}  # every later read was the refresher's


def test_the_cache_refresher_calls_its_refreshers_until_stopped() -> None:
    calls: list[str] = []
    refresher = CacheRefresher([lambda: calls.append(threading.current_thread().name)], interval=0.02)
    refresher.start()
    deadline = time.monotonic() + 30
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    refresher.stop()
    stopped = len(calls)
    time.sleep(0.1)
    assert stopped >= 3 and set(calls) == {"cache-refresh"} and len(calls) == stopped


def test_an_unused_registry_is_not_read_and_a_forgotten_one_is_read_by_the_request(
    models: tuple[ModelService, list[str], Clock],
) -> None:
    service, readers, clock = models
    service.registered()
    clock.now += 120  # unused for two minutes: left to the next request
    service.refresh(60)
    assert readers == ["request"]
    service.registered()
    assert readers == ["request", "request"]
    service.forget_cache()  # a local change: the next use must see it
    service.registered()
    assert readers == ["request"] * 3


def test_a_read_started_before_a_local_change_is_not_kept(
    models: tuple[ModelService, list[str], Clock],
) -> None:
    service, _, _ = models
    service.registered()
    generation = service._generation
    service.forget_cache()
    service._read(generation)  # a refresh that began before `forget_cache`
    assert service._cache is None  # dropped: the next use reads again
