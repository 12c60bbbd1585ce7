"""The SSRF policy and its one client (`inferline.net`): host canonicalisation, the address policy, webhook
URLs refused when saved whatever the IPv4 spelling, and resolve-once delivery (DNS rebinding). All real
traffic stays on 127.0.0.1; refused targets are never connected to."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from pydantic import ValidationError

from inferline.config import Settings
from inferline.net.policy import AllowList, Policy, UnsafeUrl, canonical_host, is_public
from inferline.net.safe_http import SafeHttpClient
from tests.conftest import LiveServer
from tests.test_foundation import assert_envelope
from tests.test_insights_webhooks import EVENT, enqueue, wait_delivery


# ---- canonicalisation and policy (no network) --------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("167772161", "10.0.0.1"),
        ("0x0a000001", "10.0.0.1"),
        ("012.0.0.1", "10.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("\uff11\uff12\uff17.0.0.1", "127.0.0.1"),  # full-width digits fold to ASCII
        ("127\u30020\u30020\u30021", "127.0.0.1"),  # ideographic full stops are dots
        ("[::ffff:127.0.0.1]", str(ipaddress.IPv6Address("::ffff:127.0.0.1"))),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("Example.COM.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("localhost", "localhost"),
    ],
)
def test_canonical_host(host: str, canonical: str) -> None:
    assert canonical_host(host) == canonical


@pytest.mark.parametrize(
    "host",
    [
        "",
        ".",
        "1.2.3.4.5",
        "256.0.0.1",
        "1.16777216",
        "08.0.0.1",
        "0x7g.0.0.1",
        "host.123",
        "a b",
        "fe80::1%eth0",
    ],
)
def test_canonical_host_refuses_malformed(host: str) -> None:
    with pytest.raises(ValueError):
        canonical_host(host)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("64:ff9b::5db8:d70e", True),  # NAT64 of a public IPv4
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fec0::1", False),
        ("fd00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("::127.0.0.1", False),  # IPv4-compatible
        ("64:ff9b::7f00:1", False),  # NAT64 of loopback
        ("64:ff9b:1::a00:1", False),  # NAT64 local-use prefix
        ("2002:7f00:1::", False),  # 6to4 of loopback
        ("2001::1", False),  # Teredo
    ],
)
def test_address_policy(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://127.0.0.1./",
        "http://[::ffff:127.0.0.1]/",
        "http://017700000001/",
        "http://0/",
        "http://localhost./",
        "http://LOCALHOST/",
        "http://api.localhost/",
        "http://[::1]:8080/",
        "ftp://example.com/",
        "http://example.com:99999/",
        "http:///path",
    ],
)
def test_static_check_refuses_loopback_in_any_spelling(url: str) -> None:
    with pytest.raises(UnsafeUrl) as info:
        Policy(AllowList(), "X").check_static(url, "/webhook")
    assert info.value.pointer == "/webhook"


def test_allow_list_is_canonical_and_parsed_in_settings() -> None:
    allow = AllowList.parse(" 0x7f000001 , 10.0.0.0/8,Internal.Example., ")
    assert allow.hosts == {"internal.example"}
    assert set(allow.networks) == {ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")}
    policy = Policy(allow, "X")
    for url in (
        "http://2130706433/",
        "http://[::ffff:127.0.0.1]/",
        "http://0xa.1.2.3/",
        "http://internal.example./",
    ):
        policy.check_static(url, "/webhook")
    with pytest.raises(UnsafeUrl):
        policy.check_static("http://0x7f000002/", "/webhook")
    settings = Settings(webhook_allowed_hosts="127.0.0.1,hooks.example", fetch_allow_hosts="")
    assert settings.webhook_allow.hosts == {"hooks.example"} and settings.fetch_allow == AllowList()
    with pytest.raises(ValidationError, match="webhook_allowed_hosts"):
        Settings(webhook_allowed_hosts="127.0.0.1,not a host")


# ---- the client: every address checked, resolved once, redirects re-checked --------------------------------
class _Recorder:
    """A loopback HTTP server recording (method, Host, body) and redirecting `/hop` to `redirect_to`."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        self.redirect_to = ""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                recorder.seen.append((self.command, self.headers.get("host", ""), body))
                if self.path == "/hop":
                    self.send_response(302)
                    self.send_header("location", recorder.redirect_to)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    r = _Recorder()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


