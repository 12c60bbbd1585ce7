"""Grammar-constrained decoding: guided_json / guided_regex / guided_choice / response_format always parse or
match, streamed or not; conflicting or invalid constraints are 400s naming the field."""

from __future__ import annotations

import json
import re

import httpx
import jsonschema
import openai
import pytest
import telnyx

from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ASK = [{"role": "user", "content": "Describe a cat as JSON with its name, age and whether it is friendly."}]
CAT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 30},
        "friendly": {"type": "boolean"},
        "color": {"enum": ["black", "white", "orange"]},
    },
    "required": ["name", "age", "friendly", "color"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


def test_guided_json_output_validates(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model=SMOL, messages=ASK, max_tokens=80, temperature=0.7, seed=3, extra_body={"guided_json": CAT}
    )
    choice = result.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content), CAT)


def test_response_format_json_schema_through_telnyx_sdk_strict(client: telnyx.Telnyx) -> None:
    result = client.ai.openai.chat.create_completion(
        messages=ASK,
        model=SMOL,
        max_tokens=80,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "cat", "schema": CAT, "strict": True},
        },
    )
    jsonschema.validate(json.loads(result["choices"][0]["message"]["content"]), CAT)


def test_response_format_json_object_parses(client: telnyx.Telnyx) -> None:
    result = client.ai.openai.chat.create_completion(
        messages=[{"role": "user", "content": 'Reply with exactly this JSON: {"ok": true}'}],
        model=SMOL,
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_object"},
    )
    choice = result["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert isinstance(json.loads(choice["message"]["content"]), dict)


def test_guided_regex_matches(oai: openai.OpenAI) -> None:
    pattern = r"[0-9]{3}-[0-9]{4}"
    for seed in (1, 2):
        result = oai.chat.completions.create(
            model=SMOL,
            messages=[{"role": "user", "content": "Give me a phone number."}],
            max_tokens=12,
            temperature=1.0,
            seed=seed,
            extra_body={"guided_regex": pattern},
        )
        assert re.fullmatch(pattern, result.choices[0].message.content), result.choices[0].message.content


def test_guided_choice_streamed(oai: openai.OpenAI) -> None:
    choices = ["red", "green", "blue / teal"]
    stream = oai.chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Pick a color."}],
        max_tokens=8,
        n=2,
        temperature=1.2,
        seed=11,
        stream=True,
        extra_body={"guided_choice": choices},
    )
    texts: dict[int, str] = {}
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
    assert set(texts) == {0, 1}
    assert all(t in choices for t in texts.values()), texts


@pytest.mark.parametrize(
    ("extra", "pointer"),
    [
        ({"guided_json": CAT, "guided_regex": "a+"}, "/guided_regex"),
        ({"guided_choice": ["a"], "response_format": {"type": "json_object"}}, "/response_format"),
        ({"guided_json": {"type": "object", "properties": {"a": {"type": "no-such-type"}}}}, "/guided_json"),
        ({"guided_regex": "(unclosed"}, "/guided_regex"),
        ({"guided_regex": "(?=a)b"}, "/guided_regex"),  # valid Python, not enforceable by the grammar
        ({"guided_regex": r"cat\b"}, "/guided_regex"),
        ({"guided_json": {"type": "string", "pattern": "^(?!x)"}}, "/guided_json/pattern"),
        ({"guided_json": {"type": "object", "properties": {"a": {"$ref": "#/defs/none"}}}}, "/guided_json"),
        ({"guided_choice": []}, "/guided_choice"),
        ({"response_format": {"type": "json_schema"}}, "/response_format"),
        ({"response_format": {"type": "yaml"}}, "/response_format/type"),
    ],
)
def test_bad_constraints_are_refused(http: httpx.Client, extra: dict, pointer: str) -> None:
    response = http.post("/ai/openai/chat/completions", json={"messages": ASK, "max_tokens": 4, **extra})
    assert response.status_code in (400, 422), response.text
    (error,) = response.json()["errors"]
    assert error["source"]["pointer"].startswith(pointer), error


def test_complete_text_interface_returns_schema_valid_json(server: LiveServer) -> None:
    text = server.container.chat.complete_text(
        "tenant-a", ASK, json_schema=CAT, max_tokens=96, temperature=0.2
    )
    jsonschema.validate(json.loads(text), CAT)
    plain = server.container.chat.complete_text("tenant-a", [{"role": "user", "content": "Hi"}], max_tokens=4)
    assert isinstance(plain, str) and plain
