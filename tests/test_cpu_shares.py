"""CPU sharing between engine kinds (engines/cpu.py `CpuShares`): while a chat generation decodes, embedding
batches yield to it, one at a time with a pause after each; they still all complete, with the same vectors
as without chat, and the generation completes too. Through the openai SDK; nothing here asserts a duration."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from inferline.engines.cpu import SHARES
from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ENDLESS = {"guided_regex": "[a-z ]{4000}"}  # decodes until the client closes the stream


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


def test_embedding_batches_yield_to_a_running_generation_and_all_complete(oai: openai.OpenAI) -> None:
    texts = [[f"harbour crane {i}", f"tide table {i}"] for i in range(6)]
    quiet = [oai.embeddings.create(model=MINILM, input=t, encoding_format="float") for t in texts]
    stream = oai.chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Write a long story."}],
        max_tokens=2000,
        temperature=0,
        stream=True,
        extra_body=ENDLESS,
    )
    with stream:
        first = next(c for c in stream if c.choices and c.choices[0].delta.content)
        assert first.choices[0].delta.content
        assert SHARES.chat >= 1  # the generation holds the foreground: embedding batches now yield
        with ThreadPoolExecutor(len(texts)) as pool:
            busy = list(
                pool.map(
                    lambda t: oai.embeddings.create(model=MINILM, input=t, encoding_format="float"), texts
                )
            )
        more = next(c for c in stream if c.choices and c.choices[0].delta.content)
        assert more.choices[0].delta.content  # the generation went on meanwhile
    for a, b in zip(quiet, busy, strict=True):
        for x, y in zip(a.data, b.data, strict=True):
            assert x.embedding == pytest.approx(y.embedding, abs=1e-5)
