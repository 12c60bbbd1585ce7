"""Conversations: PostgREST-filtered listing through the API vs the same SQL run directly on the database; an
insight run (trigger → completed, one JSON-schema template) vs the chat call it makes, direct in-process.

Measurements alternate (API, direct, …) so that load from other processes hits both alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import httpx
from sqlalchemy import text

from bench.common import BENCH_KEY, Row, live_server

CONVERSATIONS = 3000
RUNS = 15
INSIGHT_RUNS = 3
SCHEMA = {"type": "object", "properties": {"urgent": {"type": "boolean"}}, "required": ["urgent"]}


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _paired(api: Callable[[], float], direct: Callable[[], float], runs: int) -> tuple[float, float]:
    api(), direct()
    pairs = [(api(), direct()) for _ in range(runs)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def run() -> list[Row]:
    with live_server() as (url, container):
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=300)
        tenant = "default"
        for n in range(CONVERSATIONS):
            channel = ("phone_call", "sms_chat", "web_chat")[n % 3]
            container.conversations.create(
                tenant, name=f"c{n}", metadata={"channel": channel, "assistant_id": f"a{n % 50}"}
            )
        params = {
            "metadata->channel": "eq.sms_chat",
            "metadata->assistant_id": "in.(a1,a4,a7)",
            "order": "created_at.desc",
            "limit": "20",
        }
        is_sqlite = container.db.is_sqlite
        meta = "json_extract(metadata, '$.{0}')" if is_sqlite else "(metadata ->> '{0}')"
        sql = text(
            f"SELECT id, name, metadata, created_at, last_message_at FROM conversations "
            f"WHERE tenant_id = :t AND {meta.format('channel')} = 'sms_chat' "
            f"AND {meta.format('assistant_id')} IN ('a1', 'a4', 'a7') ORDER BY created_at DESC, id LIMIT 20"
        )

        def api_list() -> float:
            return _timed(lambda: http.get("/ai/conversations", params=params).raise_for_status())

        def direct_list() -> float:
            def query() -> None:
                with container.db.engine.connect() as conn:
                    conn.execute(sql, {"t": tenant}).all()

            return _timed(query)

        api_ms, direct_ms = (v * 1000 for v in _paired(api_list, direct_list, RUNS))

        template = container.insights.create_template(
            tenant, name="urgent", instructions="Is the problem urgent?", json_schema=SCHEMA
        )
        group = container.insights.create_group(tenant, name="bench")
        container.insights.assign(tenant, group["id"], template["id"])
        conv = container.conversations.create(tenant, name="bench", metadata={})
        container.conversations.add_message(
            tenant, conv["id"], role="user", content="The app crashes on login."
        )

        def api_run() -> float:
            def go() -> None:
                run = http.post(
                    f"/ai/conversations/{conv['id']}/conversations-insights",
                    json={"insight_group_id": group["id"]},
                ).json()["data"]
                runs = container.insight_runs
                while runs.get_run(tenant, run["id"])["status"] not in ("completed", "failed"):
                    time.sleep(0.01)

            return _timed(go)

        messages = [
            {"role": "system", "content": "Is the problem urgent? Answer with JSON."},
            {"role": "user", "content": "Conversation transcript:\nuser: The app crashes on login."},
        ]

        def direct_run() -> float:
            return _timed(
                lambda: container.chat.complete_text(tenant, messages, json_schema=SCHEMA, max_tokens=128)
            )

        api_s, direct_s = _paired(api_run, direct_run, INSIGHT_RUNS)
        http.close()
    backend = "SQLite" if is_sqlite else "PostgreSQL"
    return [
        Row(
            f"conversations list, 2 metadata filters, {CONVERSATIONS} rows",
            api_ms,
            direct_ms,
            "ms",
            f"the same SQL direct on {backend}",
            higher_is_better=False,
        ),
        Row(
            "insight run (1 schema template), trigger→completed",
            api_s,
            direct_s,
            "s",
            "container.chat.complete_text direct",
            higher_is_better=False,
        ),
    ]
