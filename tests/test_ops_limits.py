"""Per-tenant/per-key limits (issue 18): 429 with Retry-After and the OpenAI x-ratelimit-* headers in the
Telnyx envelope, headers on successes, recovery after the window, and the SDK's default retries converging."""

from __future__ import annotations

import time

import pytest
import telnyx

from tests.conftest import LiveServer

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _sdk(server: LiveServer, key: str, retries: int = 0) -> telnyx.Telnyx:
    return telnyx.Telnyx(
        api_key=key, base_url=server.v2, _strict_response_validation=True, max_retries=retries
    )


def _embed(sdk: telnyx.Telnyx, text: str = "limits"):  # type: ignore[no-untyped-def]
    return sdk.ai.openai.embeddings.with_raw_response.create_embeddings(input=text, model=MINILM)


@pytest.fixture(autouse=True, scope="module")
def warm_model(server: LiveServer) -> None:
    """Load the embedding model first, so a limited request never spans a short window while it loads."""
    _embed(_sdk(server, server.key_b))


def _wait_for_fresh_window(seconds: int) -> None:
    """Start right after a window boundary, so a test's requests share one window."""
    time.sleep(seconds - time.time() % seconds + 0.05)


def test_request_limit_headers_429_and_recovery(server: LiveServer) -> None:
    _, key = server.container.keys.create("limited-requests")
    server.container.limits.set("limited-requests", embeddings_requests=2, window_seconds=4)
    sdk = _sdk(server, key)
    _wait_for_fresh_window(4)

    first, second = _embed(sdk), _embed(sdk)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert second.headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(telnyx.RateLimitError) as refused:
        _embed(sdk)
    response = refused.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 4
    assert response.headers["x-ratelimit-limit-requests"] == "2"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    error = refused.value.body["errors"][0]
    assert error["code"] == "10011" and "requests" in error["detail"]

    time.sleep(int(response.headers["retry-after"]))
    again = _embed(sdk)
    assert again.parse().data and again.headers["x-ratelimit-remaining-requests"] == "1"
    # another tenant is not limited, and its responses carry no limit headers
    assert "x-ratelimit-limit-requests" not in _embed(_sdk(server, server.key_b)).headers


def test_token_limit_refuses_once_the_window_is_spent(server: LiveServer) -> None:
    _, key = server.container.keys.create("limited-tokens")
    server.container.limits.set("limited-tokens", embeddings_tokens=5, window_seconds=60)
    sdk = _sdk(server, key)
    _wait_for_fresh_window(60) if time.time() % 60 > 50 else None
    first = _embed(sdk, "a sentence that is certainly longer than five tokens")
    assert first.headers["x-ratelimit-limit-tokens"] == "5"
    assert first.headers["x-ratelimit-remaining-tokens"] == "5"  # counted when the request finishes
    with pytest.raises(telnyx.RateLimitError) as refused:
        _embed(sdk)
    headers = refused.value.response.headers
    assert headers["x-ratelimit-remaining-tokens"] == "0" and "retry-after" in headers
    assert "tokens" in refused.value.body["errors"][0]["detail"]


def test_per_key_limit_leaves_the_tenants_other_keys_alone(server: LiveServer) -> None:
    info, limited = server.container.keys.create("limited-key")
    _, other = server.container.keys.create("limited-key")
    server.container.limits.set("limited-key", key_id=info.id, embeddings_requests=1, window_seconds=60)
    _wait_for_fresh_window(60) if time.time() % 60 > 55 else None
    _embed(_sdk(server, limited))
    with pytest.raises(telnyx.RateLimitError):
        _embed(_sdk(server, limited))
    assert _embed(_sdk(server, other)).parse().data


def test_sdk_default_retries_converge(server: LiveServer) -> None:
    """The telnyx SDK's default 2 retries wait for Retry-After and get through in the next window."""
    _, key = server.container.keys.create("limited-retry")
    server.container.limits.set("limited-retry", embeddings_requests=1, window_seconds=2)
    sdk = telnyx.Telnyx(api_key=key, base_url=server.v2)  # max_retries: the default (2)
    _wait_for_fresh_window(2)
    for n in range(3):
        assert sdk.ai.openai.embeddings.create_embeddings(input=f"retry {n}", model=MINILM).data


def test_concurrent_transcriptions_limit(server: LiveServer) -> None:
    """A slot is taken per running transcription and given back at its end; none left: 429 Retry-After."""
    from tests import audio_samples as audio

    clip = ("clip.wav", audio.wav(audio.speech("One at a time.")), "audio/x-wav")
    _, key = server.container.keys.create("limited-stt")
    server.container.limits.set("limited-stt", concurrent_transcriptions=1)
    sdk = _sdk(server, key)
    for _ in range(2):  # one at a time: each finished transcription frees its slot
        assert sdk.ai.audio.transcribe(model="distil-whisper/distil-large-v2", file=clip).text
    server.container.limits.set("limited-stt", concurrent_transcriptions=0)
    time.sleep(1.1)  # limits are re-read at most once a second
    with pytest.raises(telnyx.RateLimitError) as refused:
        sdk.ai.audio.transcribe(model="distil-whisper/distil-large-v2", file=clip)
    assert refused.value.response.headers["retry-after"] == "1"
    assert refused.value.body["errors"][0]["code"] == "10011"
