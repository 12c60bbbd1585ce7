"""Conversations and messages through the telnyx SDK in strict mode: envelopes, metadata, last_message_at,
pagination, tenant isolation and bad input."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import telnyx

from tests.test_foundation import assert_envelope


def test_create_is_bare_get_and_put_are_wrapped(client: telnyx.Telnyx) -> None:
    conv = client.ai.conversations.create(name="support call", metadata={"channel": "phone_call", "k": "v"})
    assert conv.name == "support call" and conv.metadata == {"channel": "phone_call", "k": "v"}
    assert conv.last_message_at == conv.created_at
    got = client.ai.conversations.retrieve(conv.id).data
    assert got is not None and got.id == conv.id and got.metadata == conv.metadata
    updated = client.ai.conversations.update(conv.id, metadata={"channel": "sms_chat"}).data
    assert updated is not None and updated.metadata == {"channel": "sms_chat"}
    unchanged = client.ai.conversations.update(conv.id).data
    assert unchanged is not None and unchanged.metadata == {"channel": "sms_chat"}
    client.ai.conversations.delete(conv.id)
    with pytest.raises(telnyx.NotFoundError):
        client.ai.conversations.retrieve(conv.id)
    with pytest.raises(telnyx.NotFoundError):
        client.ai.conversations.delete(conv.id)


def test_create_without_anything(client: telnyx.Telnyx) -> None:
    conv = client.ai.conversations.create()
    assert conv.metadata == {} and conv.name is None


def test_messages_roundtrip_and_last_message_at(client: telnyx.Telnyx) -> None:
    conv = client.ai.conversations.create(name="msgs")
    sent = datetime.now(UTC) + timedelta(minutes=5)
    client.ai.conversations.add_message(conv.id, role="user", content="Hi, my order is late.")
    client.ai.conversations.add_message(
        conv.id,
        role="assistant",
        content="",
        tool_calls=[
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"o": 7}'}}
        ],
        metadata={"turn": 2, "flag": True, "tags": ["a", 1]},
    )
    client.ai.conversations.add_message(
        conv.id,
        role="tool",
        content='{"status": "shipped"}',
        tool_call_id="call_1",
        name="lookup",
        sent_at=sent,
    )
    messages = list(client.ai.conversations.messages.list(conv.id))
    assert [m.role for m in messages] == ["user", "assistant", "tool"]
    assert messages[0].text == "Hi, my order is late."
    assert messages[1].tool_calls is not None and messages[1].tool_calls[0].function.name == "lookup"
    assert messages[1].metadata == {"turn": 2, "flag": True, "tags": ["a", 1]}
    assert messages[2].sent_at == sent
    got = client.ai.conversations.retrieve(conv.id).data
    assert got is not None and got.last_message_at == sent


def test_message_pages_are_auto_paged(client: telnyx.Telnyx) -> None:
    conv = client.ai.conversations.create()
    for n in range(5):
        client.ai.conversations.add_message(conv.id, role="user", content=f"m{n}")
    page = client.ai.conversations.messages.list(conv.id, page_size=2)
    assert [m.text for m in page.data] == ["m0", "m1"]
    assert [m.text for m in page] == [f"m{n}" for n in range(5)]
    beyond = client.ai.conversations.messages.list(conv.id, page_size=2, page_number=9)
    assert beyond.data == []


def test_other_tenant_gets_404(client: telnyx.Telnyx, client_b: telnyx.Telnyx) -> None:
    conv = client.ai.conversations.create(metadata={"owner": "a"})
    for call in (
        lambda: client_b.ai.conversations.retrieve(conv.id),
        lambda: client_b.ai.conversations.update(conv.id, metadata={}),
        lambda: client_b.ai.conversations.delete(conv.id),
        lambda: client_b.ai.conversations.add_message(conv.id, role="user", content="x"),
        lambda: list(client_b.ai.conversations.messages.list(conv.id)),
        lambda: client_b.ai.conversations.retrieve_conversations_insights(conv.id),
    ):
        with pytest.raises(telnyx.NotFoundError):
            call()
    assert conv.id not in {c.id for c in client_b.ai.conversations.list().data}
    assert client.ai.conversations.retrieve(conv.id).data is not None


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"metadata": {"n": 1}}, "/metadata/n"),
        ({"name": ["x"]}, "/name"),
        ({"bogus": 1}, "/bogus"),
    ],
)
def test_bad_create_is_422_with_pointer(http: httpx.Client, body: dict, pointer: str) -> None:
    error = assert_envelope(http.post("/ai/conversations", json=body), 422)
    assert error["source"]["pointer"] == pointer


def test_bad_messages_are_refused_and_not_stored(client: telnyx.Telnyx, http: httpx.Client) -> None:
    conv = client.ai.conversations.create()
    url = f"/ai/conversations/{conv.id}/message"
    assert_envelope(http.post(url, json={"content": "no role"}), 422)
    assert assert_envelope(http.post(url, json={"role": "system"}), 422)["source"]["pointer"] == "/role"
    bad_call = {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]}
    assert_envelope(http.post(url, json=bad_call), 422)
    assert_envelope(http.post(url, json={"role": "user", "sent_at": "yesterday"}), 422)
    assert_envelope(http.post(url, content=b"{not json", headers={"content-type": "application/json"}), 400)
    assert list(client.ai.conversations.messages.list(conv.id)) == []
    assert_envelope(http.post("/ai/conversations/nope/message", json={"role": "user"}), 404)


def test_delete_removes_messages(client: telnyx.Telnyx, http: httpx.Client) -> None:
    conv = client.ai.conversations.create()
    client.ai.conversations.add_message(conv.id, role="user", content="bye")
    client.ai.conversations.delete(conv.id)
    assert_envelope(http.get(f"/ai/conversations/{conv.id}/messages"), 404)


def test_last_message_at_moves_forward(client: telnyx.Telnyx) -> None:
    conv = client.ai.conversations.create()
    time.sleep(0.01)
    client.ai.conversations.add_message(conv.id, role="user", content="hello")
    first = client.ai.conversations.retrieve(conv.id).data
    assert first is not None and first.last_message_at > conv.created_at
    old = datetime(2020, 1, 1, tzinfo=UTC)
    client.ai.conversations.add_message(conv.id, role="user", content="imported", sent_at=old)
    again = client.ai.conversations.retrieve(conv.id).data
    assert again is not None and again.last_message_at == first.last_message_at


def test_idempotency_key_replays_creates(client: telnyx.Telnyx, client_b: telnyx.Telnyx) -> None:
    import uuid

    key = uuid.uuid4().hex
    first = client.ai.conversations.create(name="once", idempotency_key=key)
    again = client.ai.conversations.create(name="once", idempotency_key=key)
    assert again.id == first.id and again.created_at == first.created_at
    assert client_b.ai.conversations.create(name="once", idempotency_key=key).id != first.id  # per tenant
    with pytest.raises(telnyx.BadRequestError):
        client.ai.conversations.create(name="different", idempotency_key=key)
    for _ in range(2):
        client.ai.conversations.add_message(first.id, role="user", content="hi", idempotency_key=key)
    assert len(list(client.ai.conversations.messages.list(first.id))) == 1
    template = client.ai.conversations.insights.create(name="t", instructions="i", idempotency_key=key).data
    assert (
        client.ai.conversations.insights.create(name="t", instructions="i", idempotency_key=key).data
        == template
    )
    groups = client.ai.conversations.insight_groups
    group = groups.insight_groups(name="g", idempotency_key=key).data
    assert groups.insight_groups(name="g", idempotency_key=key).data.id == group.id
