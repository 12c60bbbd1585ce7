"""Anthropic's Messages API (`/v2/ai/anthropic/v1/messages`) on SmolLM2-135M, through the anthropic SDK
(base URL `…/v2/ai/anthropic`, `x-api-key`) and the telnyx SDK (strict mode); bad input through httpx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import httpx
import openai
import pytest
import telnyx
from anthropic.types import RawMessageStreamEvent
from pydantic import BaseModel, TypeAdapter

from inferline.areas.anthropic.protocol import MessagesRequest
from inferline.areas.anthropic.service import MessagesService
from inferline.areas.chat.protocol import ChatCompletionRequest
from inferline.errors import UpstreamError
from tests.chat_streams import StreamingChat, native_call_chunks
from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
GREEDY = {"temperature": 0}  # the anthropic SDK no longer has a `temperature` argument
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def claude(server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.v2 + "/ai/anthropic", api_key=server.key_a, max_retries=0)


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0)


def chat_text(oai: openai.OpenAI, messages: list[dict[str, Any]], max_tokens: int, **extra: Any) -> str:
    """The chat completion of `messages` (greedy), to compare a translated request with."""
    reply = oai.chat.completions.create(
        model=SMOL, messages=messages, max_tokens=max_tokens, extra_body=GREEDY, **extra
    )
    return reply.choices[0].message.content or ""


def test_text_message(claude: anthropic.Anthropic) -> None:
    m = claude.messages.create(model=SMOL, max_tokens=8, messages=[{"role": "user", "content": "Say hello."}])
    assert m.type == "message" and m.role == "assistant" and m.model == SMOL and m.id.startswith("msg_")
    assert m.content[0].type == "text" and m.content[0].text
    assert m.stop_reason in ("end_turn", "max_tokens") and m.stop_sequence is None
    assert 0 < m.usage.output_tokens <= 8 and m.usage.input_tokens > 0


def test_system_and_turns_reach_the_model_as_chat_would(
    claude: anthropic.Anthropic, oai: openai.OpenAI
) -> None:
    turns = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Paris."}]},
        {"role": "user", "content": [{"type": "text", "text": "And of Italy?"}]},
    ]
    system = "You are a geography teacher. Answer in one word."
    for given in (system, [{"type": "text", "text": system}]):
        m = claude.messages.create(model=SMOL, max_tokens=12, extra_body=GREEDY, system=given, messages=turns)
        flat = [
            {
                "role": t["role"],
                "content": t["content"] if isinstance(t["content"], str) else t["content"][0]["text"],
            }
            for t in turns
        ]
        assert m.content[0].text == chat_text(oai, [{"role": "system", "content": system}, *flat], 12)


def test_stop_sequences_end_the_text(claude: anthropic.Anthropic, oai: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": "Count from 1 to 10."}]
    free = claude.messages.create(model=SMOL, max_tokens=40, extra_body=GREEDY, messages=ask)
    assert "5" in free.content[0].text  # so the stop below has something to cut
    m = claude.messages.create(
        model=SMOL, max_tokens=40, extra_body=GREEDY, messages=ask, stop_sequences=["5"]
    )
    text = m.content[0].text
    assert "5" not in text and free.content[0].text.startswith(text) and m.stop_reason == "end_turn"
    assert text == chat_text(oai, ask, 40, stop=["5"])


class City(BaseModel):
    name: str
    population: int


def test_structured_output_parses(claude: anthropic.Anthropic) -> None:
    m = claude.messages.parse(
        model=SMOL,
        max_tokens=60,
        extra_body=GREEDY,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        output_format=City,
    )
    assert isinstance(m.parsed_output, City)


def test_tool_use_and_tool_result(claude: anthropic.Anthropic) -> None:
    question = {"role": "user", "content": "What is the weather in Paris?"}
    m = claude.messages.create(
        model=SMOL,
        max_tokens=40,
        extra_body=GREEDY,
        messages=[question],
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert m.stop_reason == "tool_use"
    (use,) = [b for b in m.content if b.type == "tool_use"]
    assert use.name == "get_weather" and isinstance(use.input["city"], str) and use.id
    follow = claude.messages.create(
        model=SMOL,
        max_tokens=20,
        extra_body=GREEDY,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": m.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 25 C"}],
            },
        ],
    )
    assert follow.content and follow.stop_reason in ("end_turn", "max_tokens", "tool_use")


def test_tool_result_must_name_an_earlier_tool_use(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model=SMOL,
            max_tokens=4,
            messages=[
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nope", "content": "x"}]}
            ],
        )
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error" and "nope" in body["error"]["message"]
    assert body["errors"][0]["source"]["pointer"] == "/messages/0/content/0/tool_use_id"


def test_stream_text(claude: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "Tell me about cats."}]
    with claude.messages.stream(model=SMOL, max_tokens=12, extra_body=GREEDY, messages=ask) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.content[0].text == text
    assert (
        final.stop_reason == "max_tokens" and final.usage.output_tokens == 12 and final.usage.input_tokens > 0
    )
    same = claude.messages.create(model=SMOL, max_tokens=12, extra_body=GREEDY, messages=ask)
    assert same.content[0].text == text


def test_stream_events(server: LiveServer) -> None:
    body = {"model": SMOL, "max_tokens": 6, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"x-api-key": server.key_a, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", server.v2 + "/ai/anthropic/v1/messages", json=body, headers=headers) as r:
        lines = [line for line in r.iter_lines() if line.startswith("event: ")]
    kinds = [line.removeprefix("event: ") for line in lines]
    assert kinds[:3] == ["message_start", "ping", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[3:-3]) == {"content_block_delta"}


def test_stream_tool_use(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=SMOL,
        max_tokens=40,
        extra_body=GREEDY,
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[WEATHER],
        tool_choice={"type": "any"},
    ) as s:
        final = s.get_final_message()
    (use,) = [b for b in final.content if b.type == "tool_use"]
    assert (
        use.name == "get_weather" and isinstance(use.input["city"], str) and final.stop_reason == "tool_use"
    )


def test_unknown_model_is_not_found(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(
            model="no/such-model", max_tokens=4, messages=[{"role": "user", "content": "x"}]
        )
    assert "no/such-model" in caught.value.message
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_top_k_and_metadata(claude: anthropic.Anthropic) -> None:
    """`top_k` and `metadata.user_id` reach chat (which takes them) or are a 400 naming them."""
    ask = {"model": SMOL, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}
    fields = ChatCompletionRequest.model_fields
    for extra, chat_field in (({"top_k": 5}, "top_k"), ({"metadata": {"user_id": "u-1"}}, "user")):
        if chat_field in fields:
            assert claude.messages.create(**ask, extra_body=extra).content
        else:
            with pytest.raises(anthropic.BadRequestError):
                claude.messages.create(**ask, extra_body=extra)


def test_telnyx_sdk_messages(client: telnyx.Telnyx) -> None:
    m = client.ai.anthropic.v1.messages(
        model=SMOL, max_tokens=6, system="Be brief.", messages=[{"role": "user", "content": "Say hi."}]
    )
    assert m["type"] == "message" and m["content"][0]["type"] == "text" and m["content"][0]["text"]
    assert m["usage"]["output_tokens"] <= 6


def test_x_api_key_only_on_anthropic_paths(server: LiveServer) -> None:
    headers = {"x-api-key": server.key_a}
    body = {"model": SMOL, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}
    assert httpx.post(server.v2 + "/ai/anthropic/v1/messages", json=body, headers=headers).status_code == 200
    chat = {"model": SMOL, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}
    r = httpx.post(server.v2 + "/ai/chat/completions", json=chat, headers=headers)
    assert r.status_code == 401
    bad = httpx.post(server.v2 + "/ai/anthropic/v1/messages", json=body, headers={"x-api-key": "nope"})
    assert bad.status_code == 401 and bad.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("extra", "status", "pointer"),
    [
        ({"max_tokens": None}, 422, "/max_tokens"),
        ({"temperature": 1.5}, 422, "/temperature"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, 422, "/stop_sequences"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, 400, "/thinking/type"),
        ({"container": "c"}, 400, "/container"),
        ({"billing_group_id": "00000000-0000-0000-0000-000000000000"}, 400, "/billing_group_id"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, 400, "/tools/0/type"),
        ({"tool_choice": {"type": "tool"}}, 422, "/tool_choice"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            400,
            "/messages/0/content/0/type",
        ),
        (
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]},
            400,
            "/messages/1",
        ),
        ({"region": "EU", "mode": "strict"}, 422, "/region"),
    ],
)
def test_refused_parameters_are_named(
    server: LiveServer, extra: dict[str, Any], status: int, pointer: str
) -> None:
    body = {"model": SMOL, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}], **extra}
    body = {k: v for k, v in body.items() if v is not None}
    r = httpx.post(server.v2 + "/ai/anthropic/v1/messages", json=body, headers={"x-api-key": server.key_a})
    assert r.status_code == status, r.text
    error = r.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["errors"][0]["source"]["pointer"].startswith(pointer), error


# ---- streamed native tool calls (no model of the test profile streams them) --------------------------------
def test_streamed_native_calls_become_tool_use_blocks() -> None:
    async def run() -> list[dict[str, Any]]:
        service = MessagesService(StreamingChat(native_call_chunks()))
        body = MessagesRequest(
            model=SMOL, max_tokens=40, stream=True, messages=[{"role": "user", "content": "Weather?"}]
        )
        started = await service.stream("tenant", body)
        text = "".join([line async for line in started.events])
        return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]

    events = [e for e in asyncio.run(run()) if e["type"] != "ping"]
    adapter = TypeAdapter(RawMessageStreamEvent)
    for event in events:
        adapter.validate_python(event)  # each event is the SDK's type
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [(b["type"], b.get("id")) for b in starts] == [
        ("text", None),
        ("tool_use", "call_a"),
        ("tool_use", "call_b"),
    ]
    inputs: dict[int, str] = {}
    for e in events:
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta":
            inputs[e["index"]] = inputs.get(e["index"], "") + e["delta"]["partial_json"]
    assert {i: json.loads(v) for i, v in inputs.items()} == {1: {"city": "Oslo"}, 2: {}}
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert stops == [0, 1, 2]
    delta = events[-2]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"] == {
        "input_tokens": 7,
        "output_tokens": 5,
    }
    assert events[-1]["type"] == "message_stop"


def test_a_failure_midway_is_an_error_event() -> None:
    async def run() -> str:
        chat = StreamingChat(native_call_chunks()[:1], UpstreamError("engine went away"))
        body = MessagesRequest(
            model=SMOL, max_tokens=4, stream=True, messages=[{"role": "user", "content": "x"}]
        )
        started = await MessagesService(chat).stream("tenant", body)
        return "".join([line async for line in started.events])

    last = asyncio.run(run()).strip().split("\n\n")[-1]
    assert last.startswith("event: error\n")
    error = json.loads(last.split("data: ", 1)[1])
    assert error == {"type": "error", "error": {"type": "api_error", "message": "engine went away"}}
