"""OpenAI's legacy text completions (`/v1/completions`) through the openai SDK; raw HTTP for bad input."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PROMPT = "The capital of France is"


@pytest.fixture
def v1(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.url + "/v1", max_retries=0, timeout=300)


def test_completion_returns_text_and_usage(v1: openai.OpenAI) -> None:
    result = v1.completions.create(model=SMOL, prompt=PROMPT, max_tokens=5, temperature=0)
    assert result.object == "text_completion"
    assert result.model == SMOL
    assert result.choices[0].text
    assert result.choices[0].finish_reason in ("length", "stop")
    assert result.usage is not None and 0 < result.usage.completion_tokens <= 5
    assert result.usage.prompt_tokens > 0


def test_streamed_completion_matches(v1: openai.OpenAI) -> None:
    whole = v1.completions.create(model=SMOL, prompt=[PROMPT], max_tokens=5, temperature=0)
    stream = v1.completions.create(model=SMOL, prompt=PROMPT, max_tokens=5, temperature=0, stream=True)
    text = "".join(chunk.choices[0].text for chunk in stream if chunk.choices)
    assert text == whole.choices[0].text


def test_n_above_one_is_refused(v1: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        v1.completions.create(model=SMOL, prompt=PROMPT, max_tokens=5, n=2)
    assert caught.value.param == "n"


def test_unknown_model_is_not_found(v1: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        v1.completions.create(model="no/such-model", prompt=PROMPT, max_tokens=5)


def test_bad_input(http: httpx.Client) -> None:
    several = http.post("/ai/openai/completions", json={"model": SMOL, "prompt": ["a", "b"]})
    assert several.status_code == 400
    assert several.json()["errors"][0]["source"]["pointer"] == "/prompt"
    echo = http.post("/ai/openai/completions", json={"model": SMOL, "prompt": "a", "echo": True})
    assert echo.status_code == 400
    assert echo.json()["errors"][0]["source"]["pointer"] == "/echo"
    extra = http.post("/ai/openai/completions", json={"model": SMOL, "prompt": "a", "bogus": 1})
    assert extra.status_code == 422
    seed = http.post("/ai/openai/completions", json={"model": SMOL, "prompt": "a", "seed": 2**64})
    assert seed.status_code == 422
