"""Limits across API replicas (issue 18): two `inferline serve` processes on one database (a SQLite file both
open, or PostgreSQL with INFERLINE_TEST_DATABASE_URL) share one rate limit, counted in `rate_counters`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import telnyx

from inferline.keys import ApiKeyService
from inferline.ops.limits import LimitService
from inferline.stores.db import Database
from tests.databases import DatabaseFactory
from tests.procs import Proc, Processes, base_env

KEY = "KEYreplicas-0123456789abcdef"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
LIMIT = 4
WINDOW = 3600  # one window for the whole test (a boundary is avoided below)


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory
) -> Iterator[tuple[list[Proc], Database]]:
    procs = Processes(tmp_path_factory.mktemp("replica-logs"))
    url = databases.new("replicas")
    try:
        starting = [
            procs.spawn_server(
                f"api{n}",
                base_env(
                    tmp_path_factory.mktemp(f"api{n}"),
                    url,
                    INFERLINE_API_KEY=KEY,
                    INFERLINE_EMBEDDED_WORKER="false",
                ),
            )
            for n in (1, 2)
        ]
        apis = [procs.wait_healthy(p) for p in starting]
        db = Database(url)
        yield apis, db
        db.dispose()
    finally:
        procs.stop_all()


def _sdk(api: Proc) -> telnyx.Telnyx:
    return telnyx.Telnyx(
        api_key=KEY, base_url=f"{api.url}/v2", _strict_response_validation=True, max_retries=0
    )


def test_two_replicas_share_one_request_limit(replicas: tuple[list[Proc], Database]) -> None:
    apis, db = replicas
    for api in apis:  # load the model in both, before any limit is configured
        _sdk(api).ai.openai.embeddings.create_embeddings(input="warm", model=MINILM)
    tenant = ApiKeyService(db).authenticate(KEY).tenant_id
    LimitService(db).set(tenant, embeddings_requests=LIMIT, window_seconds=WINDOW)
    time.sleep(1.5)  # each process re-reads limits at most once a second
    if time.time() % WINDOW > WINDOW - 60:
        time.sleep(WINDOW - time.time() % WINDOW + 0.1)

    remaining = []
    for n in range(LIMIT):  # alternate between the two processes
        raw = _sdk(apis[n % 2]).ai.openai.embeddings.with_raw_response.create_embeddings(
            input=f"text {n}", model=MINILM
        )
        assert raw.headers["x-ratelimit-limit-requests"] == str(LIMIT)
        remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [LIMIT - 1 - n for n in range(LIMIT)]  # one count, not one per process

    for api in apis:  # the limit is spent for both processes
        with pytest.raises(telnyx.RateLimitError) as refused:
            _sdk(api).ai.openai.embeddings.create_embeddings(input="over", model=MINILM)
        headers = refused.value.response.headers
        assert int(headers["retry-after"]) >= 1
        assert headers["x-ratelimit-limit-requests"] == str(LIMIT)
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert headers["x-ratelimit-reset-requests"].endswith("s")
        assert refused.value.body["errors"][0]["code"] == "10011"
