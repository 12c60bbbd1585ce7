"""Function tools in the model's own format where its chat template declares one llama.cpp parses, and as
constrained JSON otherwise, through the OpenAI SDK.

- native: a second server serves a tiny random-weight qwen2 GGUF (`tests/tiny_qwen2.py`) carrying a
  Hermes / Qwen2.5-style template (`<tool_call>{"name", "arguments"}</tool_call>`). The tools reach
  llama.cpp as OpenAI tools; a required call starts with the format's opener, llama.cpp constrains its
  arguments to the schema and streams the parsed call as `tool_calls` deltas. The weights are random, so
  only what the grammar enforces is asserted: the call's shape, its function and its arguments' schema.
- constrained JSON: SmolLM2's ChatML template declares no tools (the session server).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
import uvicorn

from inferline import catalog
from inferline.app import create_app
from inferline.config import Settings
from inferline.container import build_container
from tests.conftest import API_KEY, LiveServer, free_port
from tests.databases import DatabaseFactory
from tests.tiny_qwen2 import build_tiny_qwen2

QWEN = "Qwen/Qwen2.5-Coder-1.5B-Instruct"
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
# A Hermes / Qwen2.5-style template: tools listed in the system turn, calls as <tool_call> JSON, results as
# <tool_response> in a user turn.
HERMES_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- 'Tools you can call:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    '{{- \'\\n</tools>\\nTo call one, reply <tool_call>\\n{"name": <name>, "arguments": <object>}\\n'
    "</tool_call><|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' and loop.first %}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- if message.content %}{{- message.content }}{%- endif %}"
    "{%- for call in message.tool_calls or [] %}"
    '{{- \'\\n<tool_call>\\n{"name": "\' + call.function.name + \'", "arguments": \' '
    "+ (call.function.arguments | tojson) + '}\\n</tool_call>' }}"
    "{%- endfor %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Rome"]}, "unit": {"enum": ["celsius", "fahrenheit"]}},
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
TOOLS = [WEATHER, TIME]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Iterator[LiveServer]:
    """A server whose only model is the tiny qwen2 GGUF with the Hermes-style template, as Qwen2.5-Coder."""
    models = tmp_path_factory.mktemp("native-tools-models")
    entry = catalog.find(QWEN)
    folder = catalog.model_dir(models, entry)
    folder.mkdir()
    build_tiny_qwen2(folder / entry.main_file, chat_template=HERMES_TEMPLATE)
    (folder / catalog.MARKER).write_text(json.dumps({"id": QWEN, "stand_in": "tests/tiny_qwen2.py"}))
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("native-tools-data")),
        INFERLINE_MODELS_DIR=models,
        database_url=databases.new("native_tools"),
        profile="default",
        api_key=API_KEY,
        log_level="warning",
    )
    container = build_container(settings)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(settings, container), port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        assert thread.is_alive(), "the native-tools test server did not start"
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", container, API_KEY, API_KEY)
    uv.should_exit = True
    thread.join(timeout=10)
    container.close()


def sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def qwen(native: LiveServer) -> openai.OpenAI:
    return sdk(native)


@pytest.fixture(scope="module")
def smol(server: LiveServer) -> openai.OpenAI:
    return sdk(server)


def assert_valid_call(name: str, arguments: str, offered: list[dict[str, Any]] = TOOLS) -> None:
    """The call names an offered function and its arguments are JSON following its parameters."""
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in offered}
    assert name in schemas
    jsonschema.validate(json.loads(arguments), schemas[name])


def test_template_with_a_tool_call_format_is_served_natively(native: LiveServer, server: LiveServer) -> None:
    for live, model, expected in ((native, QWEN, True), (server, SMOL, False)):
        pool = live.container.chat.pool
        assert pool.engine(pool.resolve("tenant", model)).native_tools is expected


def test_required_call_in_the_native_format(qwen: openai.OpenAI) -> None:
    result = qwen.chat.completions.create(
        model=QWEN,
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=200,
        temperature=0,
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert not choice.message.content
    (call,) = choice.message.tool_calls  # parallel_tool_calls=false: one call
    assert call.type == "function" and call.id
    assert_valid_call(call.function.name, call.function.arguments)


def test_parallel_tool_calls_true_allows_several_calls(qwen: openai.OpenAI) -> None:
    # Greedy decoding of the random weights keeps calling until max_tokens; false stops after one call.
    several = qwen.chat.completions.create(
        model=QWEN,
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=True,
        max_tokens=200,
        temperature=0,
    )
    calls = several.choices[0].message.tool_calls
    assert len(calls) >= 2
    for call in calls:
        assert_valid_call(call.function.name, call.function.arguments)
    assert len({call.id for call in calls}) == len(calls)


def test_named_function_streams_tool_call_deltas(qwen: openai.OpenAI) -> None:
    stream = qwen.chat.completions.create(
        model=QWEN,
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_tokens=200,
        temperature=0.8,
        seed=3,
        stream=True,
    )
    deltas, finish, usage = [], None, None
    for chunk in stream:
        for c in chunk.choices:
            deltas.extend(c.delta.tool_calls or [])
            finish = c.finish_reason or finish
        usage = chunk.usage or usage
    assert finish == "tool_calls" and usage is not None and usage.completion_tokens > 0
    assert {d.index for d in deltas} == {0}
    assert deltas[0].id and deltas[0].function.name == "get_time"
    pieces = [d.function.arguments for d in deltas if d.function and d.function.arguments]
    assert len(pieces) > 1  # the arguments stream as they are decoded
    assert_valid_call("get_time", "".join(pieces), [TIME])


def test_named_function_whole_completion(qwen: openai.OpenAI) -> None:
    result = qwen.chat.completions.create(
        model=QWEN,
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        max_tokens=200,
        temperature=0.8,
        seed=5,
    )
    (call,) = result.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert_valid_call("get_weather", call.function.arguments, [WEATHER])


def test_a_tool_result_round_trip_calls_again(qwen: openai.OpenAI) -> None:
    """The earlier call and its result reach the template as a structured call and tool message."""
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees, sunny"},
        {"role": "user", "content": "And the time in Paris?"},
    ]
    result = qwen.chat.completions.create(
        model=QWEN,
        messages=history,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=200,
        temperature=0,
    )
    (call,) = result.choices[0].message.tool_calls
    assert_valid_call(call.function.name, call.function.arguments)


def test_auto_answers_in_openai_shape(qwen: openai.OpenAI) -> None:
    """With `auto` the model chooses; these random weights write text (llama.cpp drops leading whitespace)."""
    result = qwen.chat.completions.create(
        model=QWEN, messages=ASK, tools=TOOLS, max_tokens=30, temperature=1.0, seed=6
    )
    choice = result.choices[0]
    assert result.usage.completion_tokens > 0
    if choice.message.tool_calls:
        assert choice.finish_reason in ("tool_calls", "length")
        for call in choice.message.tool_calls:
            assert_valid_call(call.function.name, call.function.arguments)
    else:
        assert choice.finish_reason in ("stop", "length") and isinstance(choice.message.content, str)


@pytest.mark.parametrize("parallel", [True, False])
def test_constrained_json_tools_give_one_call_either_way(smol: openai.OpenAI, parallel: bool) -> None:
    """Without a native format the reply is one call: parallel_tool_calls=true permits several calls, it
    does not require them, so both values are honoured."""
    result = smol.chat.completions.create(
        model=SMOL,
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=parallel,
        max_tokens=80,
        temperature=0,
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_")
    assert_valid_call(call.function.name, call.function.arguments)
