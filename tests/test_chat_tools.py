"""Function tools through constrained JSON: OpenAI `tool_calls` (streamed too), tool_choice none/auto/required
and a named function; the `retrieval` tool over a tenant's bucket."""

from __future__ import annotations

import json
import time

import boto3
import httpx
import openai
import pytest
import telnyx
from botocore.config import Config

from tests.conftest import LiveServer, s3_auth

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone.",
        "parameters": {"type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}, "required": ["tz"]},
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


def test_required_tool_call_in_openai_shape(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model=SMOL, messages=ASK, tools=[WEATHER, TIME], tool_choice="required", max_tokens=60, temperature=0
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    args = json.loads(call.function.arguments)
    if call.function.name == "get_weather":
        assert isinstance(args["city"], str) and args["unit"] in ("celsius", "fahrenheit")
    else:
        assert call.function.name == "get_time" and args["tz"] in ("UTC", "CET")


def test_named_function_choice_streams_tool_calls(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model=SMOL,
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_tokens=40,
        temperature=0,
        stream=True,
    )
    calls, finish = [], None
    for chunk in stream:
        for c in chunk.choices:
            calls += c.delta.tool_calls or []
            finish = c.finish_reason or finish
    assert finish == "tool_calls"
    (call,) = calls
    assert call.function.name == "get_time" and json.loads(call.function.arguments)["tz"] in ("UTC", "CET")


def test_tool_choice_none_answers_in_text(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model=SMOL, messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=8, temperature=0
    )
    assert result.choices[0].message.tool_calls is None
    assert result.choices[0].message.content


def test_auto_gives_a_call_or_a_reply(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model=SMOL, messages=ASK, tools=[WEATHER], max_tokens=60, temperature=0
    )
    message = result.choices[0].message
    if message.tool_calls:
        assert result.choices[0].finish_reason == "tool_calls"
        assert json.loads(message.tool_calls[0].function.arguments)["unit"] in ("celsius", "fahrenheit")
    else:
        assert result.choices[0].finish_reason == "stop" and isinstance(message.content, str)


def test_tool_result_round_trip_is_served(oai: openai.OpenAI) -> None:
    first = oai.chat.completions.create(
        model=SMOL, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=60, temperature=0
    )
    call = first.choices[0].message.tool_calls[0]
    messages = [
        *ASK,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    second = oai.chat.completions.create(
        model=SMOL, messages=messages, tools=[WEATHER], tool_choice="none", max_tokens=8
    )
    assert second.choices[0].message.content


@pytest.mark.parametrize(
    ("extra", "pointer"),
    [
        ({"tool_choice": "required"}, "/tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "/tool_choice",
        ),
        ({"tools": [WEATHER, WEATHER]}, "/tools"),
        ({"tools": [WEATHER], "guided_regex": "a"}, "/tools"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "/tools/0"),
        ({"tools": [{"type": "retrieval", "retrieval": {"bucket_ids": []}}]}, "/tools/0"),
    ],
)
def test_bad_tools_are_refused(http: httpx.Client, extra: dict, pointer: str) -> None:
    response = http.post("/ai/openai/chat/completions", json={"messages": ASK, "max_tokens": 4, **extra})
    assert response.status_code in (400, 422), response.text
    assert response.json()["errors"][0]["source"]["pointer"].startswith(pointer)


def test_retrieval_tool_on_a_missing_bucket_is_404(http: httpx.Client) -> None:
    tool = {"type": "retrieval", "retrieval": {"bucket_ids": ["no-such-bucket-here"], "max_num_results": 2}}
    response = http.post(
        "/ai/openai/chat/completions", json={"messages": ASK, "max_tokens": 4, "tools": [tool]}
    )
    assert response.status_code == 404, response.text


def test_retrieval_tool_grounds_the_answer_in_the_tenants_bucket(
    server: LiveServer, http: httpx.Client, client_b: telnyx.Telnyx
) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(server.key_a),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    s3.create_bucket(Bucket="chat-rag")
    fact = "The secret code word of the inferline project is PINEAPPLE-42."
    s3.put_object(Bucket="chat-rag", Key="facts.txt", Body=fact.encode())
    task = http.post("/ai/embeddings", json={"bucket_name": "chat-rag"}).json()["data"]["task_id"]
    deadline = time.monotonic() + 180
    while http.get(f"/ai/embeddings/{task}").json()["data"]["status"] not in ("success", "partial_success"):
        assert time.monotonic() < deadline, "embedding task did not finish"
        time.sleep(0.2)
    question = [{"role": "user", "content": "What is the secret code word of the inferline project?"}]
    body = {
        "messages": question,
        "max_tokens": 8,
        "temperature": 0,
        "guided_choice": ["PINEAPPLE-42", "BANANA-17"],
    }
    plain = http.post("/ai/openai/chat/completions", json=body).json()
    tool = {"type": "retrieval", "retrieval": {"bucket_ids": ["chat-rag"], "max_num_results": 1}}
    grounded = http.post("/ai/openai/chat/completions", json={**body, "tools": [tool]}).json()
    assert grounded["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 10  # the document is in
    assert grounded["choices"][0]["message"]["content"] == "PINEAPPLE-42"
    with pytest.raises(telnyx.NotFoundError):  # another tenant has no such bucket
        client_b.ai.openai.chat.create_completion(messages=question, max_tokens=2, tools=[tool])
