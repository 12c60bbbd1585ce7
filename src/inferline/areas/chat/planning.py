"""Turn a typed `ChatCompletionRequest` into a `Plan`: engine messages, sampling, constraint, tools, beam.

Each field's own range is checked by the wire model; what spans fields (or needs a parser: regexes, JSON
schemas) is checked here, a 400 or 422 naming the field. Every parameter is either honoured or refused;
nothing is silently dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inferline.areas.chat.protocol import MAX_N, ChatCompletionRequest, ChatMessage, ContentPart, ToolCall
from inferline.engines.chat import Constraint, EngineRequest
from inferline.errors import BadRequest, UnsupportedParameter, ValidationFailed

DEFAULT_TEMPERATURE = 0.1  # the spec's default
DEFAULT_BEAM_TOKENS = 64
DEFAULT_RETRIEVAL_RESULTS = 3
MAX_SCHEMA_DEPTH = 64  # JSON levels (objects and arrays) in a schema; deeper is a 400 naming the field
SAMPLING = ("max_tokens", "temperature", "top_p", "min_p", "seed", "stop")
SAMPLING += ("presence_penalty", "frequency_penalty", "logprobs", "top_logprobs")
SAMPLING += ("top_k", "repetition_penalty", "logit_bias")
REGEX_FLAGS = "isx"  # leading global flags llguidance honours as Python does (case, dot-all, verbose)


@dataclass(frozen=True)
class BeamSpec:
    """Beam search over the engine's next-token log probabilities."""

    width: int
    n: int
    max_tokens: int
    length_penalty: float
    early_stopping: bool


@dataclass(frozen=True)
class Retrieval:
    """The `retrieval` tool: search these buckets with the last user message."""

    bucket_ids: tuple[str, ...]
    max_num_results: int


@dataclass(frozen=True)
class Function:
    """A function tool offered to the model; its arguments are constrained by `parameters`."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class Plan:
    """How to serve one request."""

    model: str | None
    request: EngineRequest
    native_messages: list[dict[str, Any]] = field(default_factory=list)  # for `native_tools` engines
    tools: list[Function] = field(default_factory=list)
    tool_choice: str | None = None  # none | auto | required | <function name>
    parallel_tool_calls: bool = True
    beam: BeamSpec | None = None
    best_of: int | None = None  # sampling best_of: generate this many, keep the n most likely
    n: int = 1
    user_logprobs: bool = False
    retrieval: list[Retrieval] = field(default_factory=list)
    constraint_pointer: str | None = None  # the field the constraint came from, for engine refusals
    include_usage: bool = True  # a stream ends with the usage chunk
    user: str | None = None  # recorded with the usage, with `metadata`
    metadata: dict[str, str] | None = None

    @property
    def calls_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def buffered(self) -> bool:
        """Whether output must be complete before the first chunk leaves (post-processed); tools only on an
        engine without `native_tools` (constrained JSON turned into `tool_calls`)."""
        return self.calls_tools or self.beam is not None or self.best_of is not None

    def openai_tools(self) -> list[dict[str, Any]]:
        """The function tools offered, as OpenAI tools (a named `tool_choice` offers only its function)."""
        named = self.tool_choice not in (None, "none", "auto", "required")
        return [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in self.tools
            if not named or t.name == self.tool_choice
        ]


# ---- messages ----------------------------------------------------------------------------------------------
def text_of(content: str | Sequence[ContentPart] | None, pointer: str) -> str:
    """The text of a message content: a string, or text parts joined (images are refused)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        if part.type != "text":
            raise UnsupportedParameter(
                "Image content needs a vision model; no installed chat model accepts images.",
                pointer=f"{pointer}/{i}",
            )
        texts.append(part.text or "")
    return "".join(texts)


