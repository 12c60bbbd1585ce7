"""Turn a chat completion request into a `Plan`: validated params, messages, constraint, tools, beam.

Every parameter is either honoured or refused with a 400 naming it; nothing is silently dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from inferline.engines.chat import Constraint, EngineRequest
from inferline.errors import BadRequest, UnsupportedParameter, ValidationFailed

DEFAULT_TEMPERATURE = 0.1  # the spec's default
MAX_N = 8
MAX_BEAM = 8
DEFAULT_RETRIEVAL_RESULTS = 3
SAMPLING = ("max_tokens", "temperature", "top_p", "min_p", "seed", "stop")
SAMPLING += ("presence_penalty", "frequency_penalty", "logprobs", "top_logprobs")


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


@dataclass
class Plan:
    """How to serve one request."""

    model: str | None
    request: EngineRequest
    stream: bool = False
    tools: list[dict[str, Any]] = field(default_factory=list)  # function definitions offered to the model
    tool_choice: str | None = None  # none | auto | required | <function name>
    beam: BeamSpec | None = None
    best_of: int | None = None  # sampling best_of: generate this many, keep the n most likely
    n: int = 1
    user_logprobs: bool = False
    retrieval: list[Retrieval] = field(default_factory=list)
    constraint_pointer: str | None = None  # the field the constraint came from, for engine refusals

    @property
    def calls_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def buffered(self) -> bool:
        """Whether output must be complete before the first chunk leaves (post-processed)."""
        return self.calls_tools or self.beam is not None or self.best_of is not None


def _int(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if float(value) != int(value):
        raise ValidationFailed(f"{name}: must be a whole number", pointer=f"/{name}")
    return int(value)


def text_of(content: Any, pointer: str) -> str:
    """The text of a message content: a string, or text parts joined (images are refused)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        if part.get("type") != "text":
            raise UnsupportedParameter(
                "Image content needs a vision model; no installed chat model accepts images.",
                pointer=f"{pointer}/{i}",
            )
        texts.append(part.get("text") or "")
    return "".join(texts)


