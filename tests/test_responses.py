"""The OpenAI Responses API (`/v2/ai/openai/responses`, `/v1/responses`) on SmolLM2-135M, through the openai
SDK (`responses.create`, `.parse`, `.stream`) and the telnyx SDK (strict mode); bad input through httpx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
import telnyx
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from inferline.areas.responses.protocol import ResponseCreateRequest
from inferline.areas.responses.service import ResponsesService
from inferline.errors import UpstreamError
from tests.chat_streams import StreamingChat, native_call_chunks
from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0)


def chat_text(oai: openai.OpenAI, messages: list[dict[str, Any]], max_tokens: int) -> str:
    """The chat completion of `messages` (greedy), to compare a translated request with."""
    reply = oai.chat.completions.create(model=SMOL, messages=messages, max_tokens=max_tokens, temperature=0)
    return reply.choices[0].message.content or ""


def test_text_input(oai: openai.OpenAI) -> None:
    r = oai.responses.create(model=SMOL, input="Say hello.", max_output_tokens=8, temperature=0)
    assert r.object == "response" and r.id.startswith("resp_") and r.model == SMOL
    assert r.status in ("completed", "incomplete") and r.output[0].type == "message"
    assert r.output_text and r.usage is not None and 0 < r.usage.output_tokens <= 8
    assert r.usage.input_tokens > 0 and r.max_output_tokens == 8
    assert r.status == "completed" or r.incomplete_details.reason == "max_output_tokens"


def test_messages_and_instructions_reach_the_model_as_chat_would(oai: openai.OpenAI) -> None:
    """A message list with instructions generates exactly what chat generates for the same messages."""
    turns = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": [{"type": "input_text", "text": "And of Italy?"}]},
    ]
    system = "You are a geography teacher. Answer in one word."
    r = oai.responses.create(
        model=SMOL, input=turns, instructions=system, max_output_tokens=12, temperature=0
    )
    flat = [{**t, "content": "And of Italy?"} if isinstance(t["content"], list) else t for t in turns]
    assert r.output_text == chat_text(oai, [{"role": "system", "content": system}, *flat], 12)
    assert r.instructions == system
    without = oai.responses.create(model=SMOL, input=turns, max_output_tokens=12, temperature=0)
    assert without.output_text == chat_text(oai, flat, 12)


class City(BaseModel):
    name: str
    population: int


def test_json_schema_output_parses(oai: openai.OpenAI) -> None:
    r = oai.responses.parse(
        model=SMOL, input="Describe Paris as JSON.", text_format=City, max_output_tokens=60, temperature=0
    )
    assert isinstance(r.output_parsed, City)
    assert r.text.format.type == "json_schema"


def test_function_call_and_its_output(oai: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = oai.responses.create(
        model=SMOL,
        input=question,
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=40,
        temperature=0,
    )
    calls = [item for item in r.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].call_id
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    assert r.tools[0].name == "get_weather"
    follow = oai.responses.create(
        model=SMOL,
        input=[
            *question,
            *r.output,
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 25 C"},
        ],
        tools=[WEATHER],
        max_output_tokens=24,
        temperature=0,
    )
    assert follow.status in ("completed", "incomplete") and follow.output


def test_function_output_must_name_an_earlier_call(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(
            model=SMOL,
            input=[
                {"role": "user", "content": "Hi"},
                {"type": "function_call_output", "call_id": "call_nowhere", "output": "x"},
            ],
            max_output_tokens=4,
        )
    assert caught.value.param == "input[1].call_id" and "call_nowhere" in caught.value.message


def test_stream_events_parse_and_deltas_make_the_text(oai: openai.OpenAI) -> None:
    with oai.responses.stream(
        model=SMOL, input="Tell me about cats.", max_output_tokens=12, temperature=0
    ) as s:
        events = list(s)
    kinds = [e.type for e in events]
    expected = [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert [k for k in dict.fromkeys(kinds) if k in expected] == expected
    assert [e.sequence_number for e in events] == list(range(len(events)))
    # 12 tokens cut the answer: OpenAI's `response.incomplete` (the SDK's final response needs `completed`)
    assert kinds[-1] == "response.incomplete"
    final = events[-1].response
    assert final.incomplete_details.reason == "max_output_tokens" and final.usage.output_tokens == 12
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas and deltas == final.output_text
    same = oai.responses.create(model=SMOL, input="Tell me about cats.", max_output_tokens=12, temperature=0)
    assert same.output_text == deltas and same.status == "incomplete"


def test_stream_final_response(oai: openai.OpenAI) -> None:
    """An answer that ends before its limit is `response.completed`, the SDK's final response."""
    with oai.responses.stream(model=SMOL, input="Hi", max_output_tokens=40, temperature=0) as s:
        deltas = "".join(e.delta for e in s if e.type == "response.output_text.delta")
        final = s.get_final_response()
    assert final.status == "completed" and deltas == final.output_text
    assert final.output[0].status == "completed" and final.usage.output_tokens < 40


