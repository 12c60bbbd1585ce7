"""Wire models of `POST /ai/anthropic/v1/messages` (Anthropic's Messages API with the Telnyx extensions).

The spec's request (`AnthropicMessageRequest`) is open; every field is typed here with its range (a 422
naming it), and other keys are kept in `model_extra` so the service refuses them with a 400 naming them.
Content blocks and tools of kinds this server cannot serve (images, documents, server tools) are typed
loosely (`type` only), for a 400 naming the block rather than a 422 about a union.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from inferline.areas.chat.protocol import MAX_STOP


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Other(BaseModel):
    """A block or tool of a kind this server does not serve; refused by the service, naming it."""

    model_config = ConfigDict(extra="allow")

    type: str


def _tag(known: tuple[str, ...], default: str | None = None):  # type: ignore[no-untyped-def]
    """A discriminator: the value's `type` when known, `other` for another string, `default` without one."""

    def tag(value: Any) -> str | None:
        kind = value.get("type", default) if isinstance(value, dict) else getattr(value, "type", default)
        if not isinstance(kind, str):
            return None
        return kind if kind in known else "other"

    return tag


class TextBlock(_Strict):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None  # prompt caching is automatic (llama.cpp's prefix cache)
    citations: list[Any] | None = None


TextOnly = Annotated[
    Annotated[TextBlock, Tag("text")] | Annotated[_Other, Tag("other")], Discriminator(_tag(("text",)))
]


class ToolUseBlock(_Strict):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class ToolResultBlock(_Strict):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[TextOnly] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingBlock(_Strict):
    """Thinking of an earlier assistant turn; like chat templates, it is not shown to the model again."""

    type: Literal["thinking", "redacted_thinking"]
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


Block = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[_Other, Tag("other")],
    Discriminator(_tag(("text", "tool_use", "tool_result", "thinking", "redacted_thinking"))),
]


class Message(_Strict):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class CustomTool(_Strict):
    type: Literal["custom"] = "custom"
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: dict[str, Any] | None = None


def _tool_tag(value: Any) -> str | None:
    kind = value.get("type", "custom") if isinstance(value, dict) else getattr(value, "type", "custom")
    if kind is None:
        kind = "custom"
    return ("custom" if kind == "custom" else "other") if isinstance(kind, str) else None


Tool = Annotated[
    Annotated[CustomTool, Tag("custom")] | Annotated[_Other, Tag("other")], Discriminator(_tool_tag)
]


class ToolChoice(_Strict):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolChoice:
        if (self.type == "tool") != (self.name is not None):
            raise ValueError("name is required with type `tool`, and only with it")
        return self


class Thinking(_Strict):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(default=None, ge=1)


class Metadata(_Strict):
    user_id: str | None = Field(default=None, max_length=256)


class OutputFormat(_Strict):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Strict):
    """Structured output (`format`, enforced by chat's grammar) and the effort level (as chat's)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: OutputFormat | None = None


class MessagesRequest(BaseModel):
    """`POST /ai/anthropic/v1/messages`. Keys outside these fields land in `model_extra` (refused by name)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, populate_by_name=True)

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    system: str | list[TextOnly] | None = None
    stop_sequences: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, max_length=MAX_STOP
    )
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    metadata: Metadata | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    cache_control: dict[str, Any] | None = None  # prompt caching is automatic (llama.cpp's prefix cache)
    service_tier: str | None = None
    speed: Literal["standard", "fast"] | None = None
    # Telnyx extensions
    region: Literal["USA", "EU", "AUS", "UAE"] | None = None
    mode: Literal["preferred", "strict"] | None = None
    api_key_ref: str | None = None
    billing_group_id: str | None = None
    fallback_config: dict[str, Any] | None = None
    max_retries: int | None = None
    mcp_servers: list[dict[str, Any]] | None = None
    timeout: float | None = None
