"""Insights end to end with the real chat model (SmolLM2-135M): a conversation marked ready runs its group's
templates, schema templates give schema-valid JSON, the run completes, and the signed
`call.conversation_insights.generated` webhook reaches a local receiver and verifies with the SDK."""

from __future__ import annotations

import json
import time

import httpx
import jsonschema
import pytest
import telnyx

from tests.conftest import LiveServer
from tests.test_insights_webhooks import Receiver, public_key

SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "resolved": {"type": "boolean"},
    },
    "required": ["sentiment", "resolved"],
    "additionalProperties": False,
}


def wait_run(client: telnyx.Telnyx, conversation_id: str, count: int, timeout: float = 240.0) -> list:  # type: ignore[type-arg]
    """Poll a conversation's runs until `count` are finished; returns [runs, statuses seen]."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while True:
        runs = client.ai.conversations.retrieve_conversations_insights(conversation_id).data
        seen |= {r.status for r in runs}
        if len(runs) >= count and all(r.status in ("completed", "failed") for r in runs):
            return [runs, seen]
        assert time.monotonic() < deadline, [r.model_dump() for r in runs]
        time.sleep(0.2)


@pytest.mark.slow
def test_marker_runs_group_and_delivers_signed_webhook(
    server: LiveServer, client: telnyx.Telnyx, http: httpx.Client
) -> None:
    receiver, own = Receiver([200]), Receiver([200])
    try:
        summary = client.ai.conversations.insights.create(
            name="summary", instructions="Summarise the customer's problem in one short sentence."
        ).data
        mood = client.ai.conversations.insights.create(
            name="mood",
            instructions="Classify the customer's sentiment and whether it was resolved.",
            json_schema=SCHEMA,
            webhook=own.url,
        ).data
        group = client.ai.conversations.insight_groups.insight_groups(
            name="post-call", webhook=receiver.url
        ).data
        for template in (summary, mood):
            client.ai.conversations.insight_groups.insights.assign(template.id, group_id=group.id)
        conv = client.ai.conversations.create(
            name="e2e", metadata={"call_control_id": "v3:e2e-call", "insight_group_id": group.id}
        )
        client.ai.conversations.add_message(
            conv.id, role="user", content="My parcel has not arrived after two weeks."
        )
        client.ai.conversations.add_message(
            conv.id,
            role="assistant",
            content="Sorry about that! I have sent a replacement today.",
            metadata={"end_of_conversation": True},
        )
        (runs, _seen) = wait_run(client, conv.id, 1)
        (run,) = runs
        assert run.status == "completed", run.model_dump()
        results = {r.insight_id: r.result for r in run.conversation_insights}
        assert set(results) == {summary.id, mood.id}
        assert isinstance(results[summary.id], str) and results[summary.id].strip()
        jsonschema.validate(json.loads(results[mood.id]), SCHEMA)

        receiver.wait(1, timeout=60)
        headers, body = receiver.requests[0]
        event = client.webhooks.unwrap(body, headers=headers, key=public_key(http))
        assert event.data is not None and event.data.event_type == "call.conversation_insights.generated"
        payload = event.data.payload
        assert payload is not None and payload.insight_group_id == group.id
        assert payload.call_control_id == "v3:e2e-call"
        by_id = {r.insight_id: r.result for r in payload.results or []}
        assert by_id[mood.id] == json.loads(results[mood.id]) and by_id[summary.id] == results[summary.id]

        own.wait(1, timeout=60)  # the template's own webhook gets only its result
        headers, body = own.requests[0]
        own_event = client.webhooks.unwrap(body, headers=headers, key=public_key(http))
        assert own_event.data is not None and own_event.data.payload is not None
        assert [r.insight_id for r in own_event.data.payload.results or []] == [mood.id]

        deliveries = http.get(
            f"/ai/conversations/{conv.id}/conversations-insights/{run.id}/deliveries"
        ).json()
        assert sorted(d["url"] for d in deliveries["data"]) == sorted([receiver.url, own.url])
        for delivery in deliveries["data"]:
            assert delivery["status"] == "delivered" and delivery["attempts"][0]["status_code"] == 200
    finally:
        receiver.close()
        own.close()


@pytest.mark.slow
def test_trigger_endpoint_answers_pending_then_completes(client: telnyx.Telnyx, http: httpx.Client) -> None:
    score = client.ai.conversations.insights.create(
        name="score",
        instructions="Rate the agent from 1 to 5.",
        json_schema=json.dumps(
            {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
        ),
    ).data
    group = client.ai.conversations.insight_groups.insight_groups(name="scores").data
    client.ai.conversations.insight_groups.insights.assign(score.id, group_id=group.id)
    conv = client.ai.conversations.create()
    client.ai.conversations.add_message(conv.id, role="user", content="Thanks, that fixed it!")
    started = http.post(
        f"/ai/conversations/{conv.id}/conversations-insights", json={"insight_group_id": group.id}
    )
    assert started.status_code == 200 and started.json()["data"]["status"] == "pending"
    (runs, seen) = wait_run(client, conv.id, 1)
    assert runs[0].status == "completed" and seen <= {"pending", "in_progress", "completed"}
    value = json.loads(runs[0].conversation_insights[0].result)
    assert isinstance(value["score"], int)
    rows = client.ai.conversations.conversation_insights.retrieve_aggregates(
        group_by=["score"], insight_id=score.id
    ).data
    assert [(getattr(r, "score", None), r.record_count) for r in rows] == [(value["score"], 1)]


@pytest.mark.slow
def test_run_that_cannot_satisfy_its_schema_fails_with_reason(
    client: telnyx.Telnyx, http: httpx.Client
) -> None:
    """128 tokens cannot hold 300 words: the chat engine stops at max_tokens and the run fails, saying why."""
    huge = {
        "type": "object",
        "properties": {
            "words": {"type": "array", "minItems": 300, "items": {"type": "string", "minLength": 4}}
        },
        "required": ["words"],
    }
    template = client.ai.conversations.insights.create(
        name="huge", instructions="List words.", json_schema=huge
    ).data
    group = client.ai.conversations.insight_groups.insight_groups(name="huge").data
    client.ai.conversations.insight_groups.insights.assign(template.id, group_id=group.id)
    conv = client.ai.conversations.create()
    client.ai.conversations.add_message(conv.id, role="user", content="Hello.")
    http.post(f"/ai/conversations/{conv.id}/conversations-insights", json={"insight_group_id": group.id})
    (runs, _seen) = wait_run(client, conv.id, 1)
    assert runs[0].status == "failed" and runs[0].conversation_insights == []
    raw = http.get(f"/ai/conversations/{conv.id}/conversations-insights").json()["data"][0]
    assert template.id in raw["error"] and "max_tokens" in raw["error"]
