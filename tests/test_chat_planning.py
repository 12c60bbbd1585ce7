"""Chat request planning without a server: the typed `ChatCompletionRequest` (as the route parses it)
turned into a `Plan`: constraints, regex and schema checks, beam and best_of plans, tools, engine messages,
retrieval."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from inferline.areas.chat.planning import (
    DEFAULT_TEMPERATURE,
    MAX_SCHEMA_DEPTH,
    BeamSpec,
    Function,
    Retrieval,
    ascii_classes,
    check_regex,
    check_schema,
    constraint_of,
    engine_messages,
    json_depth,
    native_messages,
    plan,
    tool_constraint,
)
from inferline.areas.chat.protocol import ChatCompletionRequest, ChatMessage
from inferline.engines.chat import Constraint
from inferline.errors import BadRequest, InferlineError, UnsupportedParameter, ValidationFailed

HI = [{"role": "user", "content": "Hi"}]
CAT = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def request(**fields: Any) -> ChatCompletionRequest:
    """The typed request the route receives for this JSON body (messages default to one user turn)."""
    return ChatCompletionRequest.model_validate({"messages": HI, **fields})


def refused(error: type[InferlineError], pointer: str, **fields: Any) -> InferlineError:
    """The error planning raises for this body: its class (hence status) and the field it names."""
    with pytest.raises(error) as info:
        plan(request(**fields))
    assert info.value.pointer == pointer, info.value.detail
    return info.value


def messages(*items: dict[str, Any]) -> list[ChatMessage]:
    return [ChatMessage.model_validate(m) for m in items]


def nested_schema(depth: int) -> dict[str, Any]:
    """An object schema `depth` objects deep: 2 * depth + 1 JSON levels."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


# ---- the wire model's own checks ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"n": 1.5}, "n"),
        ({"n": 0}, "n"),
        ({"best_of": 9}, "best_of"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"guided_choice": []}, "guided_choice"),
        ({"guided_choice": ["a", ""]}, "guided_choice"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"response_format": {"type": "json_object", "json_schema": {"name": "x"}}}, "response_format"),
        ({"messages": [{"role": "user", "content": "x", "name": "two words"}]}, "messages"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": ""}]}, "messages"),
        ({"top_k": -2}, "top_k"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"logit_bias": {"5": 101}}, "logit_bias"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
    ],
)
def test_field_ranges_are_checked_by_the_wire_model(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        request(**fields)
    assert info.value.errors()[0]["loc"][0] == field


def test_whole_float_n_and_include_usage() -> None:
    assert plan(request(n=2.0)).n == 2
    assert request().include_usage and request(stream=True, stream_options={}).include_usage
    assert not plan(request(stream=True, stream_options={"include_usage": False})).include_usage


# ---- sampling and refusals ---------------------------------------------------------------------------------
def test_sampling_params_and_defaults() -> None:
    params = plan(request()).request.params
    assert params == {"temperature": DEFAULT_TEMPERATURE, "n": 1}
    params = plan(request(max_completion_tokens=5, top_p=0.5, stop="x", seed=3)).request.params
    assert params == {"max_tokens": 5, "top_p": 0.5, "stop": "x", "seed": 3, "temperature": 0.1, "n": 1}
    assert plan(request(max_tokens=4, max_completion_tokens=4)).request.params["max_tokens"] == 4
    assert plan(request(enable_thinking=False)).request.enable_thinking is False
    params = plan(request(top_k=1, repetition_penalty=1.3, logit_bias={"17": -100})).request.params
    assert (params["top_k"], params["repetition_penalty"], params["logit_bias"]) == (1, 1.3, {"17": -100})


def test_recorded_and_neutral_openai_fields_are_accepted() -> None:
    the_plan = plan(request(user="u-1", metadata={"team": "a"}, store=False, prompt_cache_key="k"))
    assert (the_plan.user, the_plan.metadata) == ("u-1", {"team": "a"})
    assert plan(request(safety_identifier="s-1")).user == "s-1"
    plan(request(modalities=["text"], verbosity="medium"))


@pytest.mark.parametrize(
    ("fields", "error", "pointer"),
    [
        ({"api_key_ref": "k"}, UnsupportedParameter, "/api_key_ref"),
        ({"reasoning_effort": "high"}, UnsupportedParameter, "/reasoning_effort"),
        ({"service_tier": "flex"}, UnsupportedParameter, "/service_tier"),
        ({"mode": "preferred"}, ValidationFailed, "/mode"),
        ({"region": "EU", "mode": "strict"}, ValidationFailed, "/region"),
        ({"top_logprobs": 2}, BadRequest, "/top_logprobs"),
        ({"stream_options": {"include_usage": True}}, BadRequest, "/stream_options"),
        ({"max_tokens": 4, "max_completion_tokens": 9}, BadRequest, "/max_completion_tokens"),
        ({"store": True}, UnsupportedParameter, "/store"),
        ({"parallel_tool_calls": False}, BadRequest, "/parallel_tool_calls"),
        ({"functions": [{"name": "f"}]}, UnsupportedParameter, "/functions"),
        ({"function_call": "auto"}, UnsupportedParameter, "/function_call"),
        ({"audio": {"voice": "alloy", "format": "mp3"}}, UnsupportedParameter, "/audio"),
        ({"prediction": {"type": "content", "content": "x"}}, UnsupportedParameter, "/prediction"),
        ({"web_search_options": {}}, UnsupportedParameter, "/web_search_options"),
        ({"modalities": ["text", "audio"]}, UnsupportedParameter, "/modalities"),
        ({"verbosity": "low"}, UnsupportedParameter, "/verbosity"),
    ],
)
def test_unsupported_and_cross_field_refusals(fields: dict[str, Any], error: type, pointer: str) -> None:
    refused(error, pointer, **fields)


def test_reasoning_none_default_tier_and_preferred_region_are_served() -> None:
    plan(request(reasoning_effort="none", service_tier="default", region="EU", mode="preferred"))


# ---- constraints -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "source", "constraint"),
    [
        ({"guided_json": CAT}, "guided_json", Constraint("json_schema", CAT)),
        ({"guided_regex": r"\d+"}, "guided_regex", Constraint("regex", "[0-9]+")),
        ({"guided_choice": ["yes", "no"]}, "guided_choice", Constraint("choice", ["yes", "no"])),
        ({"response_format": {"type": "json_object"}}, "response_format", Constraint("json_object")),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": CAT}}},
            "response_format",
            Constraint("json_schema", CAT),
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "c", "strict": False}}},
            "response_format",
            Constraint("json_object"),
        ),
    ],
)
def test_constraints(fields: dict[str, Any], source: str, constraint: Constraint) -> None:
    assert constraint_of(request(**fields)) == (source, constraint)
    the_plan = plan(request(**fields))
    assert the_plan.request.constraint == constraint and the_plan.constraint_pointer == f"/{source}"


