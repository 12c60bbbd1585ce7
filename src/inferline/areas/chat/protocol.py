"""Wire models of the chat completion request (`ChatCompletionRequest` of the spec, plus what the OpenAI
SDK sends: `tool_calls`/`tool_call_id` on messages, `stream_options`, `max_completion_tokens`, object
`tool_choice`). The response is an OpenAI `chat.completion` (free-form in the spec), built by the service.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferline.areas.chat.planning import MAX_N


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ContentPart(_Strict):
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: str | dict[str, Any] | None = None


class ToolCallFunction(_Strict):
    name: str
    arguments: str = "{}"


class ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None

    @model_validator(mode="after")
    def _has_content(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("content is required (except on an assistant message with tool_calls)")
        return self


class FunctionDefinition(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class BucketIds(_Strict):
    bucket_ids: list[str] = Field(min_length=1)
    max_num_results: int | None = Field(default=None, ge=1, le=20)


class RetrievalTool(_Strict):
    type: Literal["retrieval"]
    retrieval: BucketIds


Tool = Annotated[FunctionTool | RetrievalTool, Field(discriminator="type")]


class JsonSchemaFormat(_Strict):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("json_schema is required when type is json_schema")
        return self


class StreamOptions(_Strict):
    include_usage: bool | None = None


class ToolChoiceFunction(_Strict):
    name: str


class ToolChoiceObject(_Strict):
    type: Literal["function"]
    function: ToolChoiceFunction


class ChatCompletionRequest(_Strict):
    """Numbers are range-checked here (422 naming the field); NaN and infinities are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: float | None = Field(default=None, ge=1, le=MAX_N)
    top_p: float | None = Field(default=None, gt=0, le=1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    use_beam_search: bool | None = None
    best_of: int | None = Field(default=None, ge=1, le=MAX_N)
    length_penalty: float | None = None
    early_stopping: bool | None = None
    guided_json: dict[str, Any] | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceObject | None = None
    enable_thinking: bool | None = None
    api_key_ref: str | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    region: Literal["USA", "EU", "AUS", "UAE"] | None = None
    mode: Literal["preferred", "strict"] | None = None
    service_tier: str | None = None