def engine_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as role + string content for any chat template.

    `developer` is `system`. A `name` prefixes the text (`name: content`). An assistant's tool calls follow
    its content as one JSON object per line, `{"id", "name", "arguments"}` (the reply format the tool grammar
    enforces, with the call's id). A tool message that gives `tool_call_id` or `name` becomes
    `{"tool_call_id", "name", "content"}`, tied to the earlier call with that id (a 400 when there is none).
    """
    calls: dict[str, str] = {}  # id -> function name of the tool calls made so far
    out = []
    for i, m in enumerate(messages):
        at = f"/messages/{i}"
        content = text_of(m.content, f"{at}/content")
        if m.tool_calls and m.role != "assistant":
            raise BadRequest("Only assistant messages carry tool_calls.", pointer=f"{at}/tool_calls")
        if m.tool_call_id is not None and m.role != "tool":
            raise BadRequest("Only tool messages carry tool_call_id.", pointer=f"{at}/tool_call_id")
        if m.role == "tool":
            content = _tool_result(m, content, calls, at)
        elif m.name is not None and content:
            content = f"{m.name}: {content}"
        for call in m.tool_calls or []:
            calls[call.id] = call.function.name
        if m.tool_calls:
            lines = [_call_text(call) for call in m.tool_calls]
            content = "\n".join([content, *lines] if content else lines)
        out.append({"role": "system" if m.role == "developer" else m.role, "content": content})
    return out


def native_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Messages for a model whose own chat template shows tool calls (`ChatEngine.native_tools`): as in
    `engine_messages`, except that an assistant's calls stay OpenAI `tool_calls` and a tool result stays a
    `tool` message with its `tool_call_id` and function `name`, for the template to render in the model's
    own format. Run `engine_messages` first: it checks the ties between calls and results."""
    calls: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        content = text_of(m.content, "")
        if m.role == "tool":
            name = m.name or calls.get(m.tool_call_id or "")
            result = {"role": "tool", "tool_call_id": m.tool_call_id, "name": name, "content": content}
            out.append({k: v for k, v in result.items() if v is not None})
            continue
        if m.name is not None and content:
            content = f"{m.name}: {content}"
        message: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": content}
        if m.tool_calls:
            message["content"] = content or None
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": c.function.model_dump()} for c in m.tool_calls
            ]
            calls.update((c.id, c.function.name) for c in m.tool_calls)
        out.append(message)
    return out


def _tool_result(message: ChatMessage, content: str, calls: dict[str, str], at: str) -> str:
    name = message.name
    if message.tool_call_id is not None:
        called = calls.get(message.tool_call_id)
        if called is None:
            raise BadRequest(
                f"tool_call_id {message.tool_call_id!r} names no tool call of an earlier assistant message.",
                pointer=f"{at}/tool_call_id",
            )
        if name is not None and name != called:
            raise BadRequest(
                f"name {name!r} is not the function of tool call {message.tool_call_id!r} ({called!r}).",
                pointer=f"{at}/name",
            )
        name = called
    if message.tool_call_id is None and name is None:
        return content
    result = {"tool_call_id": message.tool_call_id, "name": name, "content": content}
    return json.dumps({k: v for k, v in result.items() if v is not None}, ensure_ascii=False)


def _call_text(call: ToolCall) -> str:
    try:
        arguments: Any = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError:
        arguments = call.function.arguments
    return json.dumps({"id": call.id, "name": call.function.name, "arguments": arguments})


# ---- constraints -------------------------------------------------------------------------------------------
def check_regex(pattern: str, pointer: str) -> str:
    """`pattern` if the grammar engine can enforce it (no lookaround, backreference, \\b, scoped flags or
    leading flags other than `REGEX_FLAGS`)."""
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]

    refused = {c.ASSERT, c.ASSERT_NOT, c.GROUPREF, c.GROUPREF_EXISTS, c.ATOMIC_GROUP, c.POSSESSIVE_REPEAT}
    anchors = {c.AT_BEGINNING, c.AT_BEGINNING_STRING, c.AT_END, c.AT_END_STRING}

    def walk(items: Any) -> None:
        for op, arg in items:
            if op in refused or (op is c.AT and arg not in anchors):
                raise UnsupportedParameter(
                    f"The regex uses {str(op).lower()}, which constrained decoding cannot enforce "
                    "(lookarounds, backreferences, word boundaries and atomic groups are not supported).",
                    pointer=pointer,
                )
            if op is c.SUBPATTERN:
                if arg[1] or arg[2]:
                    raise UnsupportedParameter("Inline regex flags are not supported.", pointer=pointer)
                walk(arg[3])
            elif op is c.BRANCH:
                for branch in arg[1]:
                    walk(branch)
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
                walk(arg[2])

    leading = re.match(r"(?:\(\?[a-zA-Z]+\))+", pattern)
    flags = set(re.sub(r"[(?)]", "", leading.group(0))) if leading else set()
    if flags - set(REGEX_FLAGS):
        raise UnsupportedParameter(
            f"The regex flag {''.join(sorted(flags - set(REGEX_FLAGS)))!r} cannot be enforced; constrained "
            f"decoding honours (?i), (?s) and (?x), and \\d, \\w, \\s are always the ASCII classes.",
            pointer=pointer,
        )
    try:
        walk(_parser.parse(pattern))
    except re.error as exc:
        raise BadRequest(f"Not a valid regex: {exc}", pointer=pointer) from exc
    except RecursionError:
        raise BadRequest("The regex nests too deeply.", pointer=pointer) from None
    return pattern


