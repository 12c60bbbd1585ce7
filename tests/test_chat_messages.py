"""Chat message fields and schema bounds on the live server: `name`, `tool_call_id` and an assistant's text
beside its tool calls reach the prompt (they were accepted and dropped); what cannot be honoured is a 400
naming the field; `strict` either way constrains a function's arguments; schemas and regexes nested too deep
are a 400 naming their field (they reached the validator and raised RecursionError)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ASK = {"role": "user", "content": "What is the weather in Paris?"}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}},
    "required": ["city"],
}


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


def prompt_tokens(oai: openai.OpenAI, messages: list[dict[str, Any]]) -> int:
    result = oai.chat.completions.create(model=SMOL, messages=messages, max_tokens=1, temperature=0)
    assert result.usage is not None
    return result.usage.prompt_tokens


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    (error,) = response.json()["errors"]
    return error


def test_message_name_reaches_the_prompt(oai: openai.OpenAI) -> None:
    plain = prompt_tokens(oai, [ASK])
    assert prompt_tokens(oai, [{**ASK, "name": "alice"}]) > plain


def test_tool_result_is_tied_to_its_call_and_assistant_text_is_kept(oai: openai.OpenAI) -> None:
    calling = {"role": "assistant", "content": None, "tool_calls": [CALL]}
    untied = prompt_tokens(oai, [ASK, calling, {"role": "tool", "content": "Sunny"}])
    tied = prompt_tokens(oai, [ASK, calling, {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"}])
    assert tied > untied  # the result names its call
    talking = {**calling, "content": "Let me check the weather service for you."}
    assert prompt_tokens(oai, [ASK, talking, {"role": "tool", "content": "Sunny"}]) > untied


@pytest.mark.parametrize(
    ("history", "status", "pointer"),
    [
        ([{"role": "tool", "tool_call_id": "call_9", "content": "x"}], 400, "/messages/1/tool_call_id"),
        (
            [
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "name": "get_time", "content": "x"},
            ],
            400,
            "/messages/2/name",
        ),
        ([{"role": "user", "tool_call_id": "call_1", "content": "x"}], 400, "/messages/1/tool_call_id"),
        ([{"role": "user", "tool_calls": [CALL], "content": "x"}], 400, "/messages/1/tool_calls"),
        ([{"role": "user", "name": "two words", "content": "x"}], 422, "/messages/1/name"),
    ],
)
def test_message_fields_that_cannot_be_honoured_are_refused(
    http: httpx.Client, history: list[dict[str, Any]], status: int, pointer: str
) -> None:
    body = {"messages": [ASK, *history], "max_tokens": 2}
    assert error_of(http.post("/ai/openai/chat/completions", json=body), status)["source"] == {
        "pointer": pointer
    }


def test_json_schema_beside_another_response_format_type_is_refused(http: httpx.Client) -> None:
    fmt = {"type": "json_object", "json_schema": {"name": "x", "schema": PARAMETERS}}
    body = {"messages": [ASK], "max_tokens": 2, "response_format": fmt}
    error = error_of(http.post("/ai/openai/chat/completions", json=body), 422)
    assert error["source"] == {"pointer": "/response_format"}


@pytest.mark.parametrize("strict", [True, False])
def test_function_arguments_follow_the_schema_strict_or_not(oai: openai.OpenAI, strict: bool) -> None:
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": PARAMETERS, "strict": strict},
    }
    result = oai.chat.completions.create(
        model=SMOL,
        messages=[ASK],
        tools=[tool],
        tool_choice="required",
        max_tokens=40,
        temperature=0,
    )
    (call,) = result.choices[0].message.tool_calls or []
    jsonschema.validate(json.loads(call.function.arguments), PARAMETERS)


def nested_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


DEEP = nested_schema(200)


@pytest.mark.parametrize(
    ("extra", "pointer"),
    [
        ({"guided_json": DEEP}, "/guided_json"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": DEEP}}},
            "/response_format/json_schema/schema",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": DEEP}}]},
            "/tools/0/function/parameters",
        ),
        ({"guided_regex": "(" * 2000 + "a" + ")" * 2000}, "/guided_regex"),
    ],
)
def test_too_deep_schemas_and_regexes_are_400_naming_the_field(
    http: httpx.Client, extra: dict[str, Any], pointer: str
) -> None:
    body = {"messages": [ASK], "max_tokens": 2, **extra}
    error = error_of(http.post("/ai/openai/chat/completions", json=body), 400)
    assert error["code"] == "10015" and error["source"] == {"pointer": pointer}, error
    assert "too deep" in error["detail"] or "levels deep" in error["detail"]


def test_schema_within_the_depth_bound_is_served(http: httpx.Client) -> None:
    body = {"messages": [ASK], "max_tokens": 2, "guided_json": nested_schema(10)}
    assert http.post("/ai/openai/chat/completions", json=body).status_code == 200
