"""The console follows its key's tenant and scope (GET /v2/console/whoami), pages a bucket of 1,000 objects
on the server, and never lets a late listing of one bucket overwrite another's. Headless Chromium as in
tests/test_console.py (fixtures, CSP-safe polling, screenshots in tests/artifacts/console/)."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests import test_console as base
from tests.conftest import LiveServer
from tests.test_console import XSS_SCRIPT, s3_client, shot, sync_api
from tests.test_console_more import sign_in, until

browser = base.browser  # the shared fixture


def admin_http(server: LiveServer, tenant: str) -> httpx.Client:
    """httpx with a fresh admin key of `tenant` (bootstrapped the way the other console tests do)."""
    _, key = server.container.keys.create(tenant, name="scope admin", scope="admin")
    return httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def new_key(admin: httpx.Client, tenant: str, scope: str) -> str:
    """A key made through the admin API, as an operator would."""
    r = admin.post("/admin/keys", json={"tenant_id": tenant, "name": f"{scope} key", "scope": scope})
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["key"])


def watch_errors(pg: sync_api.Page) -> list[str]:
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_whoami_tells_the_tenant_and_scope_and_no_secret(server: LiveServer) -> None:
    tenant = "console-whoami"
    with admin_http(server, tenant) as admin:
        for scope in ("read", "inference"):
            key = new_key(admin, tenant, scope)
            r = httpx.get(server.v2 + "/console/whoami", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text
            data = r.json()["data"]
            assert data["tenant_id"] == tenant and data["scope"] == scope and data["key_id"]
            assert key not in r.text and key[:8] not in r.text
            assert set(data) == {"record_type", "tenant_id", "key_id", "scope"}
        assert admin.get("/console/whoami").json()["data"]["scope"] == "admin"
    r = httpx.get(server.v2 + "/console/whoami")
    assert r.status_code == 401 and r.json()["errors"][0]["code"]


def test_a_read_key_sees_but_cannot_change(browser: sync_api.Browser, server: LiveServer) -> None:
    tenant = "console-read"
    with admin_http(server, tenant) as admin:
        read_key = new_key(admin, tenant, "read")
        writer = new_key(admin, tenant, "inference")
    s3 = s3_client(server, writer)
    s3.create_bucket(Bucket="read-only-docs")
    s3.put_object(Bucket="read-only-docs", Key=f"{XSS_SCRIPT}.txt", Body=b"Shown, never run.")

    pg = sign_in(browser, server, read_key)
    errors = watch_errors(pg)
    assert pg.locator("#whoami").inner_text() == f"Tenant {tenant} · read key"
    assert pg.locator("#nav-admin").is_hidden()
    assert pg.get_by_role("link", name="Admin").count() == 0
    pg.get_by_text("Usage over time needs a key with the admin scope.").wait_for()

    pg.get_by_role("link", name="Playground").click()
    pg.get_by_role("heading", name="Playground").wait_for()
    assert pg.get_by_role("button", name="Send").is_disabled()
    note = pg.locator(".read-only-note")
    assert "'read' scope" in note.inner_text() and "sending chat messages" in note.inner_text()
    assert pg.get_by_role("button", name="curl").is_enabled()  # copying code changes nothing
    shot(pg, "scope-read-playground")

    pg.get_by_role("link", name="Buckets").click()
    pg.locator("#objects").get_by_text(f"{XSS_SCRIPT}.txt").wait_for()  # reading works, as text
    for name in ("Create bucket", "Embed bucket", "Crawl", "Search"):
        assert pg.get_by_role("button", name=name, exact=True).is_disabled(), name
    assert pg.get_by_label("Upload files").is_disabled()
    assert pg.locator(".drop").is_hidden()
    assert "uploads" in pg.locator(".read-only-note").inner_text()
    assert pg.get_by_role("button", name="Filter").is_enabled()
    shot(pg, "scope-read-buckets")

    pg.get_by_role("link", name="Audio").click()
    pg.get_by_role("heading", name="Speak").wait_for()
    for name in ("Transcribe", "Record", "Speak"):
        assert pg.get_by_role("button", name=name, exact=True).is_disabled(), name

    pg.get_by_role("link", name="Conversations").click()
    pg.get_by_role("heading", name="Insight templates").wait_for()
    for name in ("Save template", "Create group", "Assign"):
        assert pg.get_by_role("button", name=name, exact=True).is_disabled(), name
    assert pg.get_by_role("button", name="Filter").is_enabled()

    pg.reload()  # the key stays in session storage; its scope is learnt again
    pg.get_by_role("heading", name="Insight templates").wait_for()
    assert pg.get_by_role("button", name="Save template").is_disabled()
    assert pg.locator("#whoami").inner_text() == f"Tenant {tenant} · read key"
    pg.goto(server.url + "/console/#admin")
    explanation = pg.locator("#admin-needs-scope")
    explanation.wait_for()
    assert "admin scope" in explanation.inner_text() and "'read'" in explanation.inner_text()
    assert pg.get_by_role("heading", name="Keys").count() == 0
    shot(pg, "scope-read-admin")
    assert errors == [] and pg.evaluate("window.__xss") is None
    pg.context.close()


def test_an_inference_key_writes_but_has_no_admin(browser: sync_api.Browser, server: LiveServer) -> None:
    tenant = "console-inference"
    with admin_http(server, tenant) as admin:
        key = new_key(admin, tenant, "inference")
    pg = sign_in(browser, server, key)
    errors = watch_errors(pg)
    assert pg.locator("#whoami").inner_text() == f"Tenant {tenant} · inference key"
    assert pg.locator("#nav-admin").is_hidden()
    pg.get_by_role("link", name="Playground").click()
    pg.get_by_role("heading", name="Playground").wait_for()
    assert pg.get_by_role("button", name="Send").is_enabled()
    assert pg.locator(".read-only-note").count() == 0
    pg.get_by_role("link", name="Buckets").click()
    pg.get_by_role("heading", name="Buckets").wait_for()
    assert pg.get_by_role("button", name="Create bucket").is_enabled()
    assert "null" not in pg.locator("#page").inner_text()
    assert pg.locator(".drop").is_visible()
    pg.goto(server.url + "/console/#admin")
    pg.locator("#admin-needs-scope", has_text="'inference' scope").wait_for()
    shot(pg, "admin-needs-scope")
    assert errors == []
    pg.context.close()


def test_an_admin_key_has_the_admin_page(browser: sync_api.Browser, server: LiveServer) -> None:
    tenant = "console-admin-scope"
    _, key = server.container.keys.create(tenant, name="admin", scope="admin")
    pg = sign_in(browser, server, key)
    errors = watch_errors(pg)
    assert pg.locator("#whoami").inner_text() == f"Tenant {tenant} · admin key"
    pg.get_by_role("link", name="Admin").click()
    pg.get_by_role("heading", name="Keys").wait_for()
    assert pg.get_by_role("button", name="Create key").is_enabled()
    assert pg.locator("#admin-needs-scope").count() == 0
    assert errors == []
    pg.context.close()


def test_a_thousand_objects_are_paged_by_the_server(browser: sync_api.Browser, server: LiveServer) -> None:
    tenant = "console-thousand"
    _, key = server.container.keys.create(tenant, name="bulk objects")
    s3 = s3_client(server, key)
    s3.create_bucket(Bucket="thousand")
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: s3.put_object(Bucket="thousand", Key=f"doc-{i:04d}.txt", Body=f"{i}".encode()),
                range(1000),
            )
        )
    assert s3.list_objects_v2(Bucket="thousand", MaxKeys=1)["IsTruncated"]

    pg = sign_in(browser, server, key)
    errors = watch_errors(pg)
    listings: list[str] = []
    pg.on("request", lambda r: listings.append(r.url) if "/s3/thousand?" in r.url else None)
    pg.get_by_role("link", name="Buckets").click()
    objects = pg.locator("#objects")
    keys = objects.locator("tbody tr td:first-child")
    objects.get_by_role("cell", name="doc-0000.txt", exact=True).wait_for()
    assert keys.count() == 20 and keys.last.inner_text() == "doc-0019.txt"
    pager = objects.locator(".pager")
    assert "1\u201320" in pager.inner_text()
    assert pg.get_by_role("button", name="Previous").is_disabled()

    pg.get_by_role("button", name="Next").click()
    objects.get_by_role("cell", name="doc-0020.txt", exact=True).wait_for()
    assert keys.count() == 20 and "21\u201340" in pager.inner_text()
    pg.get_by_role("button", name="Next").click()
    objects.get_by_role("cell", name="doc-0040.txt", exact=True).wait_for()
    pg.get_by_role("button", name="Previous").click()
    objects.get_by_role("cell", name="doc-0020.txt", exact=True).wait_for()
    assert keys.count() == 20 and "21\u201340" in pager.inner_text()

    pg.get_by_label("Key prefix").fill("doc-09")  # a filter on the server (S3 prefix), paged as well
    pg.get_by_role("button", name="Filter").click()
    objects.get_by_role("cell", name="doc-0900.txt", exact=True).wait_for()
    assert keys.count() == 20 and "1\u201320" in pager.inner_text()
    pg.get_by_role("button", name="Next").click()
    objects.get_by_role("cell", name="doc-0920.txt", exact=True).wait_for()
    pg.get_by_label("Key prefix").fill("doc-098")
    pg.get_by_role("button", name="Filter").click()
    objects.get_by_role("cell", name="doc-0980.txt", exact=True).wait_for()
    assert keys.count() == 10 and keys.last.inner_text() == "doc-0989.txt"
    assert pg.get_by_role("button", name="Next").is_disabled()  # the only page of this prefix
    assert "starting with doc-098" in objects.get_by_role("heading").inner_text()
    shot(pg, "buckets-1000")

    # Every listing asked the server for one page only.
    assert listings and all("max-keys=20" in url for url in listings), listings
    assert errors == []
    pg.context.close()


def test_a_late_listing_of_another_bucket_does_not_overwrite_the_current_one(
    browser: sync_api.Browser, server: LiveServer
) -> None:
    tenant = "console-race"
    _, key = server.container.keys.create(tenant, name="race")
    s3 = s3_client(server, key)
    for bucket, stem in (("race-a", "alpha"), ("race-b", "beta")):
        s3.create_bucket(Bucket=bucket)
        for i in range(3):
            s3.put_object(Bucket=bucket, Key=f"{stem}-{i}.txt", Body=b"x")

    pg = sign_in(browser, server, key)
    errors = watch_errors(pg)
    pg.get_by_role("link", name="Buckets").click()
    objects = pg.locator("#objects")
    objects.get_by_text("alpha-0.txt").wait_for()  # race-a is listed first
    bucket = pg.get_by_label("Bucket", exact=True)
    bucket.select_option("race-b")
    objects.get_by_text("beta-0.txt").wait_for()

    held: list[Any] = []  # race-a's listing, answered only after race-b's is shown
    pg.route(lambda url: "/s3/race-a?" in url and "list-type=2" in url, lambda route: held.append(route))
    bucket.select_option("race-a")
    until(lambda: held, pg, "the held listing of race-a")
    bucket.select_option("race-b")
    objects.get_by_text("beta-0.txt").wait_for()
    for route in held:
        with contextlib.suppress(sync_api.Error):  # the page may have aborted it already
            route.continue_()
    pg.wait_for_timeout(1500)  # time for a late answer to be (wrongly) drawn
    text = objects.inner_text()
    assert "beta-0.txt" in text and "alpha" not in text, text
    assert bucket.input_value() == "race-b" and objects.get_attribute("data-bucket") == "race-b"
    shot(pg, "buckets-race")
    assert errors == []
    pg.context.close()


def test_a_late_answer_for_another_conversation_does_not_overwrite_the_opened_one(
    browser: sync_api.Browser, server: LiveServer
) -> None:
    tenant = "console-convo-race"
    _, key = server.container.keys.create(tenant, name="race")
    http = httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    ids = {}
    for name in ("race one", "race two"):
        convo = http.post("/ai/conversations", json={"name": name, "metadata": {}}).json()
        ids[name] = convo["id"] if "id" in convo else convo["data"]["id"]
        said = {"role": "user", "content": f"said in {name}"}
        r = http.post(f"/ai/conversations/{ids[name]}/message", json=said)
        assert r.is_success, r.text
    http.close()

    pg = sign_in(browser, server, key)
    errors = watch_errors(pg)
    pg.get_by_role("link", name="Conversations").click()
    held: list[Any] = []  # the messages of "race one", answered only after "race two" is shown
    pg.route(f"**/ai/conversations/{ids['race one']}/messages?*", lambda route: held.append(route))
    pg.get_by_role("button", name="race one").click()
    until(lambda: held, pg, "the held messages of race one")
    pg.get_by_role("button", name="race two").click()
    detail = pg.locator("#conversation-detail")
    detail.get_by_text("said in race two").wait_for()
    for route in held:
        route.continue_()
    pg.wait_for_timeout(1500)  # time for a late answer to be (wrongly) drawn
    text = detail.inner_text()
    assert "Messages of race two" in text and "race one" not in text, text
    assert errors == []
    pg.context.close()