# `\d`, `\w`, `\s` mean the ASCII classes (Python's re.ASCII, outlines, xgrammar, vLLM); llguidance reads them
# as Unicode classes (`\d` would admit U+1FBF8), so guided regexes are rewritten with explicit classes.
_ASCII_CLASSES = {"d": "0-9", "w": "A-Za-z0-9_", "s": r"\x09-\x0d\x20"}
_ASCII_COMPLEMENTS = {  # the same classes negated, as ranges that can sit inside a bracket class
    "d": r"\x00-\x2f\x3a-\U0010ffff",
    "w": r"\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\U0010ffff",
    "s": r"\x00-\x08\x0e-\x1f\x21-\U0010ffff",
}


def ascii_classes(pattern: str) -> str:
    r"""`pattern` with `\d \w \s \D \W \S` (outside and inside brackets) spelled as explicit ASCII classes.

    Other escapes (`\\d` included) are kept as written. `pattern` must already parse (`check_regex`), so a
    class escape is never a range endpoint.
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            escape = pattern[i + 1]
            name = escape.lower()
            if escape in "dwsDWS":
                if in_class:
                    out.append(_ASCII_COMPLEMENTS[name] if escape.isupper() else _ASCII_CLASSES[name])
                else:
                    out.append(f"[{'^' if escape.isupper() else ''}{_ASCII_CLASSES[name]}]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
        elif in_class:
            in_class = ch != "]"
            out.append(ch)
            i += 1
        elif ch == "[":
            head = 2 if pattern.startswith("[^", i) else 1
            if pattern.startswith("]", i + head):  # a `]` first in a class is a literal
                head += 1
            out.append(pattern[i : i + head])
            in_class = True
            i += head
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def json_depth(value: Any) -> int:
    """How many objects and arrays deep `value` nests (iteratively: any depth is safe to measure)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            pending.extend(
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def _schema_patterns(schema: Any, pointer: str) -> None:
    """Every `pattern` inside a JSON schema must be enforceable too."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                check_regex(value, f"{pointer}/pattern")
            else:
                _schema_patterns(value, f"{pointer}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            _schema_patterns(value, f"{pointer}/{i}")


def check_schema(schema: dict[str, Any], pointer: str) -> dict[str, Any]:
    """`schema` if it is a valid JSON schema, at most `MAX_SCHEMA_DEPTH` levels deep, with enforceable
    patterns; otherwise a 400 naming `pointer`."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    if json_depth(schema) > MAX_SCHEMA_DEPTH:
        raise BadRequest(f"The JSON schema nests more than {MAX_SCHEMA_DEPTH} levels deep.", pointer=pointer)
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise BadRequest(f"Invalid JSON schema: {exc.message}", pointer=pointer) from exc
    _schema_patterns(schema, pointer)
    return schema


def constraint_of(request: ChatCompletionRequest) -> tuple[str, Constraint] | None:
    """(source field, constraint) of the one output constraint asked for (guided_*, response_format)."""
    found: list[tuple[str, Constraint]] = []
    if request.guided_json is not None:
        schema = check_schema(request.guided_json, "/guided_json")
        found.append(("guided_json", Constraint("json_schema", schema)))
    if request.guided_regex is not None:
        pattern = ascii_classes(check_regex(request.guided_regex, "/guided_regex"))
        found.append(("guided_regex", Constraint("regex", pattern)))
    if request.guided_choice is not None:
        found.append(("guided_choice", Constraint("choice", list(request.guided_choice))))
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        schema = fmt.json_schema.schema_ if fmt.type == "json_schema" and fmt.json_schema else None
        if schema is None:
            found.append(("response_format", Constraint("json_object")))
        else:
            checked = check_schema(schema, "/response_format/json_schema/schema")
            found.append(("response_format", Constraint("json_schema", checked)))
    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise BadRequest(f"Only one output constraint may be given; got {names}.", pointer=f"/{found[1][0]}")
    return found[0] if found else None


# ---- tools -------------------------------------------------------------------------------------------------
def tools_of(request: ChatCompletionRequest) -> tuple[list[Function], list[Retrieval]]:
    """The function tools (schemas checked, names unique) and the retrieval tools."""
    functions, retrieval = [], []
    for i, tool in enumerate(request.tools or []):
        if tool.type == "function":
            fn = tool.function
            parameters = fn.parameters or {"type": "object", "properties": {}}
            check_schema(parameters, f"/tools/{i}/function/parameters")
            functions.append(Function(fn.name, fn.description or "", parameters))
        else:
            spec = tool.retrieval
            count = spec.max_num_results or DEFAULT_RETRIEVAL_RESULTS
            retrieval.append(Retrieval(tuple(spec.bucket_ids), count))
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        raise BadRequest("Function tool names must be unique.", pointer="/tools")
    return functions, retrieval


def tool_choice_of(request: ChatCompletionRequest, functions: Sequence[Function]) -> str | None:
    """`none`, `auto`, `required` or the one function's name; `auto` when functions are offered."""
    choice = request.tool_choice
    if choice is not None and not isinstance(choice, str):  # {"type": "function", "function": {"name"}}
        if choice.function.name not in {f.name for f in functions}:
            raise BadRequest("tool_choice names a function that is not in tools.", pointer="/tool_choice")
        return choice.function.name
    if choice in ("auto", "required") and not functions:
        raise BadRequest(f"tool_choice={choice!r} needs at least one function tool.", pointer="/tool_choice")
    if choice is None and functions:
        return "auto"
    return choice


def tool_constraint(tools: Sequence[Function], choice: str) -> Constraint:
    """JSON that is a call of one of `tools` ({"name", "arguments"}) or, with `auto`, a plain reply."""
    offered = [t for t in tools if choice in ("auto", "required") or t.name == choice]
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": t.parameters},
            "required": ["name", "arguments"],
        }
        for t in offered
    ]
    if choice == "auto":
        calls.append(
            {"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]}
        )
    return Constraint("json_schema", calls[0] if len(calls) == 1 else {"anyOf": calls})


def tool_prompt(tools: Sequence[Function], choice: str) -> str:
    """The system instruction that offers `tools` and states the reply format the grammar enforces."""
    described = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]
    text = "You can call these functions:\n" + json.dumps(described) + "\n"
    if choice == "auto":
        return text + (
            'To call a function reply with {"name": <function name>, "arguments": <arguments object>}; '
            'otherwise reply with {"content": <your answer>}.'
        )
    if choice == "required":
        return text + 'Reply with {"name": <function name>, "arguments": <arguments object>}.'
    return text + f'Call {choice}: reply with {{"name": "{choice}", "arguments": <arguments object>}}.'