@pytest.mark.parametrize("strict", [True, False])
def test_json_schema_strict_either_way_is_enforced(strict: bool) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": CAT, "strict": strict}}
    assert plan(request(response_format=fmt)).request.constraint == Constraint("json_schema", CAT)


def test_no_constraint() -> None:
    assert constraint_of(request(response_format={"type": "text"})) is None
    assert plan(request()).constraint_pointer is None


@pytest.mark.parametrize(
    ("fields", "error", "pointer"),
    [
        ({"guided_json": CAT, "guided_regex": "a"}, BadRequest, "/guided_regex"),
        (
            {"guided_choice": ["a"], "response_format": {"type": "json_object"}},
            BadRequest,
            "/response_format",
        ),
        ({"guided_json": {"type": "nonsense"}}, BadRequest, "/guided_json"),
        (
            {"guided_json": {"type": "string", "pattern": "(?=x)"}},
            UnsupportedParameter,
            "/guided_json/pattern",
        ),
        ({"guided_regex": "(unclosed"}, BadRequest, "/guided_regex"),
        ({"guided_regex": r"a\b"}, UnsupportedParameter, "/guided_regex"),
        ({"guided_regex": "(?i:a)b"}, UnsupportedParameter, "/guided_regex"),
        ({"guided_regex": "(?m)^a$"}, UnsupportedParameter, "/guided_regex"),
        ({"guided_regex": "(?a)a"}, UnsupportedParameter, "/guided_regex"),
        ({"guided_regex": "(?i)(?u)a"}, UnsupportedParameter, "/guided_regex"),
        ({"guided_regex": r"(a)\1"}, UnsupportedParameter, "/guided_regex"),
    ],
)
def test_bad_constraints(fields: dict[str, Any], error: type, pointer: str) -> None:
    refused(error, pointer, **fields)


def test_regex_checks() -> None:
    assert check_regex(r"^\d{3}-[a-z]+$", "/p") == r"^\d{3}-[a-z]+$"  # anchors are fine
    with pytest.raises(BadRequest, match="nests too deeply"):  # was a RecursionError
        check_regex("(" * 2000 + "a" + ")" * 2000, "/p")
    assert ascii_classes(r"[\w.]+@\S") == r"[A-Za-z0-9_.]+@[^\x09-\x0d\x20]"
    for pattern in ("(?i)yes", "(?s)a.b", "(?x) a b ", "(?is)a.b"):  # flags llguidance honours as Python does
        assert check_regex(pattern, "/p") == pattern


