"""GET /metrics (issue 18): traffic through the official SDKs moves the right counters by the right
amounts."""

from __future__ import annotations

import re

import httpx
import openai
import telnyx

from tests.conftest import LiveServer

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def scrape(server: LiveServer) -> str:
    response = httpx.get(server.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels}` (labels matched as a subset), 0 when absent."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def test_sdk_traffic_moves_the_counters(server: LiveServer, client: telnyx.Telnyx) -> None:
    client.ai.openai.embeddings.create_embeddings(input="warm", model=MINILM)
    before = scrape(server)
    result = client.ai.openai.embeddings.create_embeddings(input=["one text", "another text"], model=MINILM)
    chat = client.ai.openai.chat.create_completion(
        messages=[{"role": "user", "content": "Say hi"}], model=SMOL, max_tokens=4, temperature=0
    )
    with pytest_raises_not_found(client):
        pass
    after = scrape(server)

    route = {"route": "/v2/ai/openai/embeddings", "method": "POST", "status": "200"}
    assert (
        value(after, "inferline_http_requests_total", **route)
        - value(before, "inferline_http_requests_total", **route)
        == 1
    )
    hist = {"route": "/v2/ai/openai/embeddings", "method": "POST"}
    assert (
        value(after, "inferline_http_request_duration_seconds_count", **hist)
        - value(before, "inferline_http_request_duration_seconds_count", **hist)
        == 1
    )
    assert (
        value(after, "inferline_embedding_texts_total", model=MINILM)
        - value(before, "inferline_embedding_texts_total", model=MINILM)
        == 2
    )
    tokens = result.usage.prompt_tokens
    assert (
        value(after, "inferline_embedding_tokens_total", model=MINILM)
        - value(before, "inferline_embedding_tokens_total", model=MINILM)
        == tokens
    )
    usage = chat["usage"]
    for name, expected in (
        ("inferline_chat_prompt_tokens_total", usage["prompt_tokens"]),
        ("inferline_chat_completion_tokens_total", usage["completion_tokens"]),
        ("inferline_chat_time_to_first_token_seconds_count", 1),
        ("inferline_chat_queue_wait_seconds_count", 1),
    ):
        assert value(after, name, model=SMOL) - value(before, name, model=SMOL) == expected, name
    # ids never become labels: a 404 on a resource id is counted under its route template
    templated = {"route": "/v2/ai/conversations/{conversation_id}", "status": "404"}
    assert (
        value(after, "inferline_http_requests_total", **templated)
        - value(before, "inferline_http_requests_total", **templated)
        == 1
    )
    assert "00000000-0000-4000-8000-000000000000" not in after
    assert "inferline_jobs_queued" in after or "# TYPE inferline_jobs_queued gauge" in after


class pytest_raises_not_found:
    def __init__(self, client: telnyx.Telnyx) -> None:
        self.client = client

    def __enter__(self) -> None:
        try:
            self.client.ai.conversations.retrieve("00000000-0000-4000-8000-000000000000")
        except telnyx.NotFoundError:
            return
        raise AssertionError("expected a 404")

    def __exit__(self, *exc: object) -> None:
        return None


def _usage(server: LiveServer, metric: str) -> float:
    tenant = server.container.keys.authenticate(server.key_a).tenant_id
    rows = server.container.usage.report(tenant, by="tenant")
    return float(sum(r["quantity"] for r in rows if r["metric"] == metric))  # type: ignore[misc]


def test_audio_traffic_moves_the_audio_counters_and_usage(server: LiveServer) -> None:
    """Transcription audio seconds and TTS characters are counted and metered for the caller's tenant."""
    from tests import audio_samples as audio

    oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0)
    clip = audio.wav(audio.speech("Hello from the metrics test."))
    oai.audio.speech.create(model="tts-1", voice="alloy", input="Warm.")  # loads the voice
    before, usage_before = (
        scrape(server),
        (_usage(server, "transcription_seconds"), _usage(server, "tts_characters")),
    )
    transcript = oai.audio.transcriptions.create(
        model="whisper-1", file=("clip.wav", clip), response_format="verbose_json"
    )
    text = "Metered speech, forty characters exactly"
    oai.audio.speech.create(model="tts-1", voice="alloy", input=text).read()
    after = scrape(server)

    seconds = value(after, "inferline_transcription_audio_seconds_total") - value(
        before, "inferline_transcription_audio_seconds_total"
    )
    assert abs(seconds - transcript.duration) < 0.01
    characters = value(after, "inferline_tts_characters_total") - value(
        before, "inferline_tts_characters_total"
    )
    assert characters == len(text)
    assert abs(_usage(server, "transcription_seconds") - usage_before[0] - transcript.duration) < 0.01
    assert _usage(server, "tts_characters") - usage_before[1] == len(text)
