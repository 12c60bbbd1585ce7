"""Chat completions on the embedded llama.cpp engine (SmolLM2-135M), through the telnyx SDK (strict mode),
the openai SDK (streaming and not) and raw HTTP for bad input. Outputs are kept to a few tokens."""

from __future__ import annotations

import httpx
import openai
import pytest
import telnyx

from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
HELLO = [
    {"role": "system", "content": "You are a friendly chatbot."},
    {"role": "user", "content": "Hello, world!"},
]


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    (error,) = response.json()["errors"]
    return error


def test_telnyx_sdk_strict_create_completion(client: telnyx.Telnyx) -> None:
    result = client.ai.openai.chat.create_completion(messages=HELLO, model=SMOL, max_tokens=8, temperature=0)
    assert result["object"] == "chat.completion"
    assert result["model"] == SMOL
    (choice,) = result["choices"]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = result["usage"]
    assert 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_both_paths_answer_the_same_with_telemetry_headers(http: httpx.Client) -> None:
    body = {"messages": HELLO, "max_tokens": 6, "temperature": 0}
    new = http.post("/ai/openai/chat/completions", json=body)
    old = http.post("/ai/chat/completions", json=body)
    assert new.status_code == old.status_code == 200, new.text + old.text
    assert new.json()["choices"] == old.json()["choices"]
    for response in (new, old):
        assert float(response.headers["x-queue-time-ms"]) >= 0
        assert float(response.headers["x-time-to-first-token-ms"]) > 0
        assert float(response.headers["x-tokens-per-second"]) > 0


