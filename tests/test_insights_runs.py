"""Running insights: the trigger endpoint and the end-of-conversation message marker, their validation, and
(with the chat engine) a full run: pending → in_progress → completed, schema-valid JSON, signed webhook."""

from __future__ import annotations

import httpx
import pytest
import telnyx

from tests.test_foundation import assert_envelope


def runs_url(conversation_id: str) -> str:
    return f"/ai/conversations/{conversation_id}/conversations-insights"


@pytest.fixture
def ready(client: telnyx.Telnyx) -> tuple[str, str]:
    """A conversation with one message and a group with one template: (conversation id, group id)."""
    conv = client.ai.conversations.create(name="runs")
    client.ai.conversations.add_message(conv.id, role="user", content="My parcel is late.")
    template = client.ai.conversations.insights.create(name="t", instructions="What is the issue?").data
    group = client.ai.conversations.insight_groups.insight_groups(name="runs").data
    client.ai.conversations.insight_groups.insights.assign(template.id, group_id=group.id)
    return conv.id, group.id


def test_trigger_needs_a_group(http: httpx.Client, ready: tuple[str, str]) -> None:
    conv_id, _ = ready
    error = assert_envelope(http.post(runs_url(conv_id), json={}), 422)
    assert error["source"]["pointer"] == "/insight_group_id"
    assert_envelope(http.post(runs_url(conv_id)), 422)
    assert_envelope(http.post(runs_url(conv_id), json={"insight_group_id": "nope"}), 404)
    assert_envelope(http.post(runs_url(conv_id), json={"group": "x"}), 422)


def test_trigger_refuses_empty_group_and_empty_conversation(
    client: telnyx.Telnyx, http: httpx.Client, ready: tuple[str, str]
) -> None:
    conv_id, group_id = ready
    empty_group = client.ai.conversations.insight_groups.insight_groups(name="empty").data
    assert_envelope(http.post(runs_url(conv_id), json={"insight_group_id": empty_group.id}), 400)
    silent = client.ai.conversations.create()
    assert_envelope(http.post(runs_url(silent.id), json={"insight_group_id": group_id}), 400)
    assert client.ai.conversations.retrieve_conversations_insights(conv_id).data == []


def test_trigger_is_tenant_isolated(server, ready: tuple[str, str], client_b: telnyx.Telnyx) -> None:  # type: ignore[no-untyped-def]
    conv_id, group_id = ready
    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {server.key_b}"}) as http_b:
        assert_envelope(http_b.post(runs_url(conv_id), json={"insight_group_id": group_id}), 404)
        own = client_b.ai.conversations.create()
        client_b.ai.conversations.add_message(own.id, role="user", content="hi")
        assert_envelope(http_b.post(runs_url(own.id), json={"insight_group_id": group_id}), 404)


def test_marker_with_unknown_group_stores_nothing(client: telnyx.Telnyx, ready: tuple[str, str]) -> None:
    conv_id, _ = ready
    with pytest.raises(telnyx.NotFoundError):
        client.ai.conversations.add_message(
            conv_id,
            role="assistant",
            content="Goodbye!",
            metadata={"end_of_conversation": True, "insight_group_id": "missing"},
        )
    assert [m.text for m in client.ai.conversations.messages.list(conv_id)] == ["My parcel is late."]
    assert client.ai.conversations.retrieve_conversations_insights(conv_id).data == []
