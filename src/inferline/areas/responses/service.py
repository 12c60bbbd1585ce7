"""The Responses API on chat: translate the request, complete or stream it, build the response object.

With `conversation` (a Telnyx conversation id of the caller's tenant; another tenant's is a 404), the
conversation's messages come first, and once the response is complete the turn is appended to it: the input
messages and function outputs, then the assistant's reply (its text, function calls, and reasoning in the
message metadata). The request's `instructions` are stored in the metadata of the turn's first message
(`metadata.instructions`) and apply to later turns that send none. A failed or abandoned response appends
nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from inferline.areas.chat.generation import Telemetry
from inferline.areas.chat.protocol import ChatCompletionChunk
from inferline.areas.chat.translation import ChatCompletions
from inferline.areas.responses.events import ResponseBuilder, call_id, sse
from inferline.areas.responses.protocol import ResponseCreateRequest
from inferline.areas.responses.translate import Translated, echo, to_chat
from inferline.errors import InferlineError, NotFound

HISTORY_PAGE = 500


class ConversationStore(Protocol):
    """What responses need from the conversations area (`container.conversations`)."""

    def add_message(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        role: str,
        content: str,
        name: str | None = None,
        sent_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
    ) -> None: ...

    def list_messages(
        self, tenant_id: str, conversation_id: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]: ...


@dataclass
class ResponseStream:
    """A started streamed response: SSE text, the chat telemetry (for headers), and `cancel`."""

    events: AsyncIterator[str]
    telemetry: Telemetry
    cancel: Callable[[], None]


class ResponsesService:
    """Stateless over chat and the conversation store; cheap to build per request."""

    def __init__(self, chat: ChatCompletions, conversations: ConversationStore) -> None:
        self.chat = chat
        self.conversations = conversations

    async def create(
        self,
        tenant_id: str,
        body: ResponseCreateRequest,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> tuple[dict[str, Any], Telemetry]:
        translated = to_chat(body, await self._history(tenant_id, body))
        with translated.pointers.translated():
            completion, telemetry = await self.chat.complete(tenant_id, translated.request, disconnected)
        builder = ResponseBuilder(completion.model, echo(body))
        builder.start()
        choice = completion.choices[0]
        message = choice.message
        if message.reasoning_content:
            builder.reasoning(message.reasoning_content)
        if message.content:
            builder.text(message.content)
        for call in message.tool_calls or []:
            builder.tool_call(call.id, call.function.name, call.function.arguments)
        builder.finish(choice.finish_reason, completion.usage.model_dump())
        await self._append(tenant_id, body, translated, builder)
        return builder.response(), telemetry

    async def stream(self, tenant_id: str, body: ResponseCreateRequest) -> ResponseStream:
        """A started stream: errors before the first token raise here (an HTTP error, not an event)."""
        translated = to_chat(body, await self._history(tenant_id, body))
        with translated.pointers.translated():
            started = await self.chat.stream(tenant_id, translated.request)

        async def events() -> AsyncIterator[str]:
            builder = ResponseBuilder(body.model, echo(body))
            finish: str | None = None
            usage: dict[str, Any] | None = None
            try:
                async for chunk in started.chunks:
                    if builder.sequence == 0:
                        builder.model = chunk.model
                        for event in builder.start():
                            yield sse(event)
                    for event in _chunk_events(builder, chunk):
                        yield sse(event)
                    for choice in chunk.choices:
                        finish = choice.finish_reason or finish
                    if chunk.usage is not None:
                        usage = chunk.usage.model_dump()
                opening = builder.start() if builder.sequence == 0 else []
                closing = opening + builder.finish(finish, usage)
                await self._append(tenant_id, body, translated, builder)
                for event in closing:
                    yield sse(event)
            except InferlineError as exc:
                if builder.sequence == 0:
                    builder.start()
                for event in builder.fail(exc.code, exc.detail):
                    yield sse(event)
            finally:
                started.cancel()

        return ResponseStream(events(), started.telemetry, started.cancel)

    # ---- the conversation ---------------------------------------------------------------------------------
    async def _history(self, tenant_id: str, body: ResponseCreateRequest) -> list[dict[str, Any]]:
        """The conversation's messages, oldest first (none without a conversation)."""
        conversation_id = body.conversation_id
        if conversation_id is None:
            return []

        def read() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            while True:
                page, total = self.conversations.list_messages(
                    tenant_id, conversation_id, len(rows), HISTORY_PAGE
                )
                rows += page
                if not page or len(rows) >= total:
                    return rows

        try:
            return await asyncio.to_thread(read)
        except NotFound as exc:
            raise NotFound(exc.detail, pointer="/conversation") from exc

    async def _append(
        self, tenant_id: str, body: ResponseCreateRequest, translated: Translated, builder: ResponseBuilder
    ) -> None:
        """Append the turn (input, then the reply) to the conversation, if there is one."""
        conversation_id = body.conversation_id
        if conversation_id is None:
            return
        records = [*translated.appended, _reply(builder.output)]

        def write() -> None:
            for record in records:
                self.conversations.add_message(tenant_id, conversation_id, **record)

        await asyncio.to_thread(write)


def _chunk_events(builder: ResponseBuilder, chunk: ChatCompletionChunk) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for choice in chunk.choices:
        delta = choice.delta
        if delta is None:
            continue
        if delta.reasoning_content:
            events += builder.reasoning(delta.reasoning_content)
        if delta.content:
            events += builder.text(delta.content)
        for call in (
            delta.tool_calls or []
        ):  # a whole call, or a streamed one's first delta and then fragments
            function = call.get("function") or {}
            key = call.get("index", 0)
            if "call" not in builder.open_items or key != builder.call_key:
                events += builder.call_start(call.get("id") or call_id(), function.get("name") or "", key)
            if function.get("arguments"):
                events += builder.call_arguments(function["arguments"])
    return events


def _reply(output: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The response's output as one assistant message of the conversation."""
    text = "".join(p["text"] for item in output if item["type"] == "message" for p in item["content"])
    reasoning = "".join(p["text"] for item in output if item["type"] == "reasoning" for p in item["content"])
    calls = [
        {"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
        for i in output
        if i["type"] == "function_call"
    ]
    reply: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        reply["tool_calls"] = calls
    if reasoning:
        reply["metadata"] = {"reasoning": reasoning}
    return reply
