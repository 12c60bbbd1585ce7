"""The chat engine Protocol: OpenAI-shaped chat requests in, OpenAI `chat.completion.chunk` dicts out.

An engine only streams; the service assembles non-streamed completions from the chunks, so every request
can be cancelled between tokens and timed to its first token. Output constraints travel engine-neutral
(`Constraint`) and each engine translates them into what it can enforce. An engine with `native_tools`
takes OpenAI `tools` as they are: the model's own chat template offers them and the engine parses the
model's tool-call format into OpenAI `tool_calls` deltas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ConstraintKind = Literal["json_schema", "json_object", "regex", "choice"]

# Called once per chunk; returning True stops (cancels) the generation.
OnChunk = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Constraint:
    """The output must be JSON matching schema `value`, any JSON, a full regex match, or one of choices."""

    kind: ConstraintKind
    value: Any = None


@dataclass
class EngineRequest:
    """One chat generation: messages (role + string content; with `tools`, OpenAI's structured assistant
    `tool_calls` and `tool` messages), OpenAI sampling params and a constraint.

    `tools` (OpenAI function tools) only goes to an engine with `native_tools`; `tool_choice` is then `auto`
    (a reply or calls) or `required` (the reply is calls), and `parallel_tool_calls` false allows one call.
    """

    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    constraint: Constraint | None = None
    enable_thinking: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["auto", "required"] = "auto"
    parallel_tool_calls: bool = True


class ChatEngineError(Exception):
    """The engine refused or failed a request; `status` < 500 means the request was at fault."""

    def __init__(self, status: int, message: str, pointer: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.pointer = pointer  # the request field at fault, when the engine knows it


class ChatEngine(Protocol):
    """A loaded (or lazily loading) chat model."""

    name: str
    # True when constraints are enforced while decoding (grammar); False when they are only requested.
    enforces_constraints: bool

    @property
    def native_tools(self) -> bool:
        """Whether `EngineRequest.tools` is served with the model's own tool-call format (see above)."""
        ...

    def stream(self, request: EngineRequest, on_chunk: OnChunk) -> None:
        """Generate, calling `on_chunk` per OpenAI chunk (the last one carries `usage`). Blocks until done."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...
