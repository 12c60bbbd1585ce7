"""Conversations: PostgREST-filtered listing through the API vs the same SQL run directly on the database; an
insight run (trigger → completed, one JSON-schema template) vs the chat call it makes, direct in-process.

Measurements alternate (API, direct, …) so that load from other processes hits both alike. The listings go
through a minimal keep-alive HTTP client (`common.RawHttp`), so the figure is the server's and not httpx's
(~0.5 ms a request of Python work in this process, beside the server); the same through httpx is shown for
the first filter.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import insert, text

from bench.common import BENCH_KEY, RawHttp, Row, live_server, pick
from inferline.container import Container
from inferline.stores.conversations_tables import Conversation

SIZES = pick((3_000, 300_000), (300, 3_000))
RUNS = pick(15, 2)
INSIGHT_RUNS = pick(3, 1)
SCHEMA = {"type": "object", "properties": {"urgent": {"type": "boolean"}}, "required": ["urgent"]}


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _paired(api: Callable[[], float], direct: Callable[[], float], runs: int) -> tuple[float, float]:
    api(), direct()
    pairs = [(api(), direct()) for _ in range(runs)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def _fill(container: Container, tenant: str, start: int, stop: int) -> None:
    """Conversations `start`..`stop` of `tenant`, inserted in bulk: three channels, 50 assistants, one call id
    each, a second apart, every other one with a last message."""
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for chunk in range(start, stop, 10_000):
        rows = [
            {
                "id": str(uuid.UUID(int=n)),
                "tenant_id": tenant,
                "name": f"c{n}",
                "meta": {
                    "telnyx_conversation_channel": ("phone_call", "sms_chat", "web_chat")[n % 3],
                    "assistant_id": f"a{n % 50}",
                    "call_control_id": f"v3:{n}",
                },
                "created_at": base + timedelta(seconds=n),
                "last_message_at": base + timedelta(seconds=n + n * 7919 % 5000) if n % 2 else None,
            }
            for n in range(chunk, min(chunk + 10_000, stop))
        ]
        with container.db.session() as s:
            s.execute(insert(Conversation), rows)


def _list_rows(raw: RawHttp, http: httpx.Client, container: Container, tenant: str, size: int) -> list[Row]:
    """The filters users run through the API vs the same SQL direct, at `size` conversations."""
    meta = (
        "CAST(json_extract(metadata, '$.\"{0}\"') AS VARCHAR)"
        if container.db.is_sqlite
        else "CAST((metadata ->> '{0}') AS VARCHAR)"
    )
    columns = "SELECT id, name, metadata, created_at, last_message_at FROM conversations WHERE tenant_id = :t"
    cases = {
        "2 metadata filters": (
            {
                "metadata->telnyx_conversation_channel": "eq.sms_chat",
                "metadata->assistant_id": "in.(a1,a4,a7)",
                "order": "created_at.desc",
                "limit": "20",
            },
            f"{columns} AND {meta.format('telnyx_conversation_channel')} = 'sms_chat' AND "
            f"{meta.format('assistant_id')} IN ('a1', 'a4', 'a7') ORDER BY created_at DESC, id LIMIT 20",
        ),
        "call_control_id (1 match)": (
            {"metadata->call_control_id": f"eq.v3:{size // 2}"},
            f"{columns} AND {meta.format('call_control_id')} = 'v3:{size // 2}' ORDER BY created_at DESC, id",
        ),
        "order=last_message_at.desc": (
            {"order": "last_message_at.desc", "limit": "20"},
            f"{columns} ORDER BY coalesce(last_message_at, created_at) DESC, id LIMIT 20",
        ),
    }
    backend = "SQLite" if container.db.is_sqlite else "PostgreSQL"
    rows = []
    for label, (params, sql) in cases.items():

        def api_list(params: dict[str, str] = params) -> float:
            return _timed(lambda: raw.get("/ai/conversations", params))

        def httpx_list(params: dict[str, str] = params) -> float:
            return _timed(lambda: http.get("/ai/conversations", params=params).raise_for_status())

        def direct_list(sql: str = sql) -> float:
            def query() -> None:
                with container.db.engine.connect() as conn:
                    conn.execute(text(sql), {"t": tenant}).all()

            return _timed(query)

        api_ms, direct_ms = (v * 1000 for v in _paired(api_list, direct_list, RUNS))
        rows.append(
            Row(
                f"conversations list, {label}, {size:,} rows",
                api_ms,
                direct_ms,
                "ms",
                f"the same SQL direct on {backend}",
                higher_is_better=False,
            )
        )
        if label == "2 metadata filters":
            api_ms, direct_ms = (v * 1000 for v in _paired(httpx_list, direct_list, RUNS))
            rows.append(
                Row(
                    "  the same through httpx (in this process)",
                    api_ms,
                    direct_ms,
                    "ms",
                    f"the same SQL direct on {backend}",
                    higher_is_better=False,
                )
            )
    return rows


def run() -> list[Row]:
    rows: list[Row] = []
    with live_server() as (url, container):
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=300)
        raw = RawHttp(url, {"Authorization": f"Bearer {BENCH_KEY}"})
        tenant = "default"
        filled = 0
        for size in SIZES:
            _fill(container, tenant, filled, size)
            filled = size
            rows += _list_rows(raw, http, container, tenant, size)

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
        raw.close()
    return [
        *rows,
        Row(
            "insight run (1 schema template), trigger→completed",
            api_s,
            direct_s,
            "s",
            "container.chat.complete_text direct",
            higher_is_better=False,
        ),
    ]