def test_stream_with_a_function_call(oai: openai.OpenAI) -> None:
    with oai.responses.stream(
        model=SMOL,
        input="Weather in Rome?",
        tools=[WEATHER],
        tool_choice="required",
        max_output_tokens=40,
        temperature=0,
    ) as s:
        events = list(s)
        final = s.get_final_response()
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments)["city"]
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.arguments == done[0].arguments


def test_conversation_is_context_and_is_appended(
    server: LiveServer, oai: openai.OpenAI, client: telnyx.Telnyx
) -> None:
    conv = client.ai.conversations.create(name="responses")
    system = "You are a helpful assistant."
    first = oai.responses.create(
        model=SMOL,
        conversation=conv.id,
        instructions=system,
        input="My name is Ada.",
        max_output_tokens=10,
        temperature=0,
    )
    assert first.conversation is not None and first.conversation.id == conv.id
    second = oai.responses.create(
        model=SMOL,
        conversation={"id": conv.id},
        input="What is my name?",
        max_output_tokens=10,
        temperature=0,
    )
    history = [
        {"role": "system", "content": system},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.output_text == chat_text(oai, history, 10)  # the stored turn and instructions are context
    stored = list(client.ai.conversations.messages.list(conv.id))
    assert [(m.role, m.text) for m in stored] == [(h["role"], h["content"]) for h in history[1:]] + [
        ("assistant", second.output_text)
    ]
    assert stored[0].metadata == {"instructions": system}

    # a function call and its output are appended too; the follow-up finds the call in the conversation
    called = oai.responses.create(
        model=SMOL,
        conversation=conv.id,
        input="Weather in Oslo?",
        tools=[WEATHER],
        tool_choice="required",
        max_output_tokens=40,
        temperature=0,
    )
    (call,) = [item for item in called.output if item.type == "function_call"]
    oai.responses.create(
        model=SMOL,
        conversation=conv.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Snow"}],
        max_output_tokens=8,
    )
    stored = list(client.ai.conversations.messages.list(conv.id))
    assert stored[5].tool_calls is not None and stored[5].tool_calls[0].id == call.call_id
    assert (stored[6].role, stored[6].text, stored[6].tool_call_id) == ("tool", "Snow", call.call_id)
    assert stored[7].role == "assistant" and len(stored) == 8


def test_streamed_turn_is_appended(oai: openai.OpenAI, client: telnyx.Telnyx) -> None:
    conv = client.ai.conversations.create()
    with oai.responses.stream(
        model=SMOL, conversation=conv.id, input="Hi", max_output_tokens=40, temperature=0
    ) as s:
        text = s.get_final_response().output_text
    stored = list(client.ai.conversations.messages.list(conv.id))
    assert text and [(m.role, m.text) for m in stored] == [("user", "Hi"), ("assistant", text)]


def test_another_tenants_conversation_is_404(server: LiveServer, client: telnyx.Telnyx) -> None:
    conv = client.ai.conversations.create()
    other = openai.OpenAI(api_key=server.key_b, base_url=server.v2 + "/ai/openai", max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        other.responses.create(model=SMOL, conversation=conv.id, input="hi", max_output_tokens=4)
    assert caught.value.param == "conversation"
    assert list(client.ai.conversations.messages.list(conv.id)) == []


def test_v1_responses(server: LiveServer) -> None:
    v1 = openai.OpenAI(api_key=server.key_a, base_url=server.url + "/v1", max_retries=0)
    r = v1.responses.create(model=SMOL, input="Hi", max_output_tokens=4)
    assert r.output_text and r.usage.output_tokens <= 4


def test_telnyx_sdk_create_response(client: telnyx.Telnyx) -> None:
    r = client.ai.openai.create_response(
        model=SMOL,
        input={"role": "user", "content": "Say hi."},  # the SDK types `input` as one item
        instructions="Be brief.",
        extra_body={"max_output_tokens": 6},
    )
    assert r["object"] == "response" and r["status"] in ("completed", "incomplete")
    assert r["output"][0]["type"] == "message" and r["output"][0]["content"][0]["text"]


@pytest.mark.parametrize(
    ("extra", "status", "param"),
    [
        ({"context_management": [{"type": "compaction"}]}, 400, "context_management"),
        ({"text": {"verbosity": "low"}}, 400, "text.verbosity"),
        ({"store": True}, 400, "store"),
        ({"previous_response_id": "resp_1"}, 400, "previous_response_id"),
        ({"reasoning": {"effort": "high"}}, 400, "reasoning.effort"),
        ({"reasoning": {"summary": "auto"}}, 400, "reasoning.summary"),
        ({"region": "EU", "mode": "strict"}, 422, "region"),
        ({"max_output_tokens": 0}, 422, "max_output_tokens"),
        ({"tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
        ({"include": ["reasoning.encrypted_content"]}, 400, "include[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, 400, None),
        ({"input": [{"type": "item_reference", "id": "x"}]}, 400, "input[0].type"),
        ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": 3}}}}, 400, None),
        ({"model": "no/such-model"}, 404, "model"),
    ],
)
def test_refused_parameters_are_named(
    http: httpx.Client, extra: dict[str, Any], status: int, param: str | None
) -> None:
    body = {"model": SMOL, "input": "hi", "max_output_tokens": 4, **extra}
    r = http.post("/ai/openai/responses", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    if param is not None:
        assert error["param"] == param, error
    if "input" in extra and param is None:
        assert error["param"] == "input[0].content[0].type"
    if "text" in extra and param is None:
        assert error["param"].startswith("text.format.schema")
    assert r.json()["errors"][0]["detail"]


def test_store_false_and_neutral_defaults_are_accepted(oai: openai.OpenAI) -> None:
    r = oai.responses.create(
        model=SMOL,
        input="Hi",
        max_output_tokens=4,
        store=False,
        truncation="disabled",
        parallel_tool_calls=True,
        metadata={"ticket": "42"},
        reasoning={"effort": "none"},
        user="user-1",
        prompt_cache_key="thread-1",
        text={"verbosity": "medium"},
    )
    assert r.metadata == {"ticket": "42"} and r.parallel_tool_calls is True


# ---- streamed native tool calls (no model of the test profile streams them) --------------------------------
def stream_events(chat: StreamingChat) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        service = ResponsesService(chat, None)  # type: ignore[arg-type]
        body = ResponseCreateRequest(model=SMOL, input="Weather?", stream=True, tools=[WEATHER])
        started = await service.stream("tenant", body)
        text = "".join([line async for line in started.events])
        return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]

    return asyncio.run(run())


def test_streamed_native_calls_become_function_call_items() -> None:
    events = stream_events(StreamingChat(native_call_chunks()))
    adapter = TypeAdapter(ResponseStreamEvent)
    for event in events:
        adapter.validate_python(event)  # each event is the SDK's type
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = Response.model_validate(events[-1]["response"])
    assert events[-1]["type"] == "response.completed" and final.output_text == "Let me check."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city": "Oslo"}'),
        ("call_b", "get_weather", "{}"),
    ]
    fragments = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert fragments == ['{"city": ', '"Oslo"}', "{}"]
    done = [e["arguments"] for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done == ['{"city": "Oslo"}', "{}"] and final.usage.total_tokens == 12


def test_a_failure_midway_ends_the_stream_with_error_and_failed() -> None:
    events = stream_events(StreamingChat(native_call_chunks()[:2], UpstreamError("engine went away")))
    adapter = TypeAdapter(ResponseStreamEvent)
    for event in events:
        adapter.validate_python(event)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "engine went away"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "engine went away"}
