"""POST /ai/summarize through the telnyx SDK (strict): text and media files, map-reduce over long texts, and
the error envelopes for missing, oversized and unreadable files."""

from __future__ import annotations

from typing import Any

import boto3
import httpx
import pytest
import telnyx
from botocore.client import BaseClient
from botocore.config import Config
from sqlalchemy import select

from inferline.areas.summarize.service import SummarizeService
from inferline.stores.audio_tables import SttUsageRecord
from tests.audio_samples import speech, wav
from tests.conftest import LiveServer, s3_auth

BUCKET = "summaries"
REPORT = (
    "Harbor Lights Bakery, quarterly report. Sales of sourdough bread rose by forty percent this quarter. "
    "The bakery opened a second shop on Elm Street in March. The owner, Marta Olsen, plans to hire three "
    "new bakers before the summer."
)


@pytest.fixture(scope="module")
def s3(server: LiveServer) -> BaseClient:
    client = boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(server.key_a),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4"),
    )
    client.create_bucket(Bucket=BUCKET)
    return client


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    (error,) = response.json()["errors"]
    return error  # type: ignore[no-any-return]


def test_summarize_a_text_file(client: telnyx.Telnyx, s3: BaseClient) -> None:
    s3.put_object(Bucket=BUCKET, Key="report.txt", Body=REPORT.encode())
    summary = client.ai.summarize(bucket=BUCKET, filename="report.txt").data.summary
    assert summary and summary != REPORT
    assert any(word in summary.lower() for word in ("bakery", "sourdough", "bread", "shop", "marta"))


def test_summarize_html_with_a_system_prompt(client: telnyx.Telnyx, s3: BaseClient) -> None:
    head = "<head><script>var secret = 1;</script></head>"
    page = f"<html>{head}<body><h1>Report</h1><p>{REPORT}</p></body></html>"
    s3.put_object(Bucket=BUCKET, Key="page.html", Body=page.encode())
    summary = client.ai.summarize(
        bucket=BUCKET, filename="page.html", system_prompt="Summarize in one short sentence."
    ).data.summary
    assert summary and "var secret" not in summary


def test_summarize_audio_uses_the_transcript(
    client: telnyx.Telnyx, s3: BaseClient, server: LiveServer
) -> None:
    audio = wav(
        speech("The team meeting moved to Friday morning. The budget for the new office was approved.")
    )
    s3.put_object(Bucket=BUCKET, Key="meeting.wav", Body=audio)
    summary = client.ai.summarize(bucket=BUCKET, filename="meeting.wav").data.summary
    assert summary
    with server.container.db.session() as s:
        sources = s.scalars(select(SttUsageRecord.source).where(SttUsageRecord.tenant_id == "default")).all()
    assert "summarize" in sources  # the audio was transcribed for the summary


def test_long_text_is_map_reduced_over_every_chunk(server: LiveServer, s3: BaseClient) -> None:
    """A service with small chunks over the live chat engine: every character reaches a map prompt."""
    chat = server.container.chat
    prompts: list[str] = []

    class Recording:
        def complete_text(self, tenant_id: str, messages: list[dict[str, Any]], **options: Any) -> str:
            prompts.append(messages[-1]["content"])
            return str(chat.complete_text(tenant_id, messages, **options))

    paragraphs = [
        f"Paragraph {n}: the warehouse in town {n} stores {n * 7} crates of apples." for n in range(40)
    ]
    text = "\n\n".join(paragraphs)
    s3.put_object(Bucket=BUCKET, Key="long.txt", Body=text.encode())
    service = SummarizeService(
        server.container.objects,
        Recording(),
        server.container.transcription,
        chunk_chars=800,
        summary_tokens=48,
    )
    chunks = service.chunks(text)
    squash = "".join  # chunks break at whitespace; compare the non-blank characters
    assert len(chunks) > 3 and squash("".join(chunks).split()) == squash(text.split())
    summary = service.summarize("default", BUCKET, "long.txt", None)
    assert summary
    maps = [p for p in prompts if f"of {len(chunks)} of a longer document" in p]
    assert len(maps) >= len(chunks)
    for chunk in chunks:
        assert any(chunk in p for p in maps)  # no chunk skipped or cut
    assert "These are summaries" in prompts[-1]


def test_errors_are_envelopes(http: httpx.Client, s3: BaseClient, client_b: telnyx.Telnyx) -> None:
    s3.put_object(Bucket=BUCKET, Key="report.txt", Body=REPORT.encode())
    assert (
        error_of(http.post("/ai/summarize", json={"bucket": "nope", "filename": "x.txt"}), 404)["source"][
            "pointer"
        ]
        == "/bucket"
    )
    error = error_of(http.post("/ai/summarize", json={"bucket": BUCKET, "filename": "missing.txt"}), 404)
    assert error["source"]["pointer"] == "/filename"
    assert (
        error_of(http.post("/ai/summarize", json={"bucket": BUCKET}), 422)["source"]["pointer"] == "/filename"
    )
    assert error_of(
        http.post("/ai/summarize", json={"bucket": BUCKET, "filename": "report.txt", "x": 1}), 422
    )
    s3.put_object(Bucket=BUCKET, Key="blob.bin", Body=bytes(range(256)) * 64)
    error = error_of(http.post("/ai/summarize", json={"bucket": BUCKET, "filename": "blob.bin"}), 422)
    assert "binary" in error["detail"] and error["source"]["pointer"] == "/filename"
    s3.put_object(Bucket=BUCKET, Key="huge.txt", Body=b"word " * 60_000)
    error = error_of(http.post("/ai/summarize", json={"bucket": BUCKET, "filename": "huge.txt"}), 400)
    assert "characters" in error["detail"]
    with pytest.raises(telnyx.NotFoundError):  # another tenant's bucket does not exist for tenant B
        client_b.ai.summarize(bucket=BUCKET, filename="report.txt")
