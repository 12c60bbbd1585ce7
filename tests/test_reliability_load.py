"""A bounded load test inside the suite: concurrent chat and similarity-search clients on the live server.

The same driver as `bench/bench_load.py` (which reports the latency figures in the README), held for a few
seconds here: every request of every client must succeed, none may be shed or fail.
"""

from __future__ import annotations

import asyncio

from bench.bench_load import drive, prepare_bucket
from tests.conftest import LiveServer


def test_concurrent_chat_and_search_clients_all_succeed(server: LiveServer) -> None:
    prepare_bucket(server.url, server.key_a)
    chat, search = asyncio.run(drive(server.url, 3, 4, 8.0, key=server.key_a))
    assert chat.errors == 0 and search.errors == 0, (chat.errors, search.errors)
    assert len(chat.latencies) >= 3 and len(search.latencies) >= 4
