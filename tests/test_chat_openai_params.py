"""OpenAI chat parameters clients send: each honoured by the engine or refused with a 400 naming it, never a
422 "extra inputs" for a documented OpenAI field (SmolLM2 on the session server, through the OpenAI SDK)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOL_VOCAB = 49152
H_TOKEN = 56  # SmolLM2's token for "H"
HI = [{"role": "user", "content": "Say hi"}]


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


@pytest.fixture
def usage_lines() -> Iterator[list[str]]:
    """The `inferline.chat` usage lines logged while the test runs."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("chat usage"):
                lines.append(record.getMessage())

    logger = logging.getLogger("inferline.chat")
    handler, level = Collect(level=logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def text(oai: openai.OpenAI, **kwargs: Any) -> str:
    """The reply's text; `top_k` and `repetition_penalty` (not OpenAI parameters) go in the extra body."""
    extra = {k: kwargs.pop(k) for k in ("top_k", "repetition_penalty") if k in kwargs}
    if extra:
        kwargs["extra_body"] = {**kwargs.get("extra_body", {}), **extra}
    result = oai.chat.completions.create(model=SMOL, **{"messages": HI, "max_tokens": 12, **kwargs})
    return result.choices[0].message.content or ""


def refusal(oai: openai.OpenAI, **kwargs: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=SMOL, **{"messages": HI, "max_tokens": 4, **kwargs})
    return info.value


def test_user_and_metadata_are_recorded_with_the_usage(oai: openai.OpenAI, usage_lines: list[str]) -> None:
    result = oai.chat.completions.create(
        model=SMOL,
        messages=HI,
        max_tokens=4,
        user="end-user-42",
        metadata={"team": "support"},
        store=False,
        prompt_cache_key="greetings",
    )
    (line,) = [line for line in usage_lines if '"end-user-42"' in line]
    assert 'metadata={"team":"support"}' in line and f"model={SMOL!r}".replace("'", '"') in line
    assert f"completion_tokens={result.usage.completion_tokens}" in line


def test_store_true_is_refused_naming_it(oai: openai.OpenAI) -> None:
    assert refusal(oai, store=True).param == "store"


def test_logit_bias_is_honoured(oai: openai.OpenAI) -> None:
    assert text(oai, temperature=0, max_tokens=4, logit_bias={str(H_TOKEN): 100}) == "HHHH"
    banned = text(oai, temperature=0, max_tokens=4, logit_bias={str(H_TOKEN): -100})
    assert "H" not in banned


def test_logit_bias_outside_the_vocabulary_or_not_a_token_id(oai: openai.OpenAI, http: httpx.Client) -> None:
    error = refusal(oai, logit_bias={str(SMOL_VOCAB): 5})
    assert error.param == "logit_bias" and str(SMOL_VOCAB) in error.message
    body = {"model": SMOL, "messages": HI, "logit_bias": {"hello": 5}}
    response = http.post("/ai/openai/chat/completions", json=body)
    assert response.status_code == 422 and response.json()["errors"][0]["source"]["pointer"] == "/logit_bias"


def test_top_k_one_is_greedy_whatever_the_seed(oai: openai.OpenAI) -> None:
    hot = {"temperature": 2.0, "max_tokens": 16}
    assert text(oai, seed=3, **hot) != text(oai, seed=4, **hot)  # the seeds matter when sampling
    assert text(oai, seed=3, top_k=1, **hot) == text(oai, seed=4, top_k=1, **hot)


def test_repetition_penalty_changes_the_output(oai: openai.OpenAI) -> None:
    plain = text(oai, temperature=0, max_tokens=40)
    assert text(oai, temperature=0, max_tokens=40, repetition_penalty=1.0) == plain
    assert text(oai, temperature=0, max_tokens=40, repetition_penalty=2.0) != plain


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"parallel_tool_calls": True}, "parallel_tool_calls"),  # no tools
        ({"stream_options": {"include_usage": True}}, "stream_options"),  # no stream
        ({"max_tokens": 4, "max_completion_tokens": 8}, "max_completion_tokens"),
        ({"guided_regex": "(?m)^h$"}, "guided_regex"),
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"modalities": ["text", "audio"]}, "modalities"),
    ],
)
def test_cross_field_and_unservable_options_are_400s_naming_them(
    oai: openai.OpenAI, kwargs: dict[str, Any], param: str
) -> None:
    extra = {k: v for k, v in kwargs.items() if k in ("max_tokens", "max_completion_tokens")}
    body = {k: v for k, v in kwargs.items() if k not in extra}
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=SMOL, messages=HI, **{"max_tokens": 4, **extra}, extra_body=body)
    assert info.value.param == param


def test_leading_case_flag_in_guided_regex_is_honoured(oai: openai.OpenAI) -> None:
    # The bias pushes towards "H"; only (?i) lets the grammar accept it for the pattern "h".
    bias = {str(H_TOKEN): 100}
    assert text(oai, temperature=0, logit_bias=bias, extra_body={"guided_regex": "(?i)h"}) == "H"
    assert text(oai, temperature=0, logit_bias=bias, extra_body={"guided_regex": "h"}) == "h"


def test_text_part_with_an_image_url_is_a_422(http: httpx.Client) -> None:
    part = {"type": "text", "text": "hi", "image_url": {"url": "http://example.com/a.png"}}
    body = {"model": SMOL, "messages": [{"role": "user", "content": [part]}], "max_tokens": 4}
    response = http.post("/ai/openai/chat/completions", json=body)
    assert response.status_code == 422
    assert response.json()["errors"][-1]["source"]["pointer"].startswith("/messages/0/content")
