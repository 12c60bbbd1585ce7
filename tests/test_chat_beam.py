"""Beam search (use_beam_search, best_of, length_penalty, early_stopping) over the engine's logprobs, and
sampling best_of, shown against plain sampling."""

from __future__ import annotations

import httpx
import openai
import pytest

from inferline.areas.chat.beam import beam_search
from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ASK = [{"role": "user", "content": "Name a fruit."}]


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


def beam(oai: openai.OpenAI, **extra: object) -> list[str]:
    body = {"use_beam_search": True, "best_of": 3, **extra}
    result = oai.chat.completions.create(model=SMOL, messages=ASK, max_tokens=4, n=2, extra_body=body)
    return [c.message.content for c in result.choices]


def test_beam_search_returns_distinct_ranked_beams_unlike_greedy_sampling(oai: openai.OpenAI) -> None:
    beams = beam(oai)
    assert len(beams) == 2 and beams[0] != beams[1]
    assert beam(oai) == beams  # deterministic
    greedy = oai.chat.completions.create(model=SMOL, messages=ASK, max_tokens=4, n=2, temperature=0)
    assert greedy.choices[0].message.content == greedy.choices[1].message.content  # sampling: n copies


def test_beam_search_streams(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model=SMOL,
        messages=ASK,
        max_tokens=4,
        stream=True,
        extra_body={"use_beam_search": True, "best_of": 2},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == beam(oai, best_of=2)[0]  # the best beam, streamed
    assert chunks[-1].usage is not None


def test_sampling_best_of_keeps_the_most_likely(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model=SMOL, messages=ASK, max_tokens=4, temperature=1.5, seed=7, extra_body={"best_of": 4}
    )
    assert len(result.choices) == 1 and result.choices[0].logprobs is None


@pytest.mark.parametrize(
    ("extra", "pointer"),
    [
        ({"use_beam_search": True, "temperature": 0.7}, "/temperature"),
        ({"use_beam_search": True, "best_of": 2, "n": 3}, "/n"),
        ({"use_beam_search": True, "logprobs": True}, "/logprobs"),
        ({"use_beam_search": True, "guided_choice": ["a"]}, "/use_beam_search"),
        ({"early_stopping": True}, "/early_stopping"),
        ({"best_of": 1, "n": 2}, "/best_of"),
    ],
)
def test_beam_misuse_is_refused(http: httpx.Client, extra: dict, pointer: str) -> None:
    response = http.post("/ai/openai/chat/completions", json={"messages": ASK, "max_tokens": 4, **extra})
    assert response.status_code in (400, 422), response.text
    assert response.json()["errors"][0]["source"]["pointer"].startswith(pointer)


def test_beam_search_algorithm_beats_greedy_on_a_known_table() -> None:
    """Greedy takes 'a' (-0.4) then is stuck (-2.0); the beam keeps 'b' (-0.9), whose continuation is -0.1."""
    table = {
        "": [("a", -0.4), ("b", -0.9)],
        "a": [("x", -2.0), ("y", -2.3)],
        "b": [("z", -0.1), ("w", -3.0)],
        "ax": [("", -0.01)],
        "ay": [("", -0.01)],
        "bz": [("", -0.01)],
        "bw": [("", -0.01)],
    }
    found = beam_search(lambda prefix: table[prefix], width=2, max_tokens=5, length_penalty=1.0)
    assert found[0].text == "bz" and found[0].finish_reason == "stop"
    greedy = beam_search(lambda prefix: table[prefix][:1], width=1, max_tokens=5)
    assert greedy[0].text == "ax"
    assert found[0].logprob > greedy[0].logprob
