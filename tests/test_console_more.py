"""More of the console in headless Chromium: playground tools, webhook deliveries, the insight template
editor, a fine-tune watched live, subtitles and microphone transcription, the usage chart, and 10,000
conversations paged server-side. Fixtures and conventions (CSP-safe polling, screenshots) come from
tests/test_console.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import telnyx
from sqlalchemy import insert

from inferline.areas.conversations.webhooks import WebhookService
from inferline.stores.conversations_tables import Conversation
from tests import test_console as base
from tests.conftest import LiveServer
from tests.test_console import CHROMIUM, TIMEOUT_MS, XSS_SCRIPT, s3_client, shot, sync_api

browser = base.browser  # the shared fixtures
page = base.page

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def until(check: Callable[[], Any], page: sync_api.Page, what: str, timeout: float = 120) -> Any:
    """Poll from the test (a string-evaluated wait_for_function is forbidden by the console's CSP)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(200)
    return value


def sign_in(browser: sync_api.Browser, server: LiveServer, key: str, **options: Any) -> sync_api.Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(server.url + "/console/")
    pg.get_by_label("API key").fill(key)
    pg.get_by_role("button", name="Sign in").click()
    pg.locator("#health-status").wait_for()
    return pg


def test_playground_tools_are_checked_and_tool_calls_shown(page: sync_api.Page) -> None:
    page.get_by_role("link", name="Playground").click()
    tools = page.get_by_label("Tools (JSON function tools)")
    tools.fill('[{"type": "function", "function": {"name": "get weather"}}]')
    assert "function.name" in page.locator("#tools-error").inner_text()
    tools.fill('[{"type": "function",')
    page.get_by_label("Message").fill("What is the weather in Paris?")
    page.get_by_role("button", name="Send").click()
    page.locator("#tools-error", has_text="not valid JSON").wait_for()
    assert page.locator(".assistant-text").count() == 0  # nothing was sent
    tools.fill(json.dumps([WEATHER_TOOL]))
    assert page.locator("#tools-error").inner_text() == ""
    page.get_by_label("Tool choice").select_option("function:get_weather")
    page.get_by_label("Max tokens").fill("64")
    page.get_by_label("Temperature").fill("0")
    page.get_by_role("button", name="Send").click()
    page.locator("#tool-calls .tool-name").first.wait_for()
    assert page.locator("#tool-calls .tool-name").first.inner_text() == "get_weather"
    assert "city" in json.loads(page.locator("#tool-calls .tool-args").first.inner_text())
    page.get_by_role("button", name="curl").click()
    assert '"tool_choice"' in page.locator("#code").inner_text()
    shot(page, "playground-tools")


class Receiver:
    """A local webhook receiver answering the scripted statuses in turn (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.hits = statuses, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                status = outer.statuses[min(outer.hits, len(outer.statuses) - 1)]
                outer.hits += 1
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_conversation_shows_webhook_deliveries_with_attempts(
    page: sync_api.Page, server: LiveServer, http: httpx.Client
) -> None:
    convo = http.post("/ai/conversations", json={"name": "console deliveries", "metadata": {}}).json()
    cid = convo["id"] if "id" in convo else convo["data"]["id"]
    assert http.post(f"/ai/conversations/{cid}/message", json={"role": "user", "content": "Hi"}).is_success
    group = http.post("/ai/conversations/insight-groups", json={"name": "console hooks"}).json()["data"]["id"]
    insight = http.post(
        "/ai/conversations/insights", json={"name": "gist", "instructions": "Summarize in three words."}
    ).json()["data"]["id"]
    assert http.post(f"/ai/conversations/insight-groups/{group}/insights/{insight}/assign").is_success
    run = http.post(f"/ai/conversations/{cid}/conversations-insights", json={"insight_group_id": group})
    assert run.status_code == 200, run.text
    run_id = run.json()["data"]["id"]
    receiver = Receiver([500, 200])
    try:
        container = server.container
        tenant = container.keys.authenticate(server.key_a).tenant_id
        service = WebhookService(container.db, container.jobs, container.webhooks.signer, max_attempts=3)
        with container.db.session() as s:
            service.enqueue(
                s,
                tenant_id=tenant,
                url=receiver.url,
                event_type="call.conversation_insights.generated",
                body={"data": {"payload": {"results": []}}},
                run_id=run_id,
            )
        deadline = time.monotonic() + 60
        while container.webhooks.deliveries(tenant, run_id)[0]["status"] != "delivered":
            assert time.monotonic() < deadline, container.webhooks.deliveries(tenant, run_id)
            time.sleep(0.1)

        page.get_by_role("link", name="Conversations").click()
        page.get_by_role("button", name="console deliveries").first.click()
        page.locator("#conversation-detail .delivery-status", has_text="delivered").wait_for()
        row = page.locator("#conversation-detail tr", has=page.locator(".delivery-status"))
        assert receiver.url in row.inner_text()
        attempts = row.locator(".attempts li").all_inner_texts()
        assert len(attempts) == 2 and attempts[0].startswith("500") and attempts[1].startswith("200")
        shot(page, "conversation-deliveries")
    finally:
        receiver.close()


def test_insight_template_editor_checks_the_schema_before_save(
    page: sync_api.Page, http: httpx.Client
) -> None:
    page.get_by_role("link", name="Conversations").click()
    page.get_by_role("heading", name="Insight templates").wait_for()
    name = f"mood {XSS_SCRIPT}"
    page.get_by_label("Template name").fill(name)
    page.get_by_label("Instructions").fill("How does the customer feel?")
    error = page.locator("#insight-error")
    save = page.get_by_role("button", name="Save template")
    for schema, reason in (
        ('{"type": "object",', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"title": "x"}', "needs one of"),
        ('{"type": "objekt"}', "type must be one of"),
        ('{"type": "object", "properties": {"mood": {"type": "text"}}}', "schema.properties.mood.type"),
    ):
        page.get_by_label("JSON schema").fill(schema)
        save.click()
        error.get_by_text(reason).wait_for()
    assert all(t["name"] != name for t in http.get("/ai/conversations/insights").json()["data"])
    # The API's own check: its error envelope's detail is shown (a name over 500 characters).
    good = '{"type": "object", "properties": {"mood": {"type": "string", "enum": ["happy", "sad"]}}}'
    page.get_by_label("JSON schema").fill(good)
    page.get_by_label("Template name").fill("n" * 501)
    save.click()
    error.get_by_text("422").wait_for()
    assert "name" in error.inner_text()
    page.get_by_label("Template name").fill(name)
    save.click()
    page.get_by_role("cell", name=name, exact=True).wait_for()  # shown as text
    saved = [t for t in http.get("/ai/conversations/insights").json()["data"] if t["name"] == name]
    assert len(saved) == 1 and json.loads(saved[0]["json_schema"]) == json.loads(good)

    page.get_by_label("Group name").fill("console group")
    page.get_by_role("button", name="Create group").click()
    page.get_by_role("cell", name="console group").first.wait_for()
    page.get_by_label("Group", exact=True).select_option(label="console group")
    page.get_by_label("Template", exact=True).select_option(label=name)
    page.get_by_role("button", name="Assign").click()
    page.get_by_role("row", name=f"console group {name}").first.wait_for()
    shot(page, "insight-editor")


def test_fine_tune_progress_and_loss_are_watched_live(browser: sync_api.Browser, server: LiveServer) -> None:
    """On a tenant of its own: the fine-tuning tests expect tenant A to start with no jobs."""
    _, key = server.container.keys.create("console-fine-tune", name="fine-tune watcher")
    client = telnyx.Telnyx(api_key=key, base_url=server.v2, _strict_response_validation=True, max_retries=0)
    page = sign_in(browser, server, key)
    s3 = s3_client(server, key)
    s3.create_bucket(Bucket="console-ft")
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Blue."}]}
        for q in ("What colour is the sky?", "Sky colour?")
    ]
    s3.put_object(
        Bucket="console-ft", Key="t.jsonl", Body="".join(json.dumps(r) + "\n" for r in rows).encode()
    )
    job = client.ai.fine_tuning.jobs.create(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        training_file="console-ft/t.jsonl",
        hyperparameters={"n_epochs": 50},
    )
    try:
        page.goto(f"{server.url}/console/#jobs/{job.id}")
        state = page.locator("#ft-state")
        first = until(lambda: state.get_attribute("data-status"), page, "the job's first state")
        until(
            lambda: (
                " step " in state.inner_text() and int(state.inner_text().split(" step ")[1].split()[0]) >= 1
            ),
            page,
            "a training step",
            timeout=600,
        )
        assert first != "cancelled"
        assert float(page.locator("#ft-progress").get_attribute("value") or 0) >= 1
        until(
            lambda: int(page.locator("#ft-loss").get_attribute("data-points") or 0) >= 1, page, "a loss point"
        )
        shot(page, "fine-tune-progress")
    finally:
        client.ai.fine_tuning.jobs.cancel(job.id)
    until(lambda: state.get_attribute("data-status") == "cancelled", page, "the cancelled state")


def test_transcription_subtitles_download_and_microphone(
    browser: sync_api.Browser, server: LiveServer, http: httpx.Client
) -> None:
    speech = http.post("/text-to-speech/speech", json={"text": "Good morning, this is a test.", "voice": ""})
    assert speech.status_code == 200, speech.text
    media = browser.browser_type.launch(  # a second browser with a fake microphone
        executable_path=CHROMIUM,
        args=["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"],
    )
    pg = sign_in(media, server, server.key_a, permissions=["microphone"])
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.get_by_role("link", name="Audio").click()
    pg.get_by_label("Audio file").set_input_files(
        files=[{"name": "hello.wav", "mimeType": "audio/wav", "buffer": speech.content}]
    )
    pg.get_by_role("button", name="Transcribe").click()
    pg.locator("#download-srt").wait_for()
    for kind, head in (("srt", "1\n00:00:00,"), ("vtt", "WEBVTT\n\n00:00:00.")):
        with pg.expect_download() as info:
            pg.locator(f"#download-{kind}").click()
        text = Path(info.value.path()).read_text()
        assert text.startswith(head) and " --> " in text, text
    assert "morning" in pg.locator("#transcript-text").inner_text().lower()
    pg.get_by_role("button", name="Record").click()
    pg.locator("#record-state", has_text="Recording").wait_for()
    pg.wait_for_timeout(1500)
    pg.get_by_role("button", name="Stop recording").click()
    pg.locator("#transcript-result #download-vtt").wait_for()  # the recording was transcribed
    assert pg.locator("#transcript-result .error").count() == 0
    shot(pg, "audio-transcription")
    media.close()
    assert errors == []


def test_overview_usage_chart_draws_bars(
    browser: sync_api.Browser, server: LiveServer, client: telnyx.Telnyx
) -> None:
    client.ai.openai.chat.create_completion(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
    )  # some token usage today
    _, admin_key = server.container.keys.create("console-usage", name="usage admin", scope="admin")
    pg = sign_in(browser, server, admin_key)
    bars = pg.locator("#usage-chart .usage-bar")
    bars.first.wait_for()
    assert bars.count() >= 1 and "tokens" in (bars.first.get_attribute("title") or "")
    shot(pg, "overview-usage")
    pg.context.close()


def test_ten_thousand_conversations_are_paged_by_the_server(
    browser: sync_api.Browser, server: LiveServer
) -> None:
    tenant = "console-bulk"
    _, key = server.container.keys.create(tenant, name="bulk")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "tenant_id": tenant,
            "name": f"bulk {i:05d}",
            "meta": {},
            "created_at": start + timedelta(seconds=i),
        }
        for i in range(10_000)
    ]
    with server.container.db.session() as s:
        s.execute(insert(Conversation), rows)
    pg = sign_in(browser, server, key)
    pg.get_by_role("link", name="Conversations").click()
    names = pg.locator("#conversation-list .conversation-open")
    names.first.wait_for()
    assert names.count() == 20 and names.first.inner_text() == "bulk 09999"
    pg.get_by_role("button", name="Next").click()
    pg.get_by_role("button", name="bulk 09979").wait_for()
    assert names.count() == 20 and "21\u201340" in pg.locator("#conversation-list .pager").inner_text()
    pg.get_by_label("Name contains").fill("bulk 0004")
    pg.get_by_role("button", name="Filter").click()
    pg.get_by_role("button", name="bulk 00049").wait_for()
    assert names.count() == 10
    shot(pg, "conversations-10000")
    pg.context.close()
