"""Wire models of chat completions.

The request is the spec's `ChatCompletionRequest` plus what the OpenAI SDK sends: `name`, `tool_calls` and
`tool_call_id` on messages, `strict` on function tools and `response_format.json_schema`, `stream_options`,
`max_completion_tokens`, object `tool_choice`. Each field's range is checked here (a 422 naming it);
checks that span fields live in `planning`. The response (free-form in the spec) is an OpenAI
`chat.completion`, or `chat.completion.chunk`s when streamed; those models allow extra keys, so what an
engine adds (e.g. a remote server's `stop_reason`) is passed on, as before.

OpenAI options that have no separate effect here:
- `strict` on a function tool or a `json_schema` response format, true or false: the output (the call's
  `arguments`) is always constrained by the schema while decoding, and checked after decoding for remote
  models; that is what `strict: true` asks for and is within what `strict: false` allows.
- `prompt_cache_key`: llama.cpp reuses the cached prefix of a slot's previous prompt whatever the key.

Every other documented OpenAI field is typed here, so none is a 422 "extra inputs"; those this server
cannot honour are a 400 naming them (`planning.refuse_unsupported`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_N = 8  # choices (`n`) and candidates (`best_of`, beam width) per request
MAX_STOP = 4
MAX_METADATA = 16  # OpenAI's limits on `metadata`: pairs, key and value lengths
MAX_METADATA_KEY, MAX_METADATA_VALUE = 64, 512


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---- request -----------------------------------------------------------------------------------------------
class ContentPart(_Strict):
    """A `text` part carries `text`, an `image_url` part `image_url`; never both."""

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: str | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_payload(self) -> ContentPart:
        if self.type == "text" and (self.text is None or self.image_url is not None):
            raise ValueError("a text part carries `text` and no `image_url`")
        if self.type == "image_url" and (self.image_url is None or self.text is not None):
            raise ValueError("an image_url part carries `image_url` and no `text`")
        return self


class ToolCallFunction(_Strict):
    name: str
    arguments: str = "{}"


class ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(_Strict):
    """One message. `name` tells participants of one role apart (the prompt shows `name: content`); on a
    tool message it is the function's name. `tool_call_id` ties a tool message to an earlier tool call."""

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = Field(default=None, pattern=r"^[^\s<|\\/>]{1,64}$")
    tool_call_id: str | None = Field(default=None, min_length=1)
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
    strict: bool | None = None  # the arguments always follow `parameters` (see the module docstring)


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
    strict: bool | None = None  # the output always follows `schema` (see the module docstring)


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("json_schema is required when type is json_schema")
        if self.type != "json_schema" and self.json_schema is not None:
            raise ValueError("json_schema applies only when type is json_schema")
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
    n: int | None = Field(default=None, ge=1, le=MAX_N)  # a number in the spec; whole numbers only
    top_p: float | None = Field(default=None, gt=0, le=1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)  # llama.cpp takes a 64-bit seed
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
    top_k: int | None = Field(default=None, ge=-1)  # as in vLLM: 0 or -1 keep every token
    repetition_penalty: float | None = Field(default=None, gt=0)  # 1 is neutral
    logit_bias: dict[str, float] | None = None  # token id -> bias (-100 to 100)
    parallel_tool_calls: bool | None = None
    user: str | None = None  # an end-user id, recorded with the usage (the `inferline.chat` log)
    safety_identifier: str | None = None  # OpenAI's newer name for `user`; recorded the same way
    metadata: dict[str, str] | None = None  # recorded with the usage
    store: bool | None = None
    prompt_cache_key: str | None = None
    # Documented OpenAI fields this server refuses (400 naming them) unless neutral:
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    enable_thinking: bool | None = None
    api_key_ref: str | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    region: Literal["USA", "EU", "AUS", "UAE"] | None = None
    mode: Literal["preferred", "strict"] | None = None
    service_tier: str | None = None

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} sequences")
        return stop

    @field_validator("logit_bias")
    @classmethod
    def _token_biases(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        for token, value in (bias or {}).items():
            if not re.fullmatch(r"[0-9]{1,9}", token):
                raise ValueError(f"keys are token ids (whole numbers); got {token!r}")
            if not -100 <= value <= 100:
                raise ValueError(f"biases are between -100 and 100; token {token} has {value}")
        return bias

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, metadata: dict[str, str] | None) -> dict[str, str] | None:
        if metadata is not None:
            if len(metadata) > MAX_METADATA:
                raise ValueError(f"at most {MAX_METADATA} pairs")
            for key, value in metadata.items():
                if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
                    raise ValueError(
                        f"keys have at most {MAX_METADATA_KEY} characters, values {MAX_METADATA_VALUE}"
                    )
        return metadata

    @field_validator("guided_choice")
    @classmethod
    def _choices(cls, choices: list[str] | None) -> list[str] | None:
        if choices is not None and (not choices or not all(choices)):
            raise ValueError("must be a non-empty list of non-empty strings")
        return choices

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with the usage chunk (`stream_options.include_usage`, default true)."""
        return self.stream_options is None or self.stream_options.include_usage is not False


# ---- response ----------------------------------------------------------------------------------------------
class _Open(BaseModel):
    """A response part: the keys we know are typed, any others an engine sent are kept."""

    model_config = ConfigDict(extra="allow")


class Usage(_Open):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class FunctionCall(_Open):
    name: str
    arguments: str


class AssistantToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(_Open):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[AssistantToolCall] | None = None


class ChoiceLogprobs(_Open):
    content: list[dict[str, Any]] | None = None  # OpenAI token entries: token, logprob, bytes, top_logprobs


class Choice(_Open):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str


class ChatCompletion(_Open):
    """A `chat.completion`. Dump it with `exclude_unset=True`: keys that were never set are not sent."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[Choice]
    usage: Usage


class Delta(_Open):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # whole calls with their `index`


class ChunkChoice(_Open):
    index: int = 0
    delta: Delta | None = Field(default_factory=Delta)
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    """A `chat.completion.chunk`; the usage-only last one has no choices (and carries `telemetry`)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
