"""A Responses request → a typed `ChatCompletionRequest` (chat plans, constrains and generates it).

Messages, in order: the instructions (the request's, else the latest stored with the conversation), the
conversation's messages, then the input items. A function call item joins the assistant message before
it (or starts one); a function call output is a tool message tied to its call. Reasoning items of earlier
responses are not shown to the model again (as chat templates drop earlier turns' reasoning).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inferline.areas.chat.protocol import ChatCompletionRequest
from inferline.areas.chat.translation import Pointers, chat_option
from inferline.areas.responses.protocol import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    InputText,
    MessageItem,
    OutputText,
    ReasoningItem,
    Refusal,
    ResponseCreateRequest,
)
from inferline.errors import BadRequest, UnsupportedParameter

INSTRUCTIONS_KEY = "instructions"  # stored in the metadata of a turn's first conversation message

# chat's field pointers as the Responses request names them
FIELDS = (
    (r"^/max_(completion_)?tokens", "/max_output_tokens"),
    (r"^/tools/(\d+)/function/parameters", r"/tools/\1/parameters"),
    (r"^/tools/(\d+)/function", r"/tools/\1"),
    (r"^/response_format/json_schema/schema", "/text/format/schema"),
    (r"^/response_format(/json_schema)?", "/text/format"),
    (r"^/reasoning_effort", "/reasoning/effort"),
    (r"^/verbosity", "/text/verbosity"),
)


@dataclass
class Translated:
    """The chat request, the pointers back into the Responses request, and the input as conversation
    messages (the keyword arguments of `ConversationService.add_message`)."""

    request: ChatCompletionRequest
    pointers: Pointers
    appended: list[dict[str, Any]] = field(default_factory=list)


def refuse_unsupported(body: ResponseCreateRequest) -> None:
    """Options this server cannot honour: a 400 naming each."""
    if body.model_extra:
        name = next(iter(body.model_extra))
        raise UnsupportedParameter(
            f"{name}: not supported by this server's Responses API.", pointer=f"/{name}"
        )
    if body.store:
        raise UnsupportedParameter(
            "store: responses are not stored here; pass a Telnyx `conversation` to keep a thread.",
            pointer="/store",
        )
    if body.previous_response_id is not None:
        raise UnsupportedParameter(
            "previous_response_id: responses are not stored here; pass a Telnyx `conversation` instead.",
            pointer="/previous_response_id",
        )
    if body.background:
        raise UnsupportedParameter("background: responses run in the request here.", pointer="/background")
    if body.truncation == "auto":
        raise UnsupportedParameter(
            "truncation: `auto` is not supported; the input must fit the model's context.",
            pointer="/truncation",
        )
    if body.include:
        raise UnsupportedParameter(f"include: {body.include[0]!r} is not available.", pointer="/include/0")
    if body.top_logprobs is not None:
        raise UnsupportedParameter(
            "top_logprobs: log probabilities are not returned here.", pointer="/top_logprobs"
        )
    if body.stream_options is not None and body.stream_options.include_obfuscation:
        raise UnsupportedParameter(
            "stream_options.include_obfuscation: stream events are not obfuscated here.",
            pointer="/stream_options/include_obfuscation",
        )
    if body.reasoning is not None:
        for name in ("summary", "generate_summary"):
            if getattr(body.reasoning, name) is not None:
                raise UnsupportedParameter(
                    f"reasoning.{name}: reasoning summaries are not generated.", pointer=f"/reasoning/{name}"
                )
    for i, tool in enumerate(body.tools or []):
        if not isinstance(tool, FunctionTool):
            raise UnsupportedParameter(
                f"Tools of type {tool.type!r} are not supported; function tools are.",
                pointer=f"/tools/{i}/type",
            )


def _text(content: str | Sequence[Any], pointer: str) -> str:
    """The text of a message content or function output (text parts joined; other parts refused)."""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if isinstance(part, InputText | OutputText):
            texts.append(part.text)
        elif isinstance(part, Refusal):
            texts.append(part.refusal)
        else:
            raise UnsupportedParameter(
                f"Content of type {part.type!r} is not supported; the installed chat models read text.",
                pointer=f"{pointer}/{j}/type",
            )
    return "".join(texts)


def _history(stored: Sequence[dict[str, Any]], pointers: Pointers) -> tuple[list[dict[str, Any]], str | None]:
    """The conversation's messages as chat messages, and the latest instructions stored with them."""
    messages, instructions = [], None
    for row in stored:
        instructions = (row.get("metadata") or {}).get(INSTRUCTIONS_KEY) or instructions
        message: dict[str, Any] = {"role": row["role"], "content": row.get("text") or ""}
        if row.get("tool_calls"):
            message["tool_calls"] = row["tool_calls"]
            message["content"] = message["content"] or None
        if row.get("tool_call_id"):
            message["tool_call_id"] = row["tool_call_id"]
        messages.append(message)
        pointers.add("/conversation")
    return messages, instructions if isinstance(instructions, str) else None


