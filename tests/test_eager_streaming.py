"""`web.streaming.EagerStreamingResponse` (the SSE and audio streams): the head and the first chunk leave
before the response starts listening for a disconnect; everything still streams, and a client that leaves
still stops the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from inferline.web.streaming import EagerStreamingResponse


def _scope(spec: str = "2.3") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": spec}, "method": "GET", "headers": []}


def _run(
    response: StreamingResponse, spec: str = "2.3", disconnect_after: int | None = None
) -> list[tuple[str, Any]]:
    """The events of serving `response`: ("receive", None) when it waits for the client, ("start", status) and
    ("body", (bytes, more_body)) as it sends. `disconnect_after`: the client leaves once that many body
    messages were sent (else it never does)."""
    events: list[tuple[str, Any]] = []

    async def serve() -> None:
        sent_bodies = asyncio.Event()

        async def receive() -> dict[str, Any]:
            events.append(("receive", None))
            if disconnect_after is None:
                await asyncio.Event().wait()  # never: the client stays
            await sent_bodies.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                events.append(("start", message["status"]))
            else:
                events.append(("body", (message["body"], message["more_body"])))
                bodies = sum(1 for kind, _ in events if kind == "body")
                if disconnect_after is not None and bodies >= disconnect_after:
                    sent_bodies.set()

        await asyncio.wait_for(response(_scope(spec), receive, send), 10)

    asyncio.run(serve())
    return events


async def _words(
    *words: str, closed: list[str] | None = None, hang_after: int | None = None
) -> AsyncIterator[str]:
    try:
        for i, word in enumerate(words):
            if hang_after is not None and i == hang_after:
                await asyncio.Event().wait()  # a generation that has not produced its next token yet
            yield word
    finally:
        if closed is not None:
            closed.append("closed")


def test_the_head_and_first_chunk_leave_before_it_waits_for_the_client() -> None:
    events = _run(EagerStreamingResponse(_words("data: 1\n\n", "data: 2\n\n")))
    assert events[:2] == [("start", 200), ("body", (b"data: 1\n\n", True))]
    assert events.index(("receive", None)) >= 2


def test_starlettes_own_response_waits_for_the_client_first() -> None:
    """What it improves on: the listener is started before the stream's task sends anything."""
    events = _run(StreamingResponse(_words("data: 1\n\n", "data: 2\n\n")))
    assert events[0] == ("receive", None)


def test_every_chunk_streams_after_one_head() -> None:
    events = _run(EagerStreamingResponse(_words("a", "b", "c")))
    sent = [e for e in events if e[0] != "receive"]
    assert sent == [
        ("start", 200),
        ("body", (b"a", True)),
        ("body", (b"b", True)),
        ("body", (b"c", True)),
        ("body", (b"", False)),
    ]


def test_bytes_and_an_empty_stream() -> None:
    async def raw() -> AsyncIterator[bytes]:
        yield b"\x00\x01"

    assert [e for e in _run(EagerStreamingResponse(raw())) if e[0] != "receive"] == [
        ("start", 200),
        ("body", (b"\x00\x01", True)),
        ("body", (b"", False)),
    ]
    assert [e for e in _run(EagerStreamingResponse(_words())) if e[0] != "receive"] == [
        ("start", 200),
        ("body", (b"", False)),
    ]


def test_a_client_that_leaves_after_the_first_chunk_stops_the_stream() -> None:
    closed: list[str] = []
    events = _run(EagerStreamingResponse(_words("a", "b", closed=closed, hang_after=1)), disconnect_after=1)
    assert [e for e in events if e[0] == "body"] == [("body", (b"a", True))]
    assert closed == ["closed"]  # the generator's `finally` ran: the chat route cancels its generation there


def test_servers_of_spec_2_4_stream_as_before() -> None:
    events = _run(EagerStreamingResponse(_words("a", "b")), spec="2.4")
    assert events == [("start", 200), ("body", (b"a", True)), ("body", (b"b", True)), ("body", (b"", False))]