def test_openai_sdk_stream_matches_non_stream(oai: openai.OpenAI) -> None:
    kwargs = {"model": SMOL, "messages": HELLO, "max_tokens": 8, "temperature": 0}
    whole = oai.chat.completions.create(**kwargs)
    chunks = list(oai.chat.completions.create(stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert (
        chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].object == "chat.completion.chunk"


def test_raw_sse_framing_and_stream_headers(http: httpx.Client) -> None:
    body = {"messages": HELLO, "max_tokens": 4, "stream": True, "model": SMOL}
    with http.stream("POST", "/ai/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert float(response.headers["x-time-to-first-token-ms"]) > 0
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert '"usage"' in lines[-2] and '"tokens_per_second"' in lines[-2]


def test_logprobs_in_openai_shape(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model=SMOL, messages=HELLO, max_tokens=3, temperature=0, logprobs=True, top_logprobs=2
    )
    content = result.choices[0].logprobs.content
    assert 1 <= len(content) <= 3
    assert "".join(t.token for t in content) == result.choices[0].message.content
    for token in content:
        assert token.logprob <= 0 and bytes(token.bytes).decode() == token.token
        assert len(token.top_logprobs) == 2
        assert token.top_logprobs[0].logprob >= token.top_logprobs[1].logprob
        assert token.logprob == token.top_logprobs[0].logprob  # greedy picks the most likely


def test_seed_makes_sampling_repeatable_and_n_gives_choices(oai: openai.OpenAI) -> None:
    kwargs = {"model": SMOL, "messages": HELLO, "max_tokens": 6, "temperature": 1.0, "seed": 1234}
    first = oai.chat.completions.create(**kwargs)
    again = oai.chat.completions.create(**kwargs)
    assert first.choices[0].message.content == again.choices[0].message.content
    many = oai.chat.completions.create(n=3, **{**kwargs, "temperature": 1.5, "seed": 99})
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert len({c.message.content for c in many.choices}) > 1


def test_stop_sequence_and_max_tokens(oai: openai.OpenAI) -> None:
    kwargs = {"model": SMOL, "messages": HELLO, "max_tokens": 10, "temperature": 0}
    full = oai.chat.completions.create(**kwargs)
    text = full.choices[0].message.content
    assert full.choices[0].finish_reason == "length" and full.usage.completion_tokens == 10
    words = text.split()
    assert len(words) >= 3
    stop = " " + words[2]
    cut = oai.chat.completions.create(stop=[stop], **kwargs)
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]


def test_penalties_and_top_p_min_p_are_applied(oai: openai.OpenAI) -> None:
    base = {
        "model": SMOL,
        "messages": [{"role": "user", "content": "Repeat: la la la la la la"}],
        "max_tokens": 12,
    }
    plain = oai.chat.completions.create(temperature=0, **base).choices[0].message.content
    penalised = oai.chat.completions.create(
        temperature=0, frequency_penalty=2.0, presence_penalty=2.0, **base
    )
    assert penalised.choices[0].message.content != plain
    narrow = oai.chat.completions.create(
        temperature=1.5, top_p=0.01, seed=5, extra_body={"min_p": 0.5}, **base
    )
    assert narrow.choices[0].message.content == plain  # only the top token survives: greedy


def test_multipart_content_and_tool_history_are_accepted(http: httpx.Client) -> None:
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "What is the weather"}, {"type": "text", "text": "?"}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    response = http.post("/ai/openai/chat/completions", json={"messages": messages, "max_tokens": 3})
    assert response.status_code == 200, response.text


def test_unknown_model_is_404_listing_installed(http: httpx.Client, client_b: telnyx.Telnyx) -> None:
    error = error_of(http.post("/ai/chat/completions", json={"messages": HELLO, "model": "nope/x"}), 404)
    assert SMOL in error["detail"] and error["source"] == {"pointer": "/model"}
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.openai.chat.create_completion(messages=HELLO, model="nope/x")


@pytest.mark.parametrize(
    ("body", "status", "pointer"),
    [
        ({}, 422, "/messages"),
        ({"messages": []}, 422, "/messages"),
        ({"messages": HELLO, "surprise": 1}, 422, "/surprise"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 422, "/messages/0/role"),
        ({"messages": HELLO, "top_logprobs": 2}, 400, "/top_logprobs"),
        ({"messages": HELLO, "logprobs": True, "top_logprobs": 30}, 422, "/top_logprobs"),
        ({"messages": HELLO, "temperature": 3}, 422, "/temperature"),
        ({"messages": HELLO, "n": 50}, 422, "/n"),
        ({"messages": HELLO, "n": 1.5}, 422, "/n"),
        ({"messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, 422, "/stop"),
        ({"messages": HELLO, "max_tokens": 0}, 422, "/max_tokens"),
        ({"messages": HELLO, "api_key_ref": "my-openai"}, 400, "/api_key_ref"),
        ({"messages": HELLO, "reasoning_effort": "high"}, 400, "/reasoning_effort"),
        ({"messages": HELLO, "service_tier": "flex"}, 400, "/service_tier"),
        ({"messages": HELLO, "mode": "strict"}, 422, "/mode"),
        ({"messages": HELLO, "region": "EU", "mode": "strict"}, 422, "/region"),
        ({"messages": HELLO, "length_penalty": 0.5}, 400, "/length_penalty"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": "http://x/y.png"}]}
                ]
            },
            400,
            "/messages/0/content/0",
        ),
    ],
)
def test_bad_input_is_an_envelope_naming_the_field(
    http: httpx.Client, body: dict, status: int, pointer: str
) -> None:
    for path in ("/ai/chat/completions", "/ai/openai/chat/completions"):
        error = error_of(http.post(path, json=body), status)
        assert error["source"]["pointer"].startswith(pointer), error


def test_region_preferred_is_served_here(http: httpx.Client) -> None:
    response = http.post(
        "/ai/openai/chat/completions", json={"messages": HELLO, "max_tokens": 2, "region": "EU"}
    )
    assert response.status_code == 200, response.text


def test_enable_thinking_is_accepted_and_has_no_effect_on_a_model_without_thinking(
    oai: openai.OpenAI,
) -> None:
    kwargs = {"model": SMOL, "messages": HELLO, "max_tokens": 5, "temperature": 0}
    plain = oai.chat.completions.create(**kwargs).choices[0].message
    off = oai.chat.completions.create(extra_body={"enable_thinking": False}, **kwargs).choices[0].message
    assert off.content == plain.content
    assert getattr(off, "reasoning_content", None) is None


def test_telnyx_sdk_streams_with_streaming_response(client: telnyx.Telnyx) -> None:
    """The telnyx SDKs have no SSE parser; `with_streaming_response` hands over the OpenAI event stream."""
    with client.ai.openai.chat.with_streaming_response.create_completion(
        messages=HELLO, max_tokens=3, stream=True
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)


def test_stream_options_include_usage_false_leaves_usage_out(oai: openai.OpenAI) -> None:
    kwargs = {"model": SMOL, "messages": HELLO, "max_tokens": 3, "stream": True}
    chunks = list(oai.chat.completions.create(stream_options={"include_usage": False}, **kwargs))
    assert chunks and all(c.usage is None and c.choices for c in chunks)
    assert (
        list(oai.chat.completions.create(**kwargs))[-1].usage is not None
    )  # by default it is the last chunk
