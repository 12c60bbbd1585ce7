"""Insight templates and groups through the telnyx SDK in strict mode: CRUD, json_schema as object or string,
assign/unassign, auto-paging, tenant isolation, bad input."""

from __future__ import annotations

import json

import httpx
import pytest
import telnyx

from tests.test_foundation import assert_envelope

SCHEMA = {
    "type": "object",
    "properties": {"sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]}},
    "required": ["sentiment"],
}


def test_template_crud_with_schema_object_and_string(client: telnyx.Telnyx) -> None:
    created = client.ai.conversations.insights.create(
        name="sentiment", instructions="Rate the user's sentiment.", json_schema=SCHEMA
    ).data
    assert created.json_schema == SCHEMA and created.insight_type == "custom" and created.webhook == ""
    as_string = client.ai.conversations.insights.create(
        name="summary",
        instructions="Summarise.",
        json_schema=json.dumps(SCHEMA),
        webhook="https://example.com/h",
    ).data
    assert as_string.json_schema == json.dumps(SCHEMA) and as_string.webhook == "https://example.com/h"
    got = client.ai.conversations.insights.retrieve(created.id).data
    assert got.id == created.id and got.instructions == "Rate the user's sentiment."
    updated = client.ai.conversations.insights.update(
        created.id, name="mood", json_schema=json.dumps(SCHEMA)
    ).data
    assert updated.name == "mood" and updated.json_schema == json.dumps(SCHEMA)
    assert updated.instructions == "Rate the user's sentiment."
    client.ai.conversations.insights.delete(created.id)
    with pytest.raises(telnyx.NotFoundError):
        client.ai.conversations.insights.retrieve(created.id)
    with pytest.raises(telnyx.NotFoundError):
        client.ai.conversations.insights.delete(created.id)


def test_templates_auto_page(client: telnyx.Telnyx, client_b: telnyx.Telnyx) -> None:
    made = {
        client_b.ai.conversations.insights.create(name=f"t{n}", instructions="x").data.id for n in range(5)
    }
    page = client_b.ai.conversations.insights.list(page_size=2)
    assert len(page.data) == 2
    seen = [t.id for t in client_b.ai.conversations.insights.list(page_size=2)]
    assert made <= set(seen) and len(seen) == len(set(seen))
    assert not made & {t.id for t in client.ai.conversations.insights.list(page_size=50)}


@pytest.mark.parametrize(
    ("body", "status", "pointer"),
    [
        ({"instructions": "x"}, 422, "/name"),
        ({"name": "x"}, 422, "/instructions"),
        ({"name": "x", "instructions": "x", "json_schema": "{not json"}, 422, "/json_schema"),
        ({"name": "x", "instructions": "x", "json_schema": "[1]"}, 422, "/json_schema"),
        ({"name": "x", "instructions": "x", "json_schema": {"type": "nonsense"}}, 422, "/json_schema"),
        ({"name": "x", "instructions": "x", "webhook": "ftp://example.com"}, 422, "/webhook"),
        ({"name": "x", "instructions": "x", "webhook": "http://10.0.0.5/hook"}, 422, "/webhook"),
        ({"name": "x", "instructions": "x", "extra": 1}, 422, "/extra"),
    ],
)
def test_bad_templates(http: httpx.Client, body: dict, status: int, pointer: str) -> None:
    before = http.get("/ai/conversations/insights", params={"page[size]": 250}).json()["meta"][
        "total_results"
    ]
    error = assert_envelope(http.post("/ai/conversations/insights", json=body), status)
    assert error["source"]["pointer"] == pointer
    after = http.get("/ai/conversations/insights", params={"page[size]": 250}).json()["meta"]["total_results"]
    assert after == before


def test_group_crud_assign_unassign(client: telnyx.Telnyx) -> None:
    groups = client.ai.conversations.insight_groups
    group = groups.insight_groups(
        name="after-call", description="post call", webhook="https://example.com/w"
    ).data
    assert (
        group.insights == [] and group.webhook == "https://example.com/w" and group.description == "post call"
    )
    t1 = client.ai.conversations.insights.create(name="a", instructions="A").data
    t2 = client.ai.conversations.insights.create(name="b", instructions="B", json_schema=SCHEMA).data
    groups.insights.assign(t1.id, group_id=group.id)
    groups.insights.assign(t2.id, group_id=group.id)
    groups.insights.assign(t2.id, group_id=group.id)  # idempotent
    got = groups.retrieve(group.id).data
    assert [t.id for t in got.insights or []] == [t1.id, t2.id]
    assert (got.insights or [])[1].json_schema == SCHEMA
    groups.insights.delete_unassign(t1.id, group_id=group.id)
    with pytest.raises(telnyx.NotFoundError):
        groups.insights.delete_unassign(t1.id, group_id=group.id)
    assert [t.id for t in groups.retrieve(group.id).data.insights or []] == [t2.id]
    updated = groups.update(group.id, name="renamed", webhook="").data
    assert updated.name == "renamed" and updated.webhook == "" and updated.description == "post call"
    client.ai.conversations.insights.delete(t2.id)  # deleting a template unassigns it
    assert groups.retrieve(group.id).data.insights == []
    groups.delete(group.id)
    with pytest.raises(telnyx.NotFoundError):
        groups.retrieve(group.id)
    with pytest.raises(telnyx.NotFoundError):
        groups.insights.assign(t1.id, group_id=group.id)


def test_groups_auto_page_and_isolation(client: telnyx.Telnyx, client_b: telnyx.Telnyx) -> None:
    made = [client.ai.conversations.insight_groups.insight_groups(name=f"g{n}").data.id for n in range(3)]
    seen = [g.id for g in client.ai.conversations.insight_groups.retrieve_insight_groups(page_size=1)]
    assert set(made) <= set(seen) and len(seen) == len(set(seen))
    foreign = client_b.ai.conversations.insights.create(name="b", instructions="b").data
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.conversations.insight_groups.retrieve(made[0])
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.conversations.insight_groups.update(made[0], name="x")
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.conversations.insight_groups.delete(made[0])
    with pytest.raises(telnyx.NotFoundError):  # tenant A cannot assign tenant B's template
        client.ai.conversations.insight_groups.insights.assign(foreign.id, group_id=made[0])
    assert not set(made) & {
        g.id for g in client_b.ai.conversations.insight_groups.retrieve_insight_groups(page_size=100)
    }


def test_bad_groups(http: httpx.Client) -> None:
    assert (
        assert_envelope(http.post("/ai/conversations/insight-groups", json={}), 422)["source"]["pointer"]
        == "/name"
    )
    error = assert_envelope(
        http.post("/ai/conversations/insight-groups", json={"name": "x", "webhook": "http://192.168.1.9/x"}),
        422,
    )
    assert error["source"]["pointer"] == "/webhook"
    assert_envelope(http.get("/ai/conversations/insight-groups", params={"page[size]": 0}), 422)


def test_webhook_public_key(http: httpx.Client) -> None:
    import base64

    data = http.get("/ai/conversations/webhook-public-key").json()["data"]
    assert data["algorithm"] == "ed25519" and len(base64.b64decode(data["public_key"])) == 32
    assert http.get("/ai/conversations/webhook-public-key").json()["data"] == data
