"""`POST /ai/embeddings/url`: crawl a site on 127.0.0.1 (operator allow-list) into a bucket, then embed it.

Covers robots.txt, the 5-level depth limit, same-domain links and SSRF refusals (private hosts, redirects).
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
import telnyx

from inferline.net.policy import AllowList
from inferline.stores.embeddings_tables import EmbeddingTask
from tests.conftest import LiveServer, s3_auth

FINAL = {"success", "failure", "partial_success"}


def page(title: str, body: str, links: list[str]) -> str:
    anchors = "".join(f'<a href="{href}">{href}</a> ' for href in links)
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body><p>{body}</p>{anchors}</body></html>"
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("site")
    (root / "private").mkdir()
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    links = [
        "/apples.html",
        "/private/secret.html",
        "http://elsewhere.invalid/x.html",
        "/l1.html#top",
        "mailto:a@b",
    ]
    (root / "index.html").write_text(page("Home", "Welcome to the orchard.", links))
    (root / "apples.html").write_text(
        page("Apples", "Apples are crisp red fruits that grow on trees.", ["/"])
    )
    (root / "private" / "secret.html").write_text(page("Secret", "The vault code is 1234.", []))
    for n in range(1, 7):
        (root / f"l{n}.html").write_text(
            page(f"Level {n}", f"This is level {n} of the chain.", [f"l{n + 1}.html"])
        )

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/redirect":
                port = self.server.server_address[1]
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.2:{port}/index.html")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def allow_localhost(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an operator's INFERLINE_FETCH_ALLOW_HOSTS=127.0.0.1 does."""
    monkeypatch.setattr(server.container.crawler.fetcher.policy, "allow", AllowList.parse("127.0.0.1"))


def wait_task(
    client: telnyx.Telnyx, server: LiveServer, task_id: str, timeout: float = 180
) -> tuple[str, str]:
    """(status, failure reason recorded for the task)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.ai.embeddings.retrieve(task_id).data.status
        if status in FINAL:
            with server.container.db.session() as s:
                task = s.get(EmbeddingTask, task_id)
                return str(status), (task.error or "") if task else ""
        time.sleep(0.2)
    raise AssertionError("task did not finish")


def keys(server: LiveServer, bucket: str) -> list[str]:
    return [o.key for o in server.container.objects.list_objects("default", bucket)]


def test_crawl_site_then_search(
    client: telnyx.Telnyx, server: LiveServer, site: str, allow_localhost: None
) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(server.key_a),
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="orchard")
    task = client.ai.embeddings.url(bucket_name="orchard", url=site + "/index.html")
    assert task.data.task_name == "embed_url" and task.data.status == "queued"
    status, _ = wait_task(client, server, task.data.task_id or "")
    assert status == "success"
    stored = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="orchard")["Contents"])
    expected = ["index.html", "apples.html"] + [f"l{n}.html" for n in range(1, 6)]
    assert stored == sorted(f"127.0.0.1/{name}" for name in expected)  # no l6 (level 6), no /private/
    hit = client.ai.embeddings.similarity_search(
        bucket_name="orchard", query="red fruit", num_of_docs=1
    ).data[0]
    assert hit.metadata.filename == "127.0.0.1/apples.html"
    assert hit.metadata.source == site + "/apples.html"
    assert "crisp red fruits" in hit.document_chunk


def test_private_targets_refused_without_allow_list(
    http: httpx.Client, site: str, server: LiveServer
) -> None:
    server.container.objects.create_bucket("default", "ssrf")
    for url in (
        site + "/index.html",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://localhost/",
        "ftp://example.com/",
    ):
        response = http.post("/ai/embeddings/url", json={"bucket_name": "ssrf", "url": url})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["errors"][0]["source"]["pointer"] == "/url"
    assert keys(server, "ssrf") == []


def test_redirect_to_private_address_fails_the_task(
    client: telnyx.Telnyx, server: LiveServer, site: str, allow_localhost: None
) -> None:
    server.container.objects.create_bucket("default", "redirects")
    task = client.ai.embeddings.url(bucket_name="redirects", url=site + "/redirect")
    status, reason = wait_task(client, server, task.data.task_id or "")
    assert status == "failure" and "private, loopback or reserved" in reason
    assert keys(server, "redirects") == []


def test_url_needs_an_existing_bucket(client: telnyx.Telnyx, site: str, allow_localhost: None) -> None:
    with pytest.raises(telnyx.NotFoundError):
        client.ai.embeddings.url(bucket_name="never-created", url=site + "/index.html")
