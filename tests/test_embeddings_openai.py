"""OpenAI-compatible embeddings via the `openai` SDK (both encodings) and the `telnyx` SDK in strict mode."""

from __future__ import annotations

import base64
import re

import httpx
import numpy as np
import openai
import pytest
import telnyx

from tests.conftest import LiveServer

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0)


def cos(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_openai_sdk_default_base64_matches_float(oai: openai.OpenAI) -> None:
    texts = ["The cat sits on the mat.", "A kitten rests on a rug.", "Quarterly revenue grew by 5%."]
    default = oai.embeddings.create(model=MINILM, input=texts)  # the SDK asks for base64 by default
    floats = oai.embeddings.create(model=MINILM, input=texts, encoding_format="float")
    assert default.model == MINILM and [d.index for d in default.data] == [0, 1, 2]
    for b64, flt in zip(default.data, floats.data, strict=True):
        assert len(b64.embedding) == 384
        np.testing.assert_allclose(b64.embedding, flt.embedding, atol=1e-6)
        assert abs(np.linalg.norm(flt.embedding) - 1) < 1e-4
    vectors = [d.embedding for d in floats.data]
    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2]) + 0.3
    assert default.usage.prompt_tokens == default.usage.total_tokens > 10


def test_raw_base64_is_little_endian_float32(http: httpx.Client) -> None:
    body = {"model": MINILM, "input": "hello world", "encoding_format": "base64"}
    b64 = http.post("/ai/openai/embeddings", json=body).json()["data"][0]["embedding"]
    floats = http.post("/ai/openai/embeddings", json={**body, "encoding_format": "float"}).json()
    decoded = np.frombuffer(base64.b64decode(b64), dtype="<f4")
    np.testing.assert_allclose(decoded, floats["data"][0]["embedding"], atol=1e-7)


def test_float_encoding_writes_float32_shortest_decimals(http: httpx.Client) -> None:
    """Each float is the shortest decimal that reads back as the model's float32 (as OpenAI's API writes
    them), not the float64 repr of that float32 (17 digits: a body nearly twice the size)."""
    body = {"model": MINILM, "input": ["hello world", "shortest floats"], "encoding_format": "base64"}
    b64 = [d["embedding"] for d in http.post("/ai/openai/embeddings", json=body).json()["data"]]
    reply = http.post("/ai/openai/embeddings", json={**body, "encoding_format": "float"})
    numbers = re.findall(rb"-?\d\.?\d*(?:e-?\d+)?", reply.content.split(b'"embedding":', 1)[1].split(b"]")[0])
    assert len(numbers) == 384
    assert max(len(n.lstrip(b"-").replace(b".", b"").lstrip(b"0").split(b"e")[0]) for n in numbers) <= 9
    for encoded, item in zip(b64, reply.json()["data"], strict=True):
        expected = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
        np.testing.assert_array_equal(np.asarray(item["embedding"], dtype=np.float32), expected)


def test_batch_equals_single(oai: openai.OpenAI) -> None:
    texts = ["short", "a considerably longer sentence about embeddings and search " * 3, "mid length text"]
    batch = oai.embeddings.create(model=MINILM, input=texts, encoding_format="float").data
    for text, item in zip(texts, batch, strict=True):
        single = oai.embeddings.create(model=MINILM, input=text, encoding_format="float").data[0]
        np.testing.assert_allclose(single.embedding, item.embedding, atol=1e-5)


def test_dimensions_truncate_and_renormalise(oai: openai.OpenAI) -> None:
    full = oai.embeddings.create(model=MINILM, input="vector search", encoding_format="float").data[0]
    small = oai.embeddings.create(
        model=MINILM, input="vector search", dimensions=64, encoding_format="float"
    ).data[0]
    assert len(small.embedding) == 64
    assert abs(np.linalg.norm(small.embedding) - 1) < 1e-4
    assert cos(small.embedding, full.embedding[:64]) > 0.9999


def test_telnyx_sdk_strict_with_seed_model_name(client: telnyx.Telnyx) -> None:
    """The seed example names `thenlper/gte-large`: served by the default model, which the response names."""
    response = client.ai.openai.embeddings.create_embeddings(
        input="The quick brown fox jumps over the lazy dog", model="thenlper/gte-large"
    )
    assert response.model == MINILM and response.object == "list"
    assert len(response.data) == 1 and len(response.data[0].embedding) == 384
    assert response.data[0].object == "embedding" and response.usage.total_tokens > 0


def test_list_embedding_models_strict(client: telnyx.Telnyx, oai: openai.OpenAI) -> None:
    models = client.ai.openai.embeddings.list_embedding_models()
    assert models.object == "list"
    assert [m.id for m in models.data] == [MINILM]
    assert models.data[0].created > 1_700_000_000 and models.data[0].owned_by == "sentence-transformers"


@pytest.mark.parametrize(
    ("body", "status", "pointer"),
    [
        ({"model": "no/such-model", "input": "x"}, 404, "/model"),
        ({"model": MINILM, "input": "x", "dimensions": 999}, 400, "/dimensions"),
        ({"model": MINILM, "input": "x", "dimensions": 0}, 422, "/dimensions"),
        ({"model": MINILM, "input": [1, 2, 3]}, 400, "/input"),
        ({"model": MINILM, "input": []}, 422, "/input"),
        ({"model": MINILM, "input": ["ok", ""]}, 422, "/input/1"),
        ({"model": MINILM, "input": "word " * 400}, 400, "/input"),
        ({"model": MINILM, "input": "x", "encoding_format": "int8"}, 422, "/encoding_format"),
        ({"model": MINILM, "input": "x", "extra": 1}, 422, "/extra"),
        ({"input": "x"}, 422, "/model"),
    ],
)
def test_bad_input_is_an_envelope(http: httpx.Client, body: dict, status: int, pointer: str) -> None:
    response = http.post("/ai/openai/embeddings", json=body)
    assert response.status_code == status, response.text
    (error,) = response.json()["errors"]
    assert error["source"]["pointer"] == pointer


def test_openai_sdk_maps_errors(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.embeddings.create(model="text-embedding-3-large", input="x")
