"""Hostile HTTP input answers a 4xx in the Telnyx envelope, never a 5xx: unreadable bodies (too deep, not
UTF-8, oversized while chunked), out-of-range paging, and filters or schemas nested past the server's bounds.
Raw httpx against the live server (the test server's body limit is 2 MiB)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer
from tests.test_foundation import assert_envelope

JSON = {"content-type": "application/json"}
CHAT = (
    b'"model":"HuggingFaceTB/SmolLM2-135M-Instruct","max_tokens":2,'
    b'"messages":[{"role":"user","content":"hi"}]'
)


def malformed(response: httpx.Response, *, says: str) -> None:
    error = assert_envelope(response, 400)
    assert (error["code"], error["title"]) == ("10015", "Malformed request"), error
    assert error["source"] == {"pointer": "/"} and says in error["detail"], error


def nested_schema(depth: int) -> bytes:
    """A JSON schema `depth` objects deep (twice as many JSON levels)."""
    return b'{"type":"object","properties":{"a":' * depth + b'{"type":"string"}' + b"}}" * depth


@pytest.fixture(scope="module")
def conversation_id(http: httpx.Client) -> str:
    response = http.post("/ai/conversations", json={"name": "hardening"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


# ---- request bodies -------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/ai/conversations", "/ai/chat/completions", "/ai/conversations/insights"])
def test_json_nested_100000_deep_is_malformed(http: httpx.Client, path: str) -> None:
    malformed(http.post(path, content=b"[" * 100_000 + b"]" * 100_000, headers=JSON), says="nests too deeply")


def test_body_that_is_not_utf8_is_malformed(http: httpx.Client) -> None:
    malformed(http.post("/ai/conversations", content=b'{"name":"\xff\xfe"}', headers=JSON), says="UTF-8")


def test_integer_past_the_conversion_limit_is_malformed(http: httpx.Client) -> None:
    body = b'{"name":"x","metadata":{"a":' + b"9" * 5000 + b"}}"
    malformed(http.post("/ai/conversations", content=body, headers=JSON), says="digits")


def test_invalid_json_names_the_position(http: httpx.Client) -> None:
    malformed(http.post("/ai/conversations", content=b'{"name": "x"', headers=JSON), says="position 12")


def test_chunked_body_over_the_limit_is_413(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # a generator: sent chunked, with no Content-Length
        yield b'{"name":"'
        for _ in range(30):
            yield b"x" * 100_000

    request = http.build_request("POST", "/ai/conversations", content=chunks(), headers=JSON)
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    error = assert_envelope(http.send(request), 413)
    assert error["title"] == "Payload too large" and "2097152" in error["detail"]


def _exchange(sock: socket.socket, request: bytes) -> tuple[bytes, bytes]:
    """Send `request` on `sock`; (the reply's head, its body), read by its content length."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a reply: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next((v for k, v in _headers(head) if k == b"content-length"), b"-1"))
    assert length >= 0, head
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def _headers(head: bytes) -> list[tuple[bytes, bytes]]:
    lines = head.split(b"\r\n")[1:]
    return [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(b":") for line in lines)]


def test_expect_continue_refused_before_its_body_closes_the_connection(server: LiveServer) -> None:
    """A client that sends `Expect: 100-continue` holds its body back until `100 Continue`; refused before
    that, it may never send it. The server closes that connection after the refusal, instead of reading the
    client's next request on it as the old body (the next call stalled until the client's read timeout)."""
    host, port = server.url.removeprefix("http://").split(":")
    auth = f"Authorization: Bearer {server.key_a}\r\nHost: {host}\r\n".encode()
    too_big = 3 * 1024 * 1024  # the test server's limit is 2 MiB
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        head, body = _exchange(
            sock,
            b"POST /v2/ai/conversations HTTP/1.1\r\n" + auth
            + f"Content-Type: application/json\r\nContent-Length: {too_big}\r\n".encode()
            + b"Expect: 100-continue\r\n\r\n",
        )  # fmt: skip
        assert head.startswith(b"HTTP/1.1 413") and b"Payload too large" in body
        assert (b"connection", b"close") in _headers(head)
        assert sock.recv(65536) == b""  # closed: no request after this one is read as its body
    # Any other answer given before the body is read (an unknown path): closed too. A body the app reads:
    # the connection stays open.
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        head, _ = _exchange(
            sock,
            b"POST /v2/ai/no-such-thing HTTP/1.1\r\n" + auth
            + b"Content-Type: application/json\r\nContent-Length: 13\r\nExpect: 100-continue\r\n\r\n",
        )  # fmt: skip
        assert head.startswith(b"HTTP/1.1 404") and (b"connection", b"close") in _headers(head)
        assert sock.recv(65536) == b""
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        body = b'{"name":"ok"}'
        request = (
            b"POST /v2/ai/conversations HTTP/1.1\r\n" + auth
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Expect: 100-continue\r\n\r\n"
        )  # fmt: skip
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 100")
        head, reply = _exchange(sock, body)
        assert head.startswith(b"HTTP/1.1 200") and (b"connection", b"close") not in _headers(head), reply
        head, _ = _exchange(sock, f"GET /v2/ai/conversations HTTP/1.1\r\n{auth.decode()}\r\n".encode())
        assert head.startswith(b"HTTP/1.1 200")  # the same connection serves the next request


