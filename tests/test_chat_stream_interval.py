"""Streamed tokens that come faster than `INFERLINE_CHAT_STREAM_INTERVAL_MS` reach the HTTP loop together
and are written in one piece; the first token and the end never wait (`areas.chat.service._Job`, the SSE
route)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx

from inferline.areas.chat.generation import Telemetry
from inferline.areas.chat.routes import _events
from inferline.areas.chat.service import ChatStream, _Job
from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _chunk(content: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": content}}]}


def _parked(job: _Job) -> bool:
    """Whether the consumer waits for a wake-up that nothing has sent."""
    waiter = job._waiter
    return waiter is not None and not waiter.done() and not job._wake_pending


def _bursts(interval: float) -> list[list[str]]:
    """What the loop receives from a generation that sends the role, a first token, then (once the loop has
    the first token) two tokens and its end, 0.1 s apart: the contents of each burst."""
    received: list[list[str]] = []
    first_taken = threading.Event()

    async def consume() -> None:
        job = _Job(asyncio.get_running_loop(), Telemetry(), interval)

        def generate() -> None:
            job.emit({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
            job.telemetry.token()
            job.emit(_chunk("one"))
            first_taken.wait(10)
            # and until the consumer waits for a wake-up again, none on its way: the first token's wake-up may
            # still be queued (the consumer can take that token without it), and a token sent before it ran
            # or before the consumer looked again would be taken with no wake-up of its own, as loaded
            # machines made this test see.
            deadline = time.monotonic() + 10
            while not _parked(job) and time.monotonic() < deadline:
                time.sleep(0.001)
            for word in ("two", "three"):
                job.telemetry.token()
                job.emit(_chunk(word))
                time.sleep(0.1)
            job.finish(None)

        threading.Thread(target=generate, daemon=True).start()
        async for burst in job.bursts():
            received.append([c["choices"][0]["delta"].get("content", "") for c in burst])
            if "one" in received[-1]:
                first_taken.set()

    asyncio.run(consume())
    return received


def test_tokens_within_the_interval_wait_for_the_next_wake_up_but_never_the_first() -> None:
    held = _bursts(interval=10.0)
    assert [c for burst in held for c in burst] == ["", "one", "two", "three"]
    assert held[-1] == ["two", "three"]  # held until the end woke the loop (the interval never passed)
    assert "one" not in held[-1]  # the first token came at once
    at_once = _bursts(interval=0.0)
    assert [c for burst in at_once for c in burst] == ["", "one", "two", "three"]
    assert at_once[-2:] == [["two"], ["three"]]


def test_the_sse_route_writes_a_burst_in_one_piece() -> None:
    async def bursts() -> Any:
        yield [_chunk("a"), _chunk("b")]
        yield [_chunk("c")]

    async def collect() -> list[str]:
        return [piece async for piece in _events(ChatStream(bursts(), Telemetry(), lambda: None))]

    pieces = asyncio.run(collect())
    assert len(pieces) == 3 and pieces[-1] == "data: [DONE]\n\n"
    assert pieces[0].count("data: ") == 2 and '"a"' in pieces[0] and '"b"' in pieces[0]


def test_a_fast_stream_reads_the_same_with_and_without_the_interval(server: LiveServer) -> None:
    chat = server.container.chat
    body = {
        "model": SMOL,
        "messages": [{"role": "user", "content": "Count from one to twenty."}],
        "max_tokens": 24,
        "temperature": 0,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {server.key_a}"}
    texts = []
    before = chat.stream_interval
    try:
        for interval in (0.0, 0.05):
            chat.stream_interval = interval
            with httpx.stream(
                "POST", server.v2 + "/ai/openai/chat/completions", json=body, headers=headers, timeout=120
            ) as response:
                lines = [line for line in response.iter_lines() if line.startswith("data: ")]
            assert lines[-1] == "data: [DONE]"
            texts.append(lines[:-1])
    finally:
        chat.stream_interval = before
    contents = [[json.loads(line[6:]) for line in text] for text in texts]
    deltas = [
        "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        for chunks in contents
    ]
    assert deltas[0] == deltas[1] and deltas[0]
    assert len(contents[0]) == len(contents[1])  # one event per token either way, only written together