def test_schema_depth_is_bounded_before_the_validator_recurses() -> None:
    assert json_depth({}) == 1 and json_depth([1, {"a": [2]}]) == 3 and json_depth("x") == 0
    assert json_depth(nested_schema(2000)) == 4001  # measured iteratively
    deepest = nested_schema((MAX_SCHEMA_DEPTH - 1) // 2)
    assert json_depth(deepest) <= MAX_SCHEMA_DEPTH
    assert check_schema(deepest, "/guided_json") is deepest
    too_deep = nested_schema(500)  # jsonschema itself would raise RecursionError
    refused(BadRequest, "/guided_json", guided_json=too_deep)
    fmt = {"type": "json_schema", "json_schema": {"name": "d", "schema": too_deep}}
    error = refused(BadRequest, "/response_format/json_schema/schema", response_format=fmt)
    assert f"more than {MAX_SCHEMA_DEPTH} levels" in error.detail
    tool = {"type": "function", "function": {"name": "f", "parameters": too_deep}}
    refused(BadRequest, "/tools/0/function/parameters", tools=[tool])


# ---- beam search and best_of -------------------------------------------------------------------------------
def test_beam_plans() -> None:
    assert plan(request(use_beam_search=True)).beam == BeamSpec(2, 1, 64, 1.0, False)
    the_plan = plan(
        request(
            use_beam_search=True,
            n=2,
            best_of=4,
            max_completion_tokens=7,
            length_penalty=0.5,
            early_stopping=True,
        )
    )
    assert the_plan.beam == BeamSpec(width=4, n=2, max_tokens=7, length_penalty=0.5, early_stopping=True)
    assert the_plan.buffered and the_plan.best_of is None
    assert plan(request(use_beam_search=True, n=3)).beam == BeamSpec(3, 3, 64, 1.0, False)
    assert plan(request(use_beam_search=True, temperature=0, top_p=1)).beam is not None


@pytest.mark.parametrize(
    ("fields", "error", "pointer"),
    [
        ({"n": 3, "best_of": 2}, BadRequest, "/n"),
        ({"temperature": 0.5}, BadRequest, "/temperature"),
        ({"top_p": 0.5}, UnsupportedParameter, "/top_p"),
        ({"min_p": 0.1}, UnsupportedParameter, "/min_p"),
        ({"presence_penalty": 1}, UnsupportedParameter, "/presence_penalty"),
        ({"seed": 1}, UnsupportedParameter, "/seed"),
        ({"logprobs": True}, UnsupportedParameter, "/logprobs"),
        ({"top_k": 5}, UnsupportedParameter, "/top_k"),
        ({"repetition_penalty": 1.2}, UnsupportedParameter, "/repetition_penalty"),
        ({"logit_bias": {"5": 10}}, UnsupportedParameter, "/logit_bias"),
        ({"guided_choice": ["a"]}, UnsupportedParameter, "/use_beam_search"),
        ({"tools": [WEATHER]}, UnsupportedParameter, "/use_beam_search"),
    ],
)
def test_beam_refusals(fields: dict[str, Any], error: type, pointer: str) -> None:
    refused(error, pointer, use_beam_search=True, **fields)


@pytest.mark.parametrize("name", ["length_penalty", "early_stopping"])
def test_beam_options_need_beam_search(name: str) -> None:
    refused(BadRequest, f"/{name}", **{name: 1})


def test_sampling_best_of_generates_more_and_keeps_n() -> None:
    the_plan = plan(request(n=2, best_of=3))
    assert (the_plan.best_of, the_plan.n, the_plan.beam, the_plan.buffered) == (3, 2, None, True)
    assert the_plan.request.params["n"] == 3 and the_plan.request.params["logprobs"] is True
    assert not the_plan.user_logprobs
    refused(ValidationFailed, "/best_of", n=3, best_of=2)


# ---- tools -------------------------------------------------------------------------------------------------
def test_function_tools_default_to_auto() -> None:
    the_plan = plan(request(tools=[WEATHER]))
    params = WEATHER["function"]["parameters"]
    assert the_plan.tools == [Function("get_weather", "", params)]
    assert the_plan.tool_choice == "auto" and the_plan.calls_tools and the_plan.buffered


@pytest.mark.parametrize(
    ("choice", "planned", "calls"),
    [
        ("none", "none", False),
        ("auto", "auto", True),
        ("required", "required", True),
        ({"type": "function", "function": {"name": "get_weather"}}, "get_weather", True),
    ],
)
def test_tool_choices(choice: Any, planned: str, calls: bool) -> None:
    the_plan = plan(request(tools=[WEATHER], tool_choice=choice))
    assert (the_plan.tool_choice, the_plan.calls_tools) == (planned, calls)


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"tool_choice": "required"}, "/tool_choice"),
        ({"tool_choice": "auto"}, "/tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "/tool_choice",
        ),
        ({"tools": [WEATHER, WEATHER]}, "/tools"),
        ({"tools": [WEATHER], "guided_json": CAT}, "/tools"),
    ],
)
def test_tool_refusals(fields: dict[str, Any], pointer: str) -> None:
    refused(BadRequest, pointer, **fields)