class OnceResolver:
    """Answers `answers` for the first lookup; any later lookup is a test failure (and would rebind)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        if self.calls > 1:
            raise socket.gaierror(f"second lookup of {host}")
        return self.answers


def test_client_refuses_when_any_resolved_address_is_private() -> None:
    resolver = OnceResolver("93.184.215.14", "10.0.0.1")
    client = SafeHttpClient(resolver=resolver)
    with pytest.raises(UnsafeUrl, match=r"10\.0\.0\.1"):
        client.get("http://mixed.example/", pointer="/url")  # refused before any connection
    assert resolver.calls == 1


def test_client_connects_to_the_address_it_checked(recorder: _Recorder) -> None:
    resolver = OnceResolver("127.0.0.1")
    client = SafeHttpClient(AllowList.parse("127.0.0.1"), resolver=resolver)
    body, final = client.get(f"http://Rebind.Example.:{recorder.port}/page", pointer="/url")
    assert (body, final) == (b"ok", f"http://Rebind.Example.:{recorder.port}/page")
    assert recorder.seen == [("GET", f"rebind.example:{recorder.port}", b"")]
    assert resolver.calls == 1


def test_client_checks_every_redirect_hop(recorder: _Recorder) -> None:
    client = SafeHttpClient(AllowList.parse("127.0.0.1"))
    for target in ("http://0x7f000002:{port}/", "http://127.0.0.2:{port}/", "http://[::ffff:10.0.0.1]/"):
        recorder.redirect_to = target.format(port=recorder.port)
        with pytest.raises(UnsafeUrl):
            client.get(f"http://127.0.0.1:{recorder.port}/hop", pointer="/url")
    assert [m for m, _, _ in recorder.seen] == ["GET"] * 3  # only the first hop, on 127.0.0.1, each time


def test_client_post_sends_json_with_headers(recorder: _Recorder) -> None:
    client = SafeHttpClient(AllowList.parse("127.0.0.1"))
    status = client.post(
        f"http://2130706433:{recorder.port}/hook",
        b'{"a":1}',
        headers={"content-type": "application/json"},
        pointer="/webhook",
    )
    assert status == 200
    assert recorder.seen == [("POST", f"127.0.0.1:{recorder.port}", b'{"a":1}')]


# ---- webhook URLs through the live server ------------------------------------------------------------------
# The test server allow-lists 127.0.0.1 only: 10.0.0.1 and 127.0.0.2 in any spelling must be refused.
REFUSED_WEBHOOKS = [
    "http://167772161/hook",
    "http://0x0a000001/hook",
    "http://0xa.0.0.1/hook",
    "http://012.0.0.1/hook",
    "http://00000012.0.0.1/hook",
    "http://10.1/hook",
    "http://10.0.0.1./hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[::ffff:a00:1]/hook",
    "http://[::a00:1]/hook",
    "http://[64:ff9b::a00:1]/hook",
    "http://[2002:a00:1::]/hook",
    "https://2130706434/hook",
    "http://0x7f000002/hook",
    "http://127.2/hook",
    "http://0/hook",
    "http://[::1]/hook",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://2852039166/latest/meta-data/",  # 169.254.169.254
    "http://localhost./hook",
    "http://1.2.3.4.5/hook",
]


@pytest.mark.parametrize("url", REFUSED_WEBHOOKS)
def test_obfuscated_private_webhook_urls_are_refused_when_saved(http: httpx.Client, url: str) -> None:
    before = http.get("/ai/conversations/insight-groups", params={"page[size]": 250}).json()["meta"]
    error = assert_envelope(
        http.post("/ai/conversations/insight-groups", json={"name": "g", "webhook": url}), 422
    )
    assert error["code"] == "10004" and error["source"]["pointer"] == "/webhook"
    error = assert_envelope(
        http.post("/ai/conversations/insights", json={"name": "t", "instructions": "x", "webhook": url}), 422
    )
    assert error["source"]["pointer"] == "/webhook"
    after = http.get("/ai/conversations/insight-groups", params={"page[size]": 250}).json()["meta"]
    assert after["total_results"] == before["total_results"]


def test_updates_canonicalise_too_and_allow_listed_spellings_pass(http: httpx.Client) -> None:
    created = http.post(
        "/ai/conversations/insight-groups", json={"name": "canon", "webhook": "http://2130706433:9/h"}
    )
    assert created.status_code == 200, created.text  # 127.0.0.1 is allow-listed on the test server
    group_id = created.json()["data"]["id"]
    try:
        for url in ("http://167772161/h", "http://0x7f000002/h"):
            error = assert_envelope(
                http.put(f"/ai/conversations/insight-groups/{group_id}", json={"webhook": url}), 422
            )
            assert error["source"]["pointer"] == "/webhook"
        assert http.get(f"/ai/conversations/insight-groups/{group_id}").json()["data"]["webhook"] == (
            "http://2130706433:9/h"
        )
    finally:
        http.delete(f"/ai/conversations/insight-groups/{group_id}")


def test_delivery_resolves_once_and_connects_to_the_checked_address(
    server: LiveServer, recorder: _Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers 127.0.0.1 (allow-listed) once and fails after; delivery must not look
    it up again between the check and the connect."""
    name = "rebind.inferline.test"
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host != name:
            return real(host, *args, **kwargs)  # type: ignore[arg-type]
        lookups.append(name)
        if len(lookups) > 1:
            raise socket.gaierror(socket.EAI_NONAME, "rebound: a second lookup gets another answer")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", args[0] if args else 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    run_id = enqueue(server, f"http://{name}:{recorder.port}/hook", EVENT, max_attempts=1)
    delivery = wait_delivery(server, run_id, "delivered")
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    assert lookups == [name]
    ((method, host, body),) = recorder.seen
    assert (method, host) == ("POST", f"{name}:{recorder.port}")
    assert b"call.conversation_insights.generated" in body