def engine_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as role + string content; assistant tool calls become their JSON, as the model wrote them."""
    out = []
    for i, m in enumerate(messages):
        role = "system" if m["role"] == "developer" else m["role"]
        content = text_of(m.get("content"), f"/messages/{i}/content")
        calls = m.get("tool_calls") or []
        if role == "assistant" and calls:
            content = "\n".join(
                json.dumps({"name": c["function"]["name"], "arguments": _arguments(c["function"])})
                for c in calls
            )
        out.append({"role": role, "content": content})
    return out


def _arguments(function: dict[str, Any]) -> Any:
    raw = function.get("arguments") or "{}"
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return raw


def check_regex(pattern: str, pointer: str) -> str:
    """`pattern` if the grammar engine can enforce it (no lookaround, backreference, \\b or flags)."""
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]

    try:
        tree = _parser.parse(pattern)
    except re.error as exc:
        raise BadRequest(f"Not a valid regex: {exc}", pointer=pointer) from exc
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

    walk(tree)
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


def _check_schema(schema: Any, pointer: str) -> dict[str, Any]:
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict):
        raise ValidationFailed("The JSON schema must be an object.", pointer=pointer)
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise BadRequest(f"Invalid JSON schema: {exc.message}", pointer=pointer) from exc
    _schema_patterns(schema, pointer)
    return schema


def constraint_of(params: dict[str, Any]) -> tuple[str, Constraint] | None:
    """(source field, constraint) of the one output constraint asked for (guided_*, response_format)."""
    found: list[tuple[str, Constraint]] = []
    if params.get("guided_json") is not None:
        found.append(
            ("guided_json", Constraint("json_schema", _check_schema(params["guided_json"], "/guided_json")))
        )
    if params.get("guided_regex") is not None:
        pattern = ascii_classes(check_regex(params["guided_regex"], "/guided_regex"))
        found.append(("guided_regex", Constraint("regex", pattern)))
    if params.get("guided_choice") is not None:
        choices = params["guided_choice"]
        if not choices or not all(isinstance(c, str) and c for c in choices):
            raise ValidationFailed(
                "guided_choice: must be a non-empty list of strings", pointer="/guided_choice"
            )
        found.append(("guided_choice", Constraint("choice", list(choices))))
    fmt = params.get("response_format")
    if fmt is not None and fmt.get("type") != "text":
        if fmt["type"] == "json_object":
            found.append(("response_format", Constraint("json_object")))
        else:
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema")
            if schema is None:
                found.append(("response_format", Constraint("json_object")))
            else:
                pointer = "/response_format/json_schema/schema"
                found.append(("response_format", Constraint("json_schema", _check_schema(schema, pointer))))
    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise BadRequest(f"Only one output constraint may be given; got {names}.", pointer=f"/{found[1][0]}")
    return found[0] if found else None


def _tools(params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Retrieval]]:
    functions, retrieval = [], []
    for i, tool in enumerate(params.get("tools") or []):
        if tool["type"] == "function":
            fn = tool.get("function") or {}
            params_schema = fn.get("parameters") or {"type": "object", "properties": {}}
            _check_schema(params_schema, f"/tools/{i}/function/parameters")
            functions.append({**fn, "parameters": params_schema})
        else:
            spec = tool.get("retrieval") or {}
            buckets = tuple(spec.get("bucket_ids") or ())
            if not buckets:
                raise ValidationFailed(
                    "bucket_ids: must name at least one bucket", pointer=f"/tools/{i}/retrieval"
                )
            retrieval.append(
                Retrieval(buckets, int(spec.get("max_num_results") or DEFAULT_RETRIEVAL_RESULTS))
            )
    names = [f["name"] for f in functions]
    if len(set(names)) != len(names):
        raise BadRequest("Function tool names must be unique.", pointer="/tools")
    return functions, retrieval


def _tool_choice(params: dict[str, Any], functions: list[dict[str, Any]]) -> str | None:
    choice = params.get("tool_choice")
    if isinstance(choice, dict):  # OpenAI's {"type": "function", "function": {"name": ...}}
        choice = (choice.get("function") or {}).get("name")
        if choice not in {f["name"] for f in functions}:
            raise BadRequest("tool_choice names a function that is not in tools.", pointer="/tool_choice")
        return str(choice)
    if choice in ("auto", "required") and not functions:
        raise BadRequest(f"tool_choice={choice!r} needs at least one function tool.", pointer="/tool_choice")
    if choice is None and functions:
        return "auto"
    return choice


def _refuse_unsupported(params: dict[str, Any]) -> None:
    if params.get("api_key_ref") is not None:
        raise UnsupportedParameter(
            "api_key_ref selects an external provider's key; this server runs its own models.",
            pointer="/api_key_ref",
        )
    if params.get("reasoning_effort") not in (None, "none"):
        raise UnsupportedParameter(
            "reasoning_effort: the installed chat models have no adjustable reasoning phase.",
            pointer="/reasoning_effort",
        )
    if params.get("service_tier") not in (None, "default"):
        raise UnsupportedParameter("service_tier: only `default` is served here.", pointer="/service_tier")
    if params.get("mode") is not None and params.get("region") is None:
        raise ValidationFailed("mode: requires region", pointer="/mode")
    if params.get("mode") == "strict":
        raise ValidationFailed(
            f"region {params['region']!r} in strict mode: this server is not in a Telnyx region.",
            pointer="/region",
        )


def _validate_sampling(params: dict[str, Any]) -> None:
    """What the wire model cannot check alone (its per-field ranges are in `ChatCompletionRequest`)."""
    if params.get("top_logprobs") is not None and not params.get("logprobs"):
        raise BadRequest("top_logprobs needs logprobs=true.", pointer="/top_logprobs")
    stop = params.get("stop")
    if isinstance(stop, list) and len(stop) > 4:
        raise ValidationFailed("stop: at most 4 sequences", pointer="/stop")


def _beam(params: dict[str, Any], n: int) -> BeamSpec | None:
    if not params.get("use_beam_search"):
        for name in ("length_penalty", "early_stopping"):
            if params.get(name) is not None:
                raise BadRequest(f"{name} applies only with use_beam_search=true.", pointer=f"/{name}")
        return None
    width = _int(params, "best_of")
    if width is None:
        width = max(n, 2)
    if not 1 <= width <= MAX_BEAM:
        raise ValidationFailed(f"best_of: must be between 1 and {MAX_BEAM}", pointer="/best_of")
    if n > width:
        raise BadRequest("n must not exceed best_of with beam search.", pointer="/n")
    if params.get("temperature"):
        raise BadRequest(
            "Beam search is deterministic; temperature must be 0 or omitted.", pointer="/temperature"
        )
    for name, neutral in (("top_p", 1), ("min_p", 0), ("presence_penalty", 0), ("frequency_penalty", 0)):
        if params.get(name) not in (None, neutral):
            raise UnsupportedParameter(f"{name} does not apply to beam search.", pointer=f"/{name}")
    for name in ("seed", "logprobs"):
        if params.get(name):
            raise UnsupportedParameter(f"{name} is not supported with beam search.", pointer=f"/{name}")
    return BeamSpec(
        width=width,
        n=n,
        max_tokens=params.get("max_tokens") or 64,
        length_penalty=float(params.get("length_penalty", 1.0)),
        early_stopping=bool(params.get("early_stopping", False)),
    )


def plan(params: dict[str, Any]) -> Plan:
    """Validate `params` (a ChatCompletionRequest as a dict) and decide how to serve it."""
    _refuse_unsupported(params)
    _validate_sampling(params)
    if params.get("max_completion_tokens") is not None and params.get("max_tokens") is None:
        params = {**params, "max_tokens": params["max_completion_tokens"]}
    n = _int(params, "n")
    n = 1 if n is None else n
    if not 1 <= n <= MAX_N:
        raise ValidationFailed(f"n: must be between 1 and {MAX_N}", pointer="/n")
    found = constraint_of(params)
    constraint = found[1] if found else None
    functions, retrieval = _tools(params)
    tool_choice = _tool_choice(params, functions)
    beam = _beam(params, n)
    calls_tools = bool(functions) and tool_choice != "none"
    if calls_tools and constraint is not None:
        raise BadRequest("Function tools cannot be combined with an output constraint.", pointer="/tools")
    if beam is not None and (constraint is not None or calls_tools):
        raise UnsupportedParameter(
            "Beam search cannot be combined with constraints or tools.", pointer="/use_beam_search"
        )
    best_of = None
    if beam is None and params.get("best_of") is not None:
        best_of = _int(params, "best_of")
        if best_of is None or not n <= best_of <= MAX_N:
            raise ValidationFailed(f"best_of: must be between n and {MAX_N}", pointer="/best_of")
    sampling = {k: params[k] for k in SAMPLING if params.get(k) is not None}
    sampling.setdefault("temperature", DEFAULT_TEMPERATURE)
    sampling["n"] = best_of or n
    if best_of is not None:
        sampling["logprobs"] = True
    request = EngineRequest(
        messages=engine_messages(params["messages"]),
        params=sampling,
        constraint=constraint,
        enable_thinking=params.get("enable_thinking"),
    )
    return Plan(
        model=params.get("model"),
        request=request,
        stream=bool(params.get("stream")),
        tools=functions,
        tool_choice=tool_choice,
        beam=beam,
        best_of=best_of,
        n=n,
        user_logprobs=bool(params.get("logprobs")),
        retrieval=retrieval,
        constraint_pointer=f"/{found[0]}" if found else None,
    )


def tool_constraint(tools: list[dict[str, Any]], choice: str) -> Constraint:
    """JSON that is a call of one of `tools` ({"name", "arguments"}) or, with `auto`, a plain reply."""
    offered = [t for t in tools if choice in ("auto", "required") or t["name"] == choice]
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": t["name"]}, "arguments": t["parameters"]},
            "required": ["name", "arguments"],
        }
        for t in offered
    ]
    if choice == "auto":
        calls.append(
            {"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]}
        )
    return Constraint("json_schema", calls[0] if len(calls) == 1 else {"anyOf": calls})


def tool_prompt(tools: list[dict[str, Any]], choice: str) -> str:
    """The system instruction that offers `tools` and states the reply format the grammar enforces."""
    described = [
        {"name": t["name"], "description": t.get("description", ""), "parameters": t["parameters"]}
        for t in tools
    ]
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