def test_tools_none_with_a_constraint_is_fine() -> None:
    assert plan(request(tools=[WEATHER], tool_choice="none", guided_choice=["a"])).request.constraint


@pytest.mark.parametrize("strict", [True, False, None])
def test_function_arguments_are_constrained_by_their_schema_strict_or_not(strict: bool | None) -> None:
    tool = {"type": "function", "function": {**WEATHER["function"], "strict": strict}}
    the_plan = plan(request(tools=[tool], tool_choice="required"))
    constraint = tool_constraint(the_plan.tools, "required")
    assert constraint.value["properties"]["arguments"] == WEATHER["function"]["parameters"]


def test_tool_constraint_auto_offers_a_plain_reply() -> None:
    fn = Function("f", "", {"type": "object"})
    (call, reply) = tool_constraint([fn], "auto").value["anyOf"]
    assert call["properties"]["name"] == {"const": "f"} and reply["required"] == ["content"]


def test_parameterless_function_gets_an_empty_object_schema() -> None:
    the_plan = plan(request(tools=[{"type": "function", "function": {"name": "now"}}]))
    assert the_plan.tools == [Function("now", "", {"type": "object", "properties": {}})]


# ---- retrieval ---------------------------------------------------------------------------------------------
def test_retrieval_plans() -> None:
    tools = [
        {"type": "retrieval", "retrieval": {"bucket_ids": ["a", "b"]}},
        {"type": "retrieval", "retrieval": {"bucket_ids": ["c"], "max_num_results": 5}},
    ]
    the_plan = plan(request(tools=tools))
    assert the_plan.retrieval == [Retrieval(("a", "b"), 3), Retrieval(("c",), 5)]
    assert not the_plan.calls_tools and the_plan.tool_choice is None
    with pytest.raises(ValidationError):
        request(tools=[{"type": "retrieval", "retrieval": {"bucket_ids": []}}])


# ---- messages ----------------------------------------------------------------------------------------------
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def test_engine_messages_roles_and_parts() -> None:
    out = engine_messages(
        messages(
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        )
    )
    assert out == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "ab"}]
    with pytest.raises(UnsupportedParameter) as info:
        engine_messages(
            messages({"role": "user", "content": [{"type": "image_url", "image_url": "http://x"}]})
        )
    assert info.value.pointer == "/messages/0/content/0"


def test_names_prefix_the_text() -> None:
    out = engine_messages(
        messages(
            {"role": "system", "content": "Rules.", "name": "admin"},
            {"role": "user", "content": "Hi", "name": "alice"},
            {"role": "assistant", "content": "Hello", "name": "bot"},
        )
    )
    assert [m["content"] for m in out] == ["admin: Rules.", "alice: Hi", "bot: Hello"]


def test_tool_calls_and_results_are_tied_by_id() -> None:
    out = engine_messages(
        messages(
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
            {"role": "tool", "content": "untied result"},
        )
    )
    (call_text,) = out[1]["content"].splitlines()[1:]
    assert out[1]["content"].startswith("Checking.\n")
    assert json.loads(call_text) == {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    assert out[2] == {
        "role": "tool",
        "content": json.dumps({"tool_call_id": "call_1", "name": "get_weather", "content": "Sunny"}),
    }
    assert out[3] == {"role": "tool", "content": "untied result"}
    only_calls = engine_messages(messages({"role": "assistant", "content": None, "tool_calls": [CALL]}))
    assert json.loads(only_calls[0]["content"])["id"] == "call_1"
    named = engine_messages(messages({"role": "tool", "name": "lookup", "content": "42"}))
    assert json.loads(named[0]["content"]) == {"name": "lookup", "content": "42"}


def test_native_messages_keep_calls_and_results_structured() -> None:
    out = native_messages(
        messages(
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Weather?", "name": "alice"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        )
    )
    assert out == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "alice: Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "Sunny"},
    ]


@pytest.mark.parametrize(
    ("items", "pointer"),
    [
        ([{"role": "tool", "tool_call_id": "call_9", "content": "x"}], "/messages/0/tool_call_id"),
        (
            [
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_2", "content": "x"},
            ],
            "/messages/1/tool_call_id",
        ),
        (
            [
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "name": "other", "content": "x"},
            ],
            "/messages/1/name",
        ),
        ([{"role": "user", "tool_call_id": "call_1", "content": "x"}], "/messages/0/tool_call_id"),
        ([{"role": "user", "tool_calls": [CALL], "content": "x"}], "/messages/0/tool_calls"),
    ],
)
def test_message_fields_that_cannot_be_honoured_are_refused(
    items: list[dict[str, Any]], pointer: str
) -> None:
    refused(BadRequest, pointer, messages=items)
