"""Pure ASGI middleware: request ids, `Expect: 100-continue` answered early, the request-body size limit."""

from __future__ import annotations

import json
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inferline.errors import PayloadTooLarge
from inferline.logs import REQUEST_ID
from inferline.web.dialects import with_dialect

# The S3 endpoint (`/s3`) has its own body limit (`s3_max_bytes`), not `max_request_bytes`: S3 clients send
# multipart parts of 5 MiB and more, and large single puts. Over it, S3's own `EntityTooLarge` XML error.
S3_PREFIX = "/s3"


class RequestIdMiddleware:
    """Gives every request an `x-request-id` (the caller's, or a new one) and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode() or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        REQUEST_ID.set(request_id)  # for the access line (logs.RequestIdFilter); each request is its own task

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


class ExpectContinueMiddleware:
    """Closes the connection after a response given before the app read a body the client holds back.

    A client that sends `Expect: 100-continue` with a body waits for uvicorn's `100 Continue` (sent when the
    app first reads the body) before sending it. Answered before that (a body over the limit by its header,
    an unknown path: anything refused before a route reads the body; FastAPI's routes read it before they
    check the key), it may never send the body (botocore does not) and reuses the connection, where the
    server would read its next request as the old body: that call stalled until the client's read timeout
    (60 s). Such a response says `Connection: close` (as Go's server does), so uvicorn closes the connection
    after it and the client opens a new one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _holds_back_a_body(scope):
            await self.app(scope, receive, send)
            return
        asked = False  # whether the app has read the body (uvicorn then sent `100 Continue`)

        async def receive_noted() -> Message:
            nonlocal asked
            asked = True
            return await receive()

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not asked:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive_noted, send_closing)


def _holds_back_a_body(scope: Scope) -> bool:
    """Whether the request expects `100 Continue` before a body (a content length above 0, or chunks)."""
    headers = scope.get("headers") or ()
    expect = b""
    for name, value in headers:  # most requests have no `expect`: one comparison per header
        if name == b"expect":
            expect = value
            break
    if expect.lower() != b"100-continue":
        return False
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


class BodyLimitMiddleware:
    """Refuses request bodies over `max_bytes` (`s3_max_bytes` under `/s3`), by header or by counting."""

    def __init__(self, app: ASGIApp, max_bytes: int, s3_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.s3_max_bytes = s3_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        s3 = path == S3_PREFIX or path.startswith(S3_PREFIX + "/")
        max_bytes = self.s3_max_bytes if s3 else self.max_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._reject(send, max_bytes, s3=s3, path=path)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise PayloadTooLarge(f"The request body exceeds {max_bytes} bytes.")
            return message

        await self.app(scope, counting_receive, send)

    async def _reject(self, send: Send, max_bytes: int, *, s3: bool, path: str) -> None:
        err = PayloadTooLarge(f"The request body exceeds {max_bytes} bytes.")
        if s3:  # S3 clients read S3's XML error (EntityTooLarge is a 400 there)
            status, media = 400, b"application/xml"
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>EntityTooLarge</Code>'
                f"<Message>{err}</Message></Error>"
            ).encode()
        else:
            envelope = with_dialect(path, err.envelope(), err.status)
            status, media, body = err.status, b"application/json", json.dumps(envelope).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
