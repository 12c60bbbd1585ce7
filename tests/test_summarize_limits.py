"""POST /ai/summarize is bounded: PDFs over the page limit and texts over the character limit are 400s before
any model work, and a client that goes away cancels the summary (its generation stops at the next token)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import httpx
import pytest
import telnyx
from pypdf import PdfReader, PdfWriter

from tests.conftest import LiveServer
from tests.docs_fixtures import make_pdf

BUCKET = "summary-limits"
TENANT_A = "default"  # the tenant of the seeded key `client` and `http` use


@pytest.fixture(scope="module")
def put(server: LiveServer) -> Callable[[str, bytes], None]:
    """Stores a file in tenant A's bucket (set-up through the object store; S3 has its own tests)."""
    objects = server.container.objects
    if not objects.bucket_exists(TENANT_A, BUCKET):
        objects.create_bucket(TENANT_A, BUCKET)

    def store(key: str, data: bytes) -> None:
        objects.put_bytes(TENANT_A, BUCKET, key, data)

    return store


def pdf_of(pages: int) -> bytes:
    """A PDF of `pages` pages, each showing one short line of text."""
    page = PdfReader(io.BytesIO(make_pdf(["The bakery sold bread on this page."]))).pages[0]
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def wait_for(condition: Callable[[], bool], limit: float = 60.0) -> bool:
    """Poll `condition` until it holds or `limit` seconds pass; whether it held."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_pdf_under_the_page_limit_is_summarized(
    client: telnyx.Telnyx, put: Callable[[str, bytes], None]
) -> None:
    put("short.pdf", pdf_of(2))
    assert client.ai.summarize(bucket=BUCKET, filename="short.pdf").data.summary


def test_a_pdf_over_the_page_limit_is_400_naming_the_limit(
    http: httpx.Client, put: Callable[[str, bytes], None], server: LiveServer
) -> None:
    limit = server.container.summarize.max_pdf_pages
    assert limit == server.container.settings.summarize_max_pdf_pages == 200  # the documented default
    put("long.pdf", pdf_of(limit + 1))
    response = http.post("/ai/summarize", json={"bucket": BUCKET, "filename": "long.pdf"})
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["code"] == "10015" and error["source"] == {"pointer": "/filename"}
    assert f"{limit + 1} pages" in error["detail"] and f"up to {limit} pages" in error["detail"]


def test_a_text_over_the_character_limit_is_400_naming_the_limit(
    client: telnyx.Telnyx, put: Callable[[str, bytes], None], server: LiveServer
) -> None:
    limit = server.container.settings.summarize_max_chars
    put("huge.txt", b"x" * (limit + 1))
    with pytest.raises(telnyx.BadRequestError) as raised:
        client.ai.summarize(bucket=BUCKET, filename="huge.txt")
    (error,) = raised.value.body["errors"]  # type: ignore[index]
    assert f"up to {limit} can be summarized" in error["detail"] and error["source"] == {
        "pointer": "/filename"
    }


def test_a_client_that_disconnects_cancels_the_summary(
    server: LiveServer, put: Callable[[str, bytes], None]
) -> None:
    """A long summary (many map-reduce chunks) is abandoned once its client leaves: the service records the
    cancellation and the chat engine has nothing in flight, long before every chunk could be summarized."""
    paragraphs = [
        f"Section {n}. The depot in district {n} shipped {n * 13} parcels and hired {n % 7} drivers."
        for n in range(900)
    ]
    text = "\n\n".join(paragraphs)
    service, chat = server.container.summarize, server.container.chat
    assert len(service.chunks(text)) >= 10  # minutes of generation if it ran to the end
    put("depots.txt", text.encode())
    before = service.cancellations
    assert wait_for(lambda: chat.in_flight() == 0)
    headers = {"Authorization": f"Bearer {server.key_a}"}
    timeout = httpx.Timeout(30.0, read=1.0)  # the client gives up after 1 s and closes its connection
    with (
        httpx.Client(base_url=server.v2, headers=headers, timeout=timeout) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.post("/ai/summarize", json={"bucket": BUCKET, "filename": "depots.txt"})
    assert wait_for(lambda: service.cancellations > before), "the summary kept running"
    assert wait_for(lambda: chat.in_flight() == 0), "a generation kept running"
