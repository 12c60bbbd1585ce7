"""Multi-turn chats reuse the cached prompt prefix (llama.cpp slots and prompt cache), and reuse does not
change what the model answers: the same greedy reply with and without a warm slot. Through the openai SDK."""

from __future__ import annotations

import uuid

import openai
import pytest

from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


def _cached(usage: openai.types.CompletionUsage | None) -> int:
    assert usage is not None and usage.prompt_tokens_details is not None
    return usage.prompt_tokens_details.cached_tokens or 0


def test_turn_two_reuses_turn_one_and_answers_as_without_reuse(oai: openai.OpenAI) -> None:
    nonce = uuid.uuid4().hex  # first in the prompt: no cache entry shares more than the template's header
    turn_one = [
        {"role": "system", "content": f"Session {nonce}. You keep a harbour log."},
        {"role": "user", "content": "Log: 12 crates of tea, 4 of rope, 9 of salt. Which cargo is largest?"},
    ]
    turn_two = [
        *turn_one,
        {"role": "assistant", "content": "Tea, with 12 crates."},
        {"role": "user", "content": "And which is smallest? Answer with one word."},
    ]

    def ask(messages: list[dict[str, str]]) -> openai.types.chat.ChatCompletion:
        return oai.chat.completions.create(
            model=SMOL,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=12,
            temperature=0,
            seed=7,
        )

    cold = ask(turn_two)  # computed from scratch
    assert _cached(cold.usage) < 8
    one = ask(turn_one)  # takes the slot holding turn two (the longest shared prefix) and keeps turn one
    assert one.usage is not None and _cached(one.usage) >= one.usage.prompt_tokens - 4
    warm = ask(turn_two)  # turn two on the slot that holds turn one
    assert _cached(warm.usage) >= one.usage.prompt_tokens - 4
    assert warm.choices[0].message.content
    assert warm.choices[0].message.content == cold.choices[0].message.content
