"""Chat streams for the translation tests of the Responses and Anthropic APIs: what chat emits for a model
with a native tool-call format (the test profile's SmolLM2 has none, so no live model streams these)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from inferline.areas.chat.generation import Telemetry
from inferline.areas.chat.protocol import ChatCompletionChunk, ChatCompletionRequest
from inferline.areas.chat.service import ChatStream
from inferline.errors import InferlineError

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def native_call_chunks() -> list[ChatCompletionChunk]:
    """What chat streams for a model with a native tool format: text, then each call as a first delta (id,
    name) and argument fragments, then the finish and usage chunks."""
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": "Let me check."},
        {
            "tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather"}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]},
        {
            "tool_calls": [
                {"index": 1, "id": "call_b", "function": {"name": "get_weather", "arguments": "{}"}}
            ]
        },
    ]
    chunks = [{"choices": [{"index": 0, "delta": d}]} for d in deltas]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}})
    return [ChatCompletionChunk.model_validate({"id": "c", "created": 0, "model": SMOL, **c}) for c in chunks]


class StreamingChat:
    """Chat as seen by the translation: `stream` hands back the given chunks, then raises `error` if given
    (a generation failing midway)."""

    def __init__(self, chunks: list[ChatCompletionChunk], error: InferlineError | None = None) -> None:
        self.chunks = chunks
        self.error = error

    async def stream(self, tenant_id: str, request: ChatCompletionRequest) -> ChatStream:
        async def bursts() -> AsyncIterator[list[dict[str, Any]]]:
            for chunk in self.chunks:
                yield [chunk.model_dump(exclude_unset=True)]
            if self.error is not None:
                raise self.error

        return ChatStream(bursts(), Telemetry(), lambda: None)