def with_system(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """`messages` with `text` added to the system message (one is created first if there is none)."""
    if messages and messages[0]["role"] == "system":
        first = {**messages[0], "content": messages[0]["content"] + "\n\n" + text}
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def last_user_text(messages: list[dict[str, Any]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user" and m["content"]), "")


# ---- the plan ----------------------------------------------------------------------------------------------
def refuse_unsupported(request: ChatCompletionRequest) -> None:
    """Options this server cannot honour, and `mode`/`region` combinations it cannot serve."""
    if request.api_key_ref is not None:
        raise UnsupportedParameter(
            "api_key_ref selects an external provider's key; this server runs its own models.",
            pointer="/api_key_ref",
        )
    if request.reasoning_effort not in (None, "none"):
        raise UnsupportedParameter(
            "reasoning_effort: the installed chat models have no adjustable reasoning phase.",
            pointer="/reasoning_effort",
        )
    if request.service_tier not in (None, "default"):
        raise UnsupportedParameter("service_tier: only `default` is served here.", pointer="/service_tier")
    if request.mode is not None and request.region is None:
        raise ValidationFailed("mode: requires region", pointer="/mode")
    if request.mode == "strict":
        raise ValidationFailed(
            f"region {request.region!r} in strict mode: this server is not in a Telnyx region.",
            pointer="/region",
        )
    if request.top_logprobs is not None and not request.logprobs:
        raise BadRequest("top_logprobs needs logprobs=true.", pointer="/top_logprobs")
    if request.stream_options is not None and not request.stream:
        raise BadRequest("stream_options is only allowed with stream=true.", pointer="/stream_options")
    if None not in (request.max_tokens, request.max_completion_tokens) and (
        request.max_tokens != request.max_completion_tokens
    ):
        raise BadRequest(
            "max_completion_tokens differs from max_tokens (its older name); give one of them.",
            pointer="/max_completion_tokens",
        )
    if request.store:
        raise UnsupportedParameter(
            "store: this server does not store chat completions; send store=false or leave it out.",
            pointer="/store",
        )
    refused = {
        "functions": "functions is OpenAI's deprecated form of tools; use tools.",
        "function_call": "function_call is OpenAI's deprecated form of tool_choice; use tool_choice.",
        "audio": "chat completions answer in text; speech comes from /v2/ai/openai/audio/speech.",
        "prediction": "predicted outputs are not supported.",
        "web_search_options": "web search is not available on this server.",
    }
    for name, reason in refused.items():
        if getattr(request, name) is not None:
            raise UnsupportedParameter(reason, pointer=f"/{name}")
    if request.modalities is not None and request.modalities != ["text"]:
        raise UnsupportedParameter('modalities: only ["text"] is served here.', pointer="/modalities")
    if request.verbosity not in (None, "medium"):
        raise UnsupportedParameter(
            "verbosity: the installed chat models have no verbosity control; only `medium`.",
            pointer="/verbosity",
        )


def beam_of(request: ChatCompletionRequest, n: int) -> BeamSpec | None:
    """The beam search asked for (`use_beam_search`, width `best_of`), or None; beam-only options without it
    and sampling options with it are refused."""
    if not request.use_beam_search:
        for name in ("length_penalty", "early_stopping"):
            if getattr(request, name) is not None:
                raise BadRequest(f"{name} applies only with use_beam_search=true.", pointer=f"/{name}")
        return None
    width = request.best_of if request.best_of is not None else max(n, 2)
    if n > width:
        raise BadRequest("n must not exceed best_of with beam search.", pointer="/n")
    if request.temperature:
        raise BadRequest(
            "Beam search is deterministic; temperature must be 0 or omitted.", pointer="/temperature"
        )
    neutral_values = {"top_p": 1, "min_p": 0, "presence_penalty": 0, "frequency_penalty": 0}
    neutral_values |= {"top_k": 0, "repetition_penalty": 1}
    for name, neutral in neutral_values.items():
        if getattr(request, name) not in (None, neutral):
            raise UnsupportedParameter(f"{name} does not apply to beam search.", pointer=f"/{name}")
    for name in ("seed", "logprobs", "logit_bias"):
        if getattr(request, name):
            raise UnsupportedParameter(f"{name} is not supported with beam search.", pointer=f"/{name}")
    return BeamSpec(
        width=width,
        n=n,
        max_tokens=_max_tokens(request) or DEFAULT_BEAM_TOKENS,
        length_penalty=1.0 if request.length_penalty is None else request.length_penalty,
        early_stopping=bool(request.early_stopping),
    )


def _max_tokens(request: ChatCompletionRequest) -> int | None:
    return request.max_tokens if request.max_tokens is not None else request.max_completion_tokens


def plan(request: ChatCompletionRequest) -> Plan:
    """Check what spans fields in `request` and decide how to serve it."""
    refuse_unsupported(request)
    n = request.n or 1
    found = constraint_of(request)
    constraint = found[1] if found else None
    functions, retrieval = tools_of(request)
    tool_choice = tool_choice_of(request, functions)
    beam = beam_of(request, n)
    calls_tools = bool(functions) and tool_choice != "none"
    if request.parallel_tool_calls is not None and not functions:
        raise BadRequest(
            "parallel_tool_calls is only allowed with function tools.", pointer="/parallel_tool_calls"
        )
    if calls_tools and constraint is not None:
        raise BadRequest("Function tools cannot be combined with an output constraint.", pointer="/tools")
    if beam is not None and (constraint is not None or calls_tools):
        raise UnsupportedParameter(
            "Beam search cannot be combined with constraints or tools.", pointer="/use_beam_search"
        )
    best_of = request.best_of if beam is None else None
    if best_of is not None and best_of < n:
        raise ValidationFailed(f"best_of: must be between n and {MAX_N}", pointer="/best_of")
    sampling = {name: getattr(request, name) for name in SAMPLING if getattr(request, name) is not None}
    if (max_tokens := _max_tokens(request)) is not None:
        sampling["max_tokens"] = max_tokens
    sampling.setdefault("temperature", DEFAULT_TEMPERATURE)
    sampling["n"] = best_of or n
    if best_of is not None:
        sampling["logprobs"] = True
    engine_request = EngineRequest(
        messages=engine_messages(request.messages),
        params=sampling,
        constraint=constraint,
        enable_thinking=request.enable_thinking,
    )
    return Plan(
        model=request.model,
        request=engine_request,
        native_messages=native_messages(request.messages),
        tools=functions,
        tool_choice=tool_choice,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        beam=beam,
        best_of=best_of,
        n=n,
        user_logprobs=bool(request.logprobs),
        retrieval=retrieval,
        constraint_pointer=f"/{found[0]}" if found else None,
        include_usage=request.include_usage,
        user=request.user or request.safety_identifier,
        metadata=request.metadata,
    )