def to_chat(body: ResponseCreateRequest, stored: Sequence[dict[str, Any]] | None = None) -> Translated:
    """The chat request for `body`, after `stored` (the conversation's messages, oldest first)."""
    refuse_unsupported(body)
    pointers = Pointers(FIELDS)
    history, stored_instructions = _history(stored or [], pointers)
    messages: list[dict[str, Any]] = []
    instructions = body.instructions if body.instructions is not None else stored_instructions
    if instructions:
        messages.append({"role": "system", "content": instructions})
        pointers.origins.insert(0, "/instructions" if body.instructions is not None else "/conversation")
    messages += history
    calls = {c["id"] for m in history for c in m.get("tool_calls") or []}
    appended: list[dict[str, Any]] = []
    single = body.input is not None and not isinstance(body.input, str | list)
    for i, item in enumerate(body.items):
        at = "/input" if single else f"/input/{i}"
        if isinstance(item, ReasoningItem):
            continue
        if isinstance(item, MessageItem):
            text = _text(item.content, f"{at}/content")
            if item.role in ("system", "developer") and body.conversation_id is not None:
                raise BadRequest(
                    "With a conversation, give system instructions in `instructions` (stored with it).",
                    pointer=f"{at}/role",
                )
            messages.append({"role": item.role, "content": text})
            pointers.add(at)
            appended.append({"role": item.role, "content": text})
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            calls.add(item.call_id)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and pointers.origins[-1].startswith("/input"):
                last.setdefault("tool_calls", []).append(call)
                appended[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
                pointers.add(at)
                appended.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutputItem):
            if item.call_id not in calls:
                raise BadRequest(
                    f"call_id {item.call_id!r} names no function call of the input or the conversation.",
                    pointer=f"{at}/call_id",
                )
            text = _text(item.output, f"{at}/output")
            message = {"role": "tool", "tool_call_id": item.call_id, "content": text}
            if item.name is not None:
                message["name"] = item.name
            messages.append(message)
            pointers.add(f"{at}/call_id")
            appended.append({"role": "tool", "content": text, "tool_call_id": item.call_id})
        else:
            raise UnsupportedParameter(
                f"Input items of type {item.type!r} are not supported here.", pointer=f"{at}/type"
            )
    if not any(m["role"] != "system" for m in messages):
        raise BadRequest(
            "input: give at least one message (or a conversation that has some).", pointer="/input"
        )
    if body.instructions and appended:
        appended[0]["metadata"] = {INSTRUCTIONS_KEY: body.instructions}
    fields = _options(body)
    fields["messages"] = messages
    return Translated(pointers.chat_request(fields), pointers, appended)


def _options(body: ResponseCreateRequest) -> dict[str, Any]:
    """Every other field as the chat request's."""
    fields: dict[str, Any] = {
        "model": body.model,
        "stream": body.stream,
        "max_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "region": body.region,
        "mode": body.mode,
        "service_tier": body.service_tier,
        "reasoning_effort": body.reasoning.effort if body.reasoning else None,
    }
    if body.tools:
        fields["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in body.tools
            if isinstance(t, FunctionTool)
        ]
    choice = body.tool_choice
    fields["tool_choice"] = (
        choice
        if isinstance(choice, str | None)
        else {
            "type": "function",
            "function": {"name": choice.name},
        }
    )
    fmt = body.text.format if body.text else None
    if fmt is not None and fmt.type == "json_schema":
        if fmt.schema_ is None or fmt.name is None:
            raise BadRequest("text.format: json_schema needs `name` and `schema`.", pointer="/text/format")
        schema = {
            "name": fmt.name,
            "description": fmt.description,
            "schema": fmt.schema_,
            "strict": fmt.strict,
        }
        fields["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif fmt is not None and fmt.type == "json_object":
        fields["response_format"] = {"type": "json_object"}
    for name in ("user", "safety_identifier", "prompt_cache_key", "metadata"):
        fields |= chat_option(name, getattr(body, name), f"/{name}")
    fields |= chat_option("verbosity", body.text.verbosity if body.text else None, "/text/verbosity")
    if fields.get("tools") and "parallel_tool_calls" in ChatCompletionRequest.model_fields:
        # without tools (or before chat took the option: one call at most) there is nothing to parallelise
        fields |= chat_option("parallel_tool_calls", body.parallel_tool_calls, "/parallel_tool_calls")
    return {k: v for k, v in fields.items() if v is not None}


def echo(body: ResponseCreateRequest) -> dict[str, Any]:
    """The request's settings as the response object repeats them."""
    fmt = body.text.format if body.text and body.text.format else None
    text_format: dict[str, Any] = {"type": "text"}
    if fmt is not None:
        text_format = {"type": fmt.type}
        if fmt.type == "json_schema":
            text_format |= {"name": fmt.name, "schema": fmt.schema_, "strict": True}
            if fmt.description is not None:
                text_format["description"] = fmt.description
    choice = body.tool_choice
    tools = [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters or {"type": "object", "properties": {}},
            "strict": True,
        }
        for t in body.tools or []
        if isinstance(t, FunctionTool)
    ]
    effort = body.reasoning.effort if body.reasoning else None
    return {
        "instructions": body.instructions,
        "metadata": dict(body.metadata or {}),
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_output_tokens": body.max_output_tokens,
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "tool_choice": choice.model_dump()
        if choice is not None and not isinstance(choice, str)
        else choice or "auto",
        "tools": tools,
        "text": {
            "format": text_format,
            "verbosity": (body.text.verbosity if body.text else None) or "medium",
        },
        "reasoning": {"effort": effort, "summary": None},
        "conversation": {"id": body.conversation_id} if body.conversation_id else None,
        "previous_response_id": None,
        "truncation": "disabled",
        "background": False,
        "service_tier": "default",
        "store": False,
        "user": body.user,
        "safety_identifier": body.safety_identifier,
        "prompt_cache_key": body.prompt_cache_key,
    }
