"""A real third-party client library that uses the `/v1` convention: LangChain's `ChatOpenAI` and
`OpenAIEmbeddings` (langchain-openai, installed for tests only), pointed at inferline by base URL alone."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import LiveServer

langchain_openai = pytest.importorskip("langchain_openai", reason="langchain-openai is a dev dependency")

CHAT = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def test_langchain_chat_openai_invokes_and_streams(server: LiveServer) -> None:
    llm = langchain_openai.ChatOpenAI(
        model=CHAT, base_url=server.url + "/v1", api_key=server.key_a, max_tokens=8, temperature=0
    )
    reply = llm.invoke("Say hello.")
    assert isinstance(reply.content, str) and reply.content
    assert reply.usage_metadata and 0 < reply.usage_metadata["output_tokens"] <= 8
    streamed = "".join(str(chunk.content) for chunk in llm.stream("Say hello."))
    assert streamed == reply.content  # same greedy decode, streamed


def test_langchain_structured_output_through_json_schema(server: LiveServer) -> None:
    llm = langchain_openai.ChatOpenAI(
        model=CHAT, base_url=server.url + "/v1", api_key=server.key_a, max_tokens=40, temperature=0
    )
    schema = {
        "title": "Color",
        "type": "object",
        "properties": {"name": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["name"],
    }
    result = llm.with_structured_output(schema, method="json_schema").invoke("Pick a color.")
    assert result["name"] in {"red", "green", "blue"}


def test_langchain_embeddings(server: LiveServer) -> None:
    embedder = langchain_openai.OpenAIEmbeddings(
        model=MINILM,
        base_url=server.url + "/v1",
        api_key=server.key_a,
        check_embedding_ctx_length=False,  # its tokenizer check uses tiktoken (OpenAI's vocabulary) only
    )
    cat, kitten, revenue = embedder.embed_documents(["A cat sits.", "A kitten rests.", "Revenue grew 5%."])
    assert len(cat) == 384
    assert np.dot(cat, kitten) > np.dot(cat, revenue)
    assert len(embedder.embed_query("cat")) == 384
