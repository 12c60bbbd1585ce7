"""The web console at /console, driven in a real headless Chromium (Debian's `chromium` through Playwright's
`executable_path`; `make browser-deps` installs it). Screenshots of each page: tests/artifacts/console/."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import telnyx
from botocore.config import Config

from tests.conftest import LiveServer, s3_auth

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no chromium: install it with `make browser-deps` (apt install chromium)", allow_module_level=True
    )

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "console"
XSS_SCRIPT = "<script>window.__xss = 1</script>"
XSS_IMG = '<img src=x onerror="window.__xss = 1">'
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


@pytest.fixture
def page(browser: sync_api.Browser, server: LiveServer) -> Iterator[sync_api.Page]:
    """A signed-in console page; fails the test on any script error in the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url + "/console/")
    pg.get_by_label("API key").fill(server.key_a)
    pg.get_by_role("button", name="Sign in").click()
    pg.locator("#health-status").wait_for()
    yield pg
    assert errors == []
    assert pg.evaluate("window.__xss") is None
    context.close()


def shot(pg: sync_api.Page, name: str) -> None:
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def s3_client(server: LiveServer, key: str | None = None) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
        **s3_auth(key or server.key_a),
    )


def test_console_is_served_with_a_strict_csp(server: LiveServer) -> None:
    for path in ("/console/", "/console/static/app.js", "/console/static/console.css"):
        r = httpx.get(server.url + path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'"):
            assert directive in csp
        assert "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(server.url + "/console/static/..%2Froutes.py").status_code == 404
    assert httpx.get(server.url + "/console/static/nothing.js").status_code == 404
    page = httpx.get(server.url + "/console/").text
    assert "<script>" not in page and "style=" not in page and "onclick" not in page


def test_sign_in_keeps_the_key_in_session_storage_only(browser: sync_api.Browser, server: LiveServer) -> None:
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(server.url + "/console/")
    pg.get_by_label("API key").fill("KEYnot-a-real-key-000000000")
    pg.get_by_role("button", name="Sign in").click()
    pg.locator("#sign-in-error", has_text="unknown or revoked").wait_for(timeout=30_000)
    shot(pg, "sign-in")
    pg.get_by_label("API key").fill(server.key_a)
    pg.get_by_role("button", name="Sign in").click()
    pg.locator("#health-status").wait_for(timeout=60_000)
    assert server.key_a not in pg.url
    assert pg.evaluate("sessionStorage.getItem('inferline.apiKey')") == server.key_a
    assert pg.evaluate("localStorage.length") == 0
    assert pg.evaluate("document.cookie") == ""
    assert "ready" in pg.locator("#health-status").inner_text()
    assert pg.get_by_role("table").first.is_visible()
    shot(pg, "overview")
    pg.get_by_role("button", name="Sign out").click()
    assert pg.evaluate("sessionStorage.length") == 0
    assert pg.get_by_label("API key").is_visible()
    context.close()


def test_playground_streams_a_chat(page: sync_api.Page) -> None:
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Max tokens").fill("16")
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Message").fill("Say hello.")
    page.get_by_role("button", name="Send").click()
    stats = page.locator("#chat-stats")
    stats.get_by_text("tokens/s").wait_for()
    assert page.locator(".assistant-text").inner_text().strip()
    assert "time to first token" in stats.inner_text()
    page.get_by_role("button", name="curl").click()
    code = page.locator("#code").inner_text()
    assert "/v2/ai/chat/completions" in code and "Say hello." in code and "Bearer $INFERLINE_API_KEY" in code
    page.get_by_role("button", name="openai Python").click()
    assert "client.chat.completions.create(" in page.locator("#code").inner_text()
    page.get_by_role("button", name="telnyx Python").click()
    assert "client.ai.chat.create_completion(" in page.locator("#code").inner_text()
    shot(page, "playground")


def test_playground_guided_choice(page: sync_api.Page) -> None:
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Guided decoding").select_option("choice")
    page.get_by_label("Guidance").fill("yes\nno")
    page.get_by_label("Max tokens").fill("4")
    page.get_by_label("Message").fill("Is the sky blue?")
    page.get_by_role("button", name="Send").click()
    page.locator("#chat-stats").get_by_text("tokens/s").wait_for()
    assert page.locator(".assistant-text").inner_text().strip() in {"yes", "no"}


def wait_task(client: telnyx.Telnyx, task_id: str) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = str(client.ai.embeddings.retrieve(task_id).data.status)
        if status in {"success", "failure", "partial_success"}:
            return status
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish")


def test_buckets_upload_embed_and_search(
    page: sync_api.Page, server: LiveServer, client: telnyx.Telnyx
) -> None:
    s3 = s3_client(server)
    s3.create_bucket(Bucket="console-docs")
    s3.put_object(Bucket="console-docs", Key="oaks.txt", Body=b"Oak trees grow acorns in the autumn forest.")
    s3.put_object(Bucket="console-docs", Key=f"{XSS_IMG}.txt", Body=b"Bananas are yellow fruit.")
    assert (
        wait_task(client, client.ai.embeddings.create(bucket_name="console-docs").data.task_id) == "success"
    )

    page.get_by_role("link", name="Buckets").click()
    page.get_by_label("Bucket", exact=True).select_option("console-docs")
    objects = page.locator("#objects")
    objects.get_by_text(f"{XSS_IMG}.txt").wait_for()  # the file name shown as text
    page.locator("#file-status").get_by_text("oaks.txt").wait_for()
    # Upload through the browser: the page signs the S3 PUT (SigV4) with credentials derived from the key.
    page.get_by_label("Upload files").set_input_files(
        files=[{"name": "pears.txt", "mimeType": "text/plain", "buffer": b"Pears ripen after picking."}]
    )
    objects.get_by_text("pears.txt").wait_for()
    assert (
        s3.get_object(Bucket="console-docs", Key="pears.txt")["Body"].read() == b"Pears ripen after picking."
    )

    page.get_by_label("Similarity search").fill("What do oak trees grow?")
    page.get_by_role("button", name="Search").click()
    results = page.locator("#search-results")
    results.get_by_text("Oak trees grow acorns").wait_for()
    first = results.locator("tbody tr").first.locator("td")
    assert first.nth(1).inner_text() == "oaks.txt"
    assert 0 < float(first.nth(0).inner_text()) <= 1
    shot(page, "buckets")


def test_conversation_messages_are_text_never_markup(page: sync_api.Page, http: httpx.Client) -> None:
    convo = http.post("/ai/conversations", json={"name": f"support {XSS_IMG}", "metadata": {}}).json()
    cid = convo["id"] if "id" in convo else convo["data"]["id"]
    for role, content in (("user", f"Hello {XSS_SCRIPT}"), ("assistant", f"Hi! {XSS_IMG}")):
        assert http.post(
            f"/ai/conversations/{cid}/message", json={"role": role, "content": content}
        ).is_success

    page.get_by_role("link", name="Conversations").click()
    page.get_by_role("button", name=f"support {XSS_IMG}").first.click()
    messages = page.locator("#conversation-detail .message-text")
    messages.first.wait_for()
    texts = messages.all_inner_texts()
    assert f"Hello {XSS_SCRIPT}" in texts and f"Hi! {XSS_IMG}" in texts
    assert page.locator("#conversation-detail img, #conversation-detail script").count() == 0
    page.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert page.evaluate("window.__xss") is None
    shot(page, "conversations")


def test_speak_plays_audio(page: sync_api.Page) -> None:
    page.get_by_role("link", name="Audio").click()
    page.get_by_label("Text").fill("Hello from the console.")
    page.get_by_role("button", name="Speak").click()
    player = page.locator("#tts-audio")
    deadline = time.monotonic() + 120
    # Polled from here: wait_for_function evaluates a string in the page, which the console's CSP forbids.
    while not player.evaluate("a => a.src.startsWith('blob:') && a.duration > 0 && a.duration !== Infinity"):
        assert time.monotonic() < deadline, "no playable audio"
        page.wait_for_timeout(200)
    shot(page, "audio")


def test_jobs_page(page: sync_api.Page) -> None:
    """The Admin page of a key without the admin scope: tests/test_console_scope.py."""
    page.get_by_role("link", name="Jobs").click()
    page.get_by_role("heading", name="Fine-tuning jobs").wait_for()
    shot(page, "jobs")


def test_admin_creates_a_key_shown_once(browser: sync_api.Browser, server: LiveServer) -> None:
    _, admin_key = server.container.keys.create("console-admin", name="console admin", scope="admin")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.goto(server.url + "/console/#admin")
    pg.get_by_label("API key").fill(admin_key)
    pg.get_by_role("button", name="Sign in").click()
    pg.get_by_role("heading", name="Keys").wait_for(timeout=60_000)
    pg.get_by_label("Tenant").fill("console-new")
    pg.get_by_label("Name", exact=True).fill(XSS_SCRIPT)
    pg.get_by_role("button", name="Create key").click()
    secret = pg.locator("#new-key").inner_text(timeout=30_000)
    assert secret.startswith("KEY") and server.container.keys.authenticate(secret).tenant_id == "console-new"
    pg.goto(server.url + "/console/#overview")
    pg.get_by_role("heading", name="Usage").wait_for()
    pg.locator(".chart").wait_for(timeout=30_000)
    pg.goto(server.url + "/console/#admin")
    pg.get_by_role("cell", name=XSS_SCRIPT).wait_for(timeout=30_000)  # the name, as text
    assert pg.evaluate("window.__xss") is None
    shot(pg, "admin")
    context.close()