@pytest.mark.parametrize(
    "body",
    [
        b'{"name":"x","metadata":{"a":NaN}}',
        b'{"name":"x","metadata":{"a":Infinity}}',
        b'{"name":"x","metadata":{"a":1e400}}',
        b'{"name":"x","metadata":{"a":100000000000000000000000000000}}',
        b'{"name":"x","name":"y"}',
        b"{" + CHAT + b',"seed":100000000000000000000000000000}',
        b"{" + CHAT + b',"temperature":NaN}',
        b"{" + CHAT + b',"top_p":-Infinity}',
    ],
)
def test_odd_json_numbers_and_duplicate_keys_are_not_5xx(http: httpx.Client, body: bytes) -> None:
    path = "/ai/chat/completions" if b'"messages"' in body else "/ai/conversations"
    response = http.post(path, content=body, headers=JSON)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_envelope(response, response.status_code)


def test_json_schema_nested_too_deep_for_the_validator_is_400(http: httpx.Client) -> None:
    """Parseable JSON, but a schema too deep to check recursively: was a 500 (RecursionError)."""
    schema = nested_schema(200)
    body = b"{" + CHAT + b',"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":'
    response = http.post("/ai/chat/completions", content=body + schema + b"}}}", headers=JSON)
    assert assert_envelope(response, 400)["code"] == "10015"
    insight = b'{"name":"deep","instructions":"x","json_schema":' + schema + b"}"
    response = http.post("/ai/conversations/insights", content=insight, headers=JSON)
    assert assert_envelope(response, 400)["code"] == "10015"


# ---- paging -----------------------------------------------------------------------------------------------
PAGED = [
    "/ai/conversations/insights",
    "/ai/conversations/insight-groups",
    "/ai/conversations/{id}/messages",
    "/ai/conversations/{id}/conversations-insights",
]


@pytest.mark.parametrize("path", PAGED)
@pytest.mark.parametrize(
    ("name", "value"),
    [("page[number]", str(10**18)), ("page[number]", "1000001"), ("page[size]", "-1"), ("page[size]", "251")],
)
def test_page_out_of_range_is_422_naming_it(
    http: httpx.Client, conversation_id: str, path: str, name: str, value: str
) -> None:
    response = http.get(path.format(id=conversation_id), params={name: value})
    error = assert_envelope(response, 422)  # page[number]=10**18 was a 500: too large for SQLite
    assert error["code"] == "10004" and error["source"] == {"parameter": name}, error


@pytest.mark.parametrize("path", PAGED)
def test_last_allowed_page_is_empty_not_an_error(http: httpx.Client, conversation_id: str, path: str) -> None:
    response = http.get(
        path.format(id=conversation_id), params={"page[number]": "1000000", "page[size]": "250"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [] and response.json()["meta"]["page_number"] == 1_000_000


def test_fine_tuning_events_cursor_out_of_range_is_422(http: httpx.Client) -> None:
    response = http.get("/ai/fine_tuning/jobs/no-such-job/events", params={"after": str(10**20)})
    error = assert_envelope(response, 422)
    assert error["source"] == {"parameter": "after"}


def test_aggregates_with_too_many_filters_is_400(http: httpx.Client) -> None:
    params = [("metadata.channel", "neq.x")] * 1500  # was a 500: SQLite's expression tree depth
    response = http.get("/ai/conversations/conversation-insights/aggregates", params=params)
    error = assert_envelope(response, 400)
    assert error["source"] == {"parameter": "metadata.channel"}
