"""Wire models of `POST /ai/openai/responses` (OpenAI's Responses API, as the openai and telnyx SDKs send it).

The spec's request is open (`additionalProperties: true`); every OpenAI field is typed here with its range
(a 422 naming it), and any other key is kept in `model_extra` so the service refuses it with a 400 naming it.
Input items and content parts of kinds this server cannot serve (images, files, hosted tools' calls) are
typed loosely (`type` only) for the same reason: a 400 naming the item, not a 422 about a union.
`input` is a string, a list of items, or (as the telnyx SDK types it) one item.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

Status = Literal["in_progress", "completed", "incomplete"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Other(BaseModel):
    """An item, part or tool of a kind this server does not serve; refused by the service, naming it."""

    model_config = ConfigDict(extra="allow")

    type: str


# ---- content parts -----------------------------------------------------------------------------------------
class InputText(_Strict):
    type: Literal["input_text"]
    text: str


class OutputText(_Strict):
    """Text of an earlier assistant output, sent back as input."""

    type: Literal["output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class Refusal(_Strict):
    type: Literal["refusal"]
    refusal: str


def _tag(known: tuple[str, ...], default: str | None = None):  # type: ignore[no-untyped-def]
    """A discriminator: the value's `type` when known, `other` for another string, `default` without one."""

    def tag(value: Any) -> str | None:
        kind = value.get("type", default) if isinstance(value, dict) else getattr(value, "type", default)
        if kind is None and isinstance(value, dict) and "role" in value:
            kind = "message"
        if not isinstance(kind, str):
            return None
        return kind if kind in known else "other"

    return tag


ContentPart = Annotated[
    Annotated[InputText, Tag("input_text")]
    | Annotated[OutputText, Tag("output_text")]
    | Annotated[Refusal, Tag("refusal")]
    | Annotated[_Other, Tag("other")],
    Discriminator(_tag(("input_text", "output_text", "refusal"))),
]


# ---- input items -------------------------------------------------------------------------------------------
class MessageItem(_Strict):
    """A message: the easy form (`role`, `content` string) or an item (`type: message`, content parts)."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: Status | None = None
    phase: Literal["commentary", "final_answer"] | None = None


class FunctionCallItem(_Strict):
    """A function call of an earlier response, sent back so its output can follow."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None
    status: Status | None = None


class FunctionCallOutputItem(_Strict):
    """The result of a function call (`call_id` names it)."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[ContentPart]
    name: str | None = None
    id: str | None = None
    status: Status | None = None


class ReasoningItem(_Strict):
    """A reasoning item of an earlier response; like chat templates, earlier turns' reasoning is not
    shown to the model again."""

    type: Literal["reasoning"]
    id: str | None = None
    summary: list[Any] = Field(default_factory=list)
    content: list[Any] | None = None
    encrypted_content: str | None = None
    status: Status | None = None


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[_Other, Tag("other")],
    Discriminator(_tag(("message", "function_call", "function_call_output", "reasoning"))),
]


# ---- tools and output format -------------------------------------------------------------------------------
class FunctionTool(_Strict):
    type: Literal["function"]
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # the arguments always follow `parameters` (chat's grammar)


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[_Other, Tag("other")],
    Discriminator(_tag(("function",))),
]


class ToolChoiceFunction(_Strict):
    type: Literal["function"]
    name: str


class TextFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, min_length=1, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None  # the output always follows `schema` (chat's grammar)


class TextConfig(_Strict):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(_Strict):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class ConversationRef(_Strict):
    id: str = Field(min_length=1)


class StreamOptions(_Strict):
    include_obfuscation: bool | None = None


class ResponseCreateRequest(BaseModel):
    """`POST /ai/openai/responses`. Keys outside these fields land in `model_extra` (refused by name)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, populate_by_name=True)

    model: str | None = Field(default=None, min_length=1)
    input: str | list[InputItem] | InputItem | None = None
    instructions: str | None = None
    conversation: str | ConversationRef | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    reasoning: Reasoning | None = None
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(default=None, max_length=16)
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    region: Literal["USA", "EU", "AUS", "UAE"] | None = None
    mode: Literal["preferred", "strict"] | None = None
    service_tier: str | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    background: bool | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    @property
    def conversation_id(self) -> str | None:
        if isinstance(self.conversation, ConversationRef):
            return self.conversation.id
        return self.conversation

    @property
    def items(self) -> list[Any]:
        """`input` as a list of items (a string is one user message)."""
        if self.input is None:
            return []
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input) if isinstance(self.input, list) else [self.input]
