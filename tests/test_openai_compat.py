"""The conventions OpenAI-compatible tools expect: the `/v1` base, `/v2/audio/*`, `models.retrieve`, Whisper
translation, and OpenAI's / Anthropic's error objects beside the Telnyx envelope."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.audio_samples import speech, wav, words
from tests.conftest import LiveServer

CHAT = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def v1(server: LiveServer) -> openai.OpenAI:
    """The openai SDK at the `/v1` base that OpenAI-compatible tools default to."""
    return openai.OpenAI(api_key=server.key_a, base_url=server.url + "/v1", max_retries=0)


@pytest.fixture(scope="module")
def clip() -> bytes:
    return wav(speech(SENTENCE))


def test_v1_base_serves_models_chat_and_embeddings(v1: openai.OpenAI) -> None:
    ids = [m.id for m in v1.models.list()]
    assert CHAT in ids and MINILM in ids
    assert v1.models.retrieve(CHAT).id == CHAT  # ids with a slash
    reply = v1.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "Say hi"}], max_tokens=4, temperature=0
    )
    assert reply.choices[0].message.content and reply.usage.completion_tokens <= 4
    vectors = v1.embeddings.create(model=MINILM, input=["a", "b"], encoding_format="float")
    assert [len(d.embedding) for d in vectors.data] == [384, 384]


def test_v1_and_v2_audio_paths(server: LiveServer, v1: openai.OpenAI, clip: bytes) -> None:
    v2 = openai.OpenAI(api_key=server.key_a, base_url=server.v2, max_retries=0)
    for client in (v1, v2):
        text = client.audio.transcriptions.create(model="openai/whisper-tiny.en", file=("a.wav", clip)).text
        assert words(text) == words(SENTENCE)
    spoken = v1.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.", response_format="wav")
    assert spoken.content[:4] == b"RIFF"


def test_translation_runs_whisper_translate_task(v1: openai.OpenAI, clip: bytes) -> None:
    """Speech in, English text out (Whisper's translate task on the multilingual base model)."""
    result = v1.audio.translations.create(
        model="openai/whisper-base", file=("a.wav", clip), response_format="verbose_json"
    )
    assert words(result.text) == words(SENTENCE)
    assert result.model_extra and result.model_extra["task"] == "translate"


def test_translation_needs_a_multilingual_model(v1: openai.OpenAI, clip: bytes) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        v1.audio.translations.create(model="openai/whisper-tiny.en", file=("a.wav", clip))
    assert "English-only" in caught.value.message
    assert caught.value.param == "model" and caught.value.type == "invalid_request_error"


def test_openai_sdk_reads_the_reason_of_an_error(v1: openai.OpenAI) -> None:
    """The OpenAI error object rides beside the Telnyx envelope, so the SDK shows code, param and message."""
    with pytest.raises(openai.NotFoundError) as caught:
        v1.models.retrieve("no/such-model")
    err = caught.value
    assert err.code == "10005" and err.type == "not_found_error" and "no/such-model" in err.message
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        v1.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "x"}], n=0)
    assert invalid.value.param == "n"
    body = invalid.value.body
    assert isinstance(body, dict) and body["param"] == "n"
    raw = invalid.value.response.json()
    assert raw["errors"][0]["source"] == {"pointer": "/n"}  # the Telnyx envelope is still there


def test_unauthenticated_v1_is_401_in_both_shapes(server: LiveServer) -> None:
    r = httpx.get(server.url + "/v1/models", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    body = r.json()
    assert body["error"]["type"] == "authentication_error" and body["errors"][0]["code"] == "10009"


def test_anthropic_paths_answer_anthropic_error_shape(server: LiveServer) -> None:
    r = httpx.get(server.v2 + "/ai/anthropic/v1/nothing", headers={"x-api-key": server.key_a})
    body = r.json()
    assert r.status_code in (401, 404)
    assert body["type"] == "error" and body["error"]["type"] in ("not_found_error", "authentication_error")
    assert body["errors"]


def test_telnyx_paths_keep_the_plain_envelope(server: LiveServer) -> None:
    r = httpx.get(server.v2 + "/ai/conversations/nope", headers={"Authorization": f"Bearer {server.key_a}"})
    assert r.status_code == 404 and set(r.json()) == {"errors"}
