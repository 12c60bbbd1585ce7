"""Multi-turn chats reuse the cached prompt prefix (llama.cpp slots and prompt cache), and reuse does not
change what the model answers: the same greedy reply with and without a warm slot. Through the openai SDK."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import uvicorn

from inferline.app import create_app
from inferline.config import Settings
from inferline.container import build_container
from tests.conftest import API_KEY, MODELS_DIR, LiveServer, free_port

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with one chat slot: no other sequence shares a decode batch with the test's (a batch's
    composition changes the numerics, and so possibly a greedy reply, which is not what this test checks)."""
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("solo")),
        INFERLINE_MODELS_DIR=MODELS_DIR,
        profile="test",
        api_key=API_KEY,
        chat_parallel=1,
        chat_threads=1,
        embedded_worker=False,
    )
    container = build_container(settings)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(settings, container), port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", container, API_KEY, API_KEY)
    uv.should_exit = True
    thread.join(timeout=10)
    container.close()


@pytest.fixture(scope="module")
def oai(solo: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=solo.key_a, base_url=solo.v2 + "/ai/openai", max_retries=0, timeout=300)


def _cached(usage: openai.types.CompletionUsage | None) -> int:
    assert usage is not None and usage.prompt_tokens_details is not None
    return usage.prompt_tokens_details.cached_tokens or 0


def _first_token(done: openai.types.chat.ChatCompletion) -> dict[str, float]:
    """The first generated token's top alternatives and their logprobs."""
    logprobs = done.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    return {t.token: t.logprob for t in logprobs.content[0].top_logprobs}


def test_turn_two_reuses_turn_one_and_answers_as_without_reuse(oai: openai.OpenAI) -> None:
    turn_one = [
        {"role": "system", "content": "You keep a harbour log."},
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
            logprobs=True,
            top_logprobs=5,
        )

    cold = ask(turn_two)  # the server's first conversation: computed from scratch
    assert _cached(cold.usage) == 0
    one = ask(turn_one)  # on the slot holding turn two (their shared prefix), which then keeps turn one
    assert one.usage is not None and _cached(one.usage) >= one.usage.prompt_tokens - 4
    warm = ask(turn_two)  # turn two on the slot that holds turn one: only the new tokens are read
    assert _cached(warm.usage) >= one.usage.prompt_tokens - 4
    # Reuse changes nothing: the same reply, and the same next-token distribution up to the float noise of
    # another batch split (llama.cpp's CPU kernels sum in another order: reading this prompt cold in batches
    # of 8 tokens instead of 512 moves these logprobs by up to 0.14; the warm slot by about 0.05). A wrong
    # reuse (a cache entry that is not the prompt's prefix) changes the distribution far more.
    cold_first, warm_first = _first_token(cold), _first_token(warm)
    assert set(cold_first) == set(warm_first)
    assert all(abs(cold_first[t] - warm_first[t]) < 0.2 for t in cold_first), (cold_first, warm_first)
    assert warm.choices[0].message.content
    assert warm.choices[0].message.content == cold.choices[0].message.content
