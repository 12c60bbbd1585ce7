"""PostgREST-style filtering of `GET /ai/conversations`, through the SDK (strict) and raw HTTP for bad
filters, plus the parser compiled for PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import telnyx
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from inferline.areas.conversations import postgrest
from inferline.stores.conversations_tables import Conversation
from tests.test_foundation import assert_envelope


@pytest.fixture(scope="module")
def corpus(client: telnyx.Telnyx) -> dict[str, str]:
    """Five conversations tagged with one suite id; returns name -> id."""
    suite = uuid.uuid4().hex
    specs = [
        ("Voice support", {"channel": "phone_call", "assistant_id": "asst-1", "tier": "gold"}),
        ("voice sales", {"channel": "phone_call", "assistant_id": "asst-2"}),
        ("SMS billing", {"channel": "sms_chat", "assistant_id": "asst-1", "tier": "silver"}),
        ("Web 100% done", {"channel": "web_chat", "assistant_id": "asst-3"}),
        ("Voice_misc", {"channel": "phone_call", "assistant_id": "asst-3", "tier": "bronze"}),
    ]
    ids = {}
    for name, meta in specs:
        ids[name] = client.ai.conversations.create(name=name, metadata={"suite": suite, **meta}).id
        time.sleep(0.005)  # distinct created_at
    client.ai.conversations.add_message(ids["SMS billing"], role="user", content="hello")
    ids["suite"] = suite
    return ids


def names(client: telnyx.Telnyx, corpus: dict[str, str], **query: str) -> list[str]:
    by_id = {v: k for k, v in corpus.items()}
    extra = {"metadata->suite": f"eq.{corpus['suite']}", **query}
    return [by_id[c.id] for c in client.ai.conversations.list(extra_query=extra).data]


def test_sdk_typed_params(client: telnyx.Telnyx, corpus: dict[str, str]) -> None:
    result = client.ai.conversations.list(
        metadata_assistant_id="eq.asst-1",
        name="like.Voice*",
        extra_query={"metadata->suite": f"eq.{corpus['suite']}"},
    )
    assert [c.id for c in result.data] == [corpus["Voice support"]]
    newest_first = client.ai.conversations.list(
        order="created_at.desc", limit=2, extra_query={"metadata->suite": f"eq.{corpus['suite']}"}
    )
    assert [c.id for c in newest_first.data] == [corpus["Voice_misc"], corpus["Web 100% done"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"metadata->channel": "eq.phone_call"}, {"Voice support", "voice sales", "Voice_misc"}),
        ({"metadata->>channel": "neq.phone_call"}, {"SMS billing", "Web 100% done"}),
        ({"name": "like.Voice*"}, {"Voice support", "Voice_misc"}),
        ({"name": "ilike.voice*"}, {"Voice support", "voice sales", "Voice_misc"}),
        ({"name": "like.Voice_%"}, {"Voice_misc", "Voice support"}),
        ({"name": "like.Voice\\_*"}, {"Voice_misc"}),
        ({"name": "like.*100\\%*"}, {"Web 100% done"}),
        ({"name": "not.ilike.*voice*"}, {"SMS billing", "Web 100% done"}),
        ({"metadata->assistant_id": "in.(asst-2,asst-3)"}, {"voice sales", "Web 100% done", "Voice_misc"}),
        ({"metadata->assistant_id": "not.in.(asst-2,asst-3)"}, {"Voice support", "SMS billing"}),
        ({"metadata->tier": "is.null"}, {"voice sales", "Web 100% done"}),
        ({"metadata->tier": "not.is.null"}, {"Voice support", "SMS billing", "Voice_misc"}),
        ({"metadata->tier": "gt.c"}, {"Voice support", "SMS billing"}),
        ({"or": "(metadata->channel.eq.sms_chat,name.eq.voice sales)"}, {"SMS billing", "voice sales"}),
        (
            {
                "or": "(metadata->tier.eq.gold,"
                "and(metadata->channel.eq.phone_call,metadata->assistant_id.eq.asst-3))"
            },
            {"Voice support", "Voice_misc"},
        ),
        (
            {
                "and": "(name.ilike.*voice*,"
                "not.or(metadata->assistant_id.eq.asst-1,metadata->assistant_id.eq.asst-3))"
            },
            {"voice sales"},
        ),
        ({"not.or": "(metadata->channel.eq.phone_call,metadata->channel.eq.web_chat)"}, {"SMS billing"}),
        ({"or": '(name.eq."Web 100% done",name.in.("voice sales","x,y"))'}, {"Web 100% done", "voice sales"}),
        ({"metadata->assistant_id": "in.()"}, set()),
    ],
)
def test_filters(
    client: telnyx.Telnyx, corpus: dict[str, str], query: dict[str, str], expected: set[str]
) -> None:
    assert set(names(client, corpus, **query)) == expected


def test_timestamps_order_and_limit(client: telnyx.Telnyx, corpus: dict[str, str]) -> None:
    all_rows = client.ai.conversations.list(extra_query={"metadata->suite": f"eq.{corpus['suite']}"}).data
    assert len(all_rows) == 5
    oldest = min(c.created_at for c in all_rows)
    after = (oldest + timedelta(microseconds=1)).isoformat()
    assert "Voice support" not in names(client, corpus, created_at=f"gt.{after}")
    assert len(names(client, corpus, created_at=f"gte.{oldest.isoformat()}")) == 5
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert len(names(client, corpus, created_at=f"gte.{yesterday}", last_message_at=f"gte.{yesterday}")) == 5
    assert names(client, corpus, order="last_message_at.desc", limit="1") == ["SMS billing"]
    assert names(client, corpus, order="created_at.asc", limit="2", offset="1") == [
        "voice sales",
        "SMS billing",
    ]
    ordered = names(client, corpus, order="metadata->tier.asc.nullslast,name.desc")
    assert ordered == ["Voice_misc", "Voice support", "SMS billing", "voice sales", "Web 100% done"]
    assert names(client, corpus, order="metadata->tier.desc.nullsfirst,name.asc")[:2] == [
        "Web 100% done",
        "voice sales",
    ]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"name": "eq"}, "name"),
        ({"name": "equals.x"}, "name"),
        ({"name": "not.x"}, "name"),
        ({"nope": "eq.x"}, "nope"),
        ({"metadata->bad key": "eq.x"}, "metadata->bad key"),
        ({"created_at": "gte.yesterday"}, "created_at"),
        ({"created_at": "like.2025*"}, "created_at"),
        ({"metadata->a": "in.a,b"}, "metadata->a"),
        ({"metadata->a": "is.maybe"}, "metadata->a"),
        ({"or": "name.eq.x"}, "or"),
        ({"or": "(name.eq.x"}, "or"),
        ({"or": "(name.eq.x,)"}, "or"),
        ({"or": "(name)"}, "or"),
        ({"or": "(bogus.eq.1)"}, "or"),
        ({"and": '(name.eq."x)'}, "and"),
        ({"order": "name.sideways"}, "order"),
        ({"order": "nope.asc"}, "order"),
        ({"order": ""}, "order"),
        ({"select": "id"}, "select"),
        ({"or": "(" + "or(" * 16 + "name.eq.x" + ")" * 16 + ")"}, "or"),  # 17 deep
        ({"not.and": "(" + "and(" * 999 + "name.eq.x" + ")" * 999 + ")"}, "not.and"),  # was a RecursionError
        ({"or": "(" + ",".join(["name.eq.x"] * 101) + ")"}, "or"),
        ({"name": "eq." + "x" * 8200}, "name"),
    ],
)
def test_malformed_filters_are_400_naming_the_parameter(
    http: httpx.Client, query: dict[str, str], parameter: str
) -> None:
    error = assert_envelope(http.get("/ai/conversations", params=query), 400)
    assert error["source"] == {"parameter": parameter}


def test_filter_bounds_admit_what_they_name(client: telnyx.Telnyx, corpus: dict[str, str]) -> None:
    """16 levels of nesting and 100 conditions in all are served."""
    deep = "(" + "or(" * 15 + "name.eq.SMS billing" + ")" * 15 + ")"
    assert names(client, corpus, **{"or": deep}) == ["SMS billing"]
    many = "(" + ",".join(["name.eq.Voice support"] * 98) + ")"
    assert names(client, corpus, **{"or": many}) == ["Voice support"]  # with the suite filter: 99


def test_too_many_conditions_across_parameters_is_400(http: httpx.Client) -> None:
    params = [("name", "neq.x")] * 60 + [("or", "(" + ",".join(["name.neq.y"] * 41) + ")")]
    error = assert_envelope(http.get("/ai/conversations", params=params), 400)
    assert error["source"] == {"parameter": "or"} and "100" in error["detail"]
    error = assert_envelope(http.get("/ai/conversations", params=[("name", "neq.x")] * 1500), 400)
    assert error["source"] == {"parameter": "name"}  # was a 500: SQLite's expression tree depth


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "1.5"}, "offset"),
        ({"offset": str(10**20)}, "offset"),  # was a 500: too large for SQLite
        ({"limit": str(10**20)}, "limit"),
        ({"offset": "9" * 5000}, "offset"),
        ({"limit": str(2**31)}, "limit"),
    ],
)
def test_bad_limit_or_offset_is_422_naming_it(
    http: httpx.Client, query: dict[str, str], parameter: str
) -> None:
    error = assert_envelope(http.get("/ai/conversations", params=query), 422)
    assert error["code"] == "10004" and error["source"] == {"parameter": parameter}


def test_largest_limit_and_offset_are_served(http: httpx.Client) -> None:
    response = http.get("/ai/conversations", params={"limit": str(2**31 - 1), "offset": str(2**31 - 1)})
    assert response.status_code == 200 and response.json() == {"data": []}


def test_malformed_filter_through_sdk(client: telnyx.Telnyx) -> None:
    with pytest.raises(telnyx.BadRequestError):
        client.ai.conversations.list(name="bogus")


def test_filters_compile_for_postgresql() -> None:
    schema = postgrest.Schema(
        columns={
            "name": postgrest.Column(Conversation.name),
            "created_at": postgrest.Column(Conversation.created_at),
        },
        json_name="metadata",
        json_column=Conversation.meta,
    )
    params = [
        ("metadata->a->>b", "eq.x"),
        ("name", "like.Voice*"),
        ("name", "ilike.*x*"),
        ("or", "(metadata->c.in.(1,2),not.and(name.is.null,metadata->d.neq.z))"),
    ]
    query = postgrest.parse(params, schema, "postgresql")
    sql = str(
        select(Conversation.id)
        .where(*query.where)
        .compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )
    assert "metadata #>> '{a, b}'" in sql or "#>>" in sql
    assert "LIKE 'Voice%%'" in sql or "LIKE 'Voice%'" in sql
    assert "ILIKE" in sql and "GLOB" not in sql
    sqlite_query = postgrest.parse([("name", "like.A_b*\\*")], schema, "sqlite")
    from sqlalchemy.dialects import sqlite

    compiled = str(
        select(Conversation.id)
        .where(*sqlite_query.where)
        .compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    )
    assert "GLOB 'A?b*%'" in compiled  # `*` is `%` before escapes, so \* is a literal %
