"""Anthropic Messages on chat: translate, complete or stream, answer an Anthropic `message` or its events.

A stream is `message_start`, `ping`, per content block `content_block_start` / `content_block_delta`
(`text_delta`, or one `input_json_delta` with a tool call's whole input) / `content_block_stop`, then
`message_delta` (stop reason and usage, input tokens included) and `message_stop`. A failure midway is an
`error` event. `stop_reason` is `end_turn`, `max_tokens` or `tool_use`; the engines do not report which stop
sequence ended a text, so `stop_sequence` stays null (the text ends before the sequence).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from inferline.areas.anthropic.protocol import MessagesRequest
from inferline.areas.anthropic.translate import (
    STOP_REASONS,
    message_id,
    to_chat,
    to_message,
    tool_id,
    usage_of,
)
from inferline.areas.chat.generation import Telemetry
from inferline.areas.chat.service import ChatStream
from inferline.areas.chat.translation import ChatCompletions
from inferline.errors import InferlineError

ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


@dataclass
class MessageStream:
    """A started streamed message: SSE text, the chat telemetry (for headers), and `cancel`."""

    events: AsyncIterator[str]
    telemetry: Telemetry
    cancel: Callable[[], None]


class MessagesService:
    """Stateless over chat; cheap to build per request."""

    def __init__(self, chat: ChatCompletions) -> None:
        self.chat = chat

    async def create(
        self, tenant_id: str, body: MessagesRequest, disconnected: Callable[[], Awaitable[bool]] | None = None
    ) -> tuple[dict[str, Any], Telemetry]:
        request, pointers = to_chat(body)
        with pointers.translated():
            completion, telemetry = await self.chat.complete(tenant_id, request, disconnected)
        return to_message(completion), telemetry

    async def stream(self, tenant_id: str, body: MessagesRequest) -> MessageStream:
        """A started stream: errors before the first token raise here (an HTTP error, not an event)."""
        request, pointers = to_chat(body)
        with pointers.translated():
            started = await self.chat.stream(tenant_id, request)
        return MessageStream(_events(started, body.model), started.telemetry, started.cancel)


class _Blocks:
    """The content blocks of a streamed message, as events: a text block, or tool_use blocks whose input
    arrives as `input_json_delta` fragments (a whole call's input, or a streamed call's pieces)."""

    def __init__(self) -> None:
        self.index = -1
        self.open: str | None = None  # "text" or "tool_use"
        self.call_key: Any = None  # chat's `index` of the call being written

    def _start(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self.close()
        self.index, self.open = self.index + 1, kind
        return [*events, {"type": "content_block_start", "index": self.index, "content_block": block}]

    def close(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def text(self, text: str) -> list[dict[str, Any]]:
        events = self._start("text", {"type": "text", "text": ""}) if self.open != "text" else []
        return [*events, self._delta({"type": "text_delta", "text": text})]

    def call(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        function = call.get("function") or {}
        key = call.get("index", 0)
        events = []
        if self.open != "tool_use" or key != self.call_key:
            block = {
                "type": "tool_use",
                "id": call.get("id") or tool_id(),
                "name": function.get("name") or "",
            }
            events = self._start("tool_use", block | {"input": {}})
            self.call_key = key
        if function.get("arguments"):
            events.append(self._delta({"type": "input_json_delta", "partial_json": function["arguments"]}))
        return events

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}


async def _events(started: ChatStream, model: str) -> AsyncIterator[str]:
    blocks, opened = _Blocks(), False
    finish: str | None = None
    usage: dict[str, Any] | None = None

    def opening(model: str) -> list[str]:
        message = {"id": message_id(), "type": "message", "role": "assistant", "model": model, "content": []}
        message |= {"stop_reason": None, "stop_sequence": None}
        message["usage"] = {"input_tokens": 0, "output_tokens": 0}  # the counts come with message_delta
        return [sse({"type": "message_start", "message": message}), sse({"type": "ping"})]

    try:
        async for chunk in started.chunks:
            if not opened:
                opened = True
                for line in opening(chunk.model):
                    yield line
            for choice in chunk.choices:
                delta = choice.delta
                events = blocks.text(delta.content) if delta is not None and delta.content else []
                for call in (delta.tool_calls if delta is not None else None) or []:
                    events += blocks.call(call)
                for event in events:
                    yield sse(event)
                finish = choice.finish_reason or finish
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
        if not opened:
            for line in opening(model):
                yield line
        ending = blocks.text("") if blocks.index == -1 else []  # no content: one empty text block, as
        ending += blocks.close()  # the non-streamed message has
        stop = {"stop_reason": STOP_REASONS.get(finish or "stop", "end_turn"), "stop_sequence": None}
        ending += [
            {"type": "message_delta", "delta": stop, "usage": usage_of(usage)},
            {"type": "message_stop"},
        ]
        for event in ending:
            yield sse(event)
    except InferlineError as exc:
        kind = ERROR_TYPES.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
        yield sse({"type": "error", "error": {"type": kind, "message": exc.detail}})
    finally:
        started.cancel()
