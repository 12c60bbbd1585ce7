"""Anthropic Messages ↔ chat: a `MessagesRequest` → a typed `ChatCompletionRequest`, and chat's output →
an Anthropic `message` (or its stream events).

Messages: `system` (a string or text blocks) is the system message. A user message's `tool_result` blocks
become tool messages tied to their `tool_use_id` (then its text, if any, a user message); an assistant
message's `tool_use` blocks become its tool calls beside its text. Thinking blocks of earlier turns are not
shown to the model again (as chat templates drop earlier reasoning). A final assistant message (a prefill to
continue) is refused: the chat engines start a new turn.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from inferline.areas.anthropic.protocol import (
    CustomTool,
    MessagesRequest,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from inferline.areas.chat.protocol import ChatCompletion, ChatCompletionRequest
from inferline.areas.chat.translation import Pointers, chat_option
from inferline.errors import UnsupportedParameter

FIELDS = (
    (r"^/max_(completion_)?tokens", "/max_tokens"),
    (r"^/stop", "/stop_sequences"),
    (r"^/tools/(\d+)/function/parameters", r"/tools/\1/input_schema"),
    (r"^/tools/(\d+)/function", r"/tools/\1"),
    (r"^/response_format/json_schema/schema", "/output_config/format/schema"),
    (r"^/response_format", "/output_config/format"),
    (r"^/reasoning_effort", "/output_config/effort"),
    (r"^/enable_thinking", "/thinking"),
    (r"^/user", "/metadata/user_id"),
)
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
TELNYX_UNSUPPORTED = {
    "billing_group_id": "billing groups apply to Telnyx's hosted inference",
    "fallback_config": "there is no fallback model here",
    "max_retries": "requests are not retried here",
    "timeout": "the request runs until it completes or the client disconnects",
}


def message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def tool_id() -> str:
    return "toolu_" + secrets.token_hex(12)


def refuse_unsupported(body: MessagesRequest) -> None:
    """Options this server cannot honour: a 400 naming each."""
    if body.model_extra:
        name = next(iter(body.model_extra))
        raise UnsupportedParameter(
            f"{name}: not supported by this server's Messages API.", pointer=f"/{name}"
        )
    for name, why in TELNYX_UNSUPPORTED.items():
        if getattr(body, name) is not None:
            raise UnsupportedParameter(f"{name}: {why}.", pointer=f"/{name}")
    if body.speed == "fast":
        raise UnsupportedParameter("speed: only `standard` is served.", pointer="/speed")
    if body.mcp_servers:
        raise UnsupportedParameter("mcp_servers: MCP servers are not connected here.", pointer="/mcp_servers")
    if body.thinking is not None and body.thinking.type != "disabled":
        raise UnsupportedParameter(
            "thinking: extended thinking with a token budget is not supported here.", pointer="/thinking/type"
        )
    for i, tool in enumerate(body.tools or []):
        if not isinstance(tool, CustomTool):
            raise UnsupportedParameter(
                f"Tools of type {tool.type!r} are not supported; custom tools (input_schema) are.",
                pointer=f"/tools/{i}/type",
            )


def _texts(blocks: str | list[Any] | None, pointer: str) -> str:
    """The text of a string or of text blocks (joined by blank lines); other blocks refused."""
    if blocks is None or isinstance(blocks, str):
        return blocks or ""
    texts = []
    for j, block in enumerate(blocks):
        if not isinstance(block, TextBlock):
            raise UnsupportedParameter(
                f"Content blocks of type {block.type!r} are not supported here; text is.",
                pointer=f"{pointer}/{j}/type",
            )
        texts.append(block.text)
    return "\n\n".join(texts)


def to_chat(body: MessagesRequest) -> tuple[ChatCompletionRequest, Pointers]:
    """The chat request for `body`, and the pointers back into it."""
    refuse_unsupported(body)
    pointers = Pointers(FIELDS)
    messages: list[dict[str, Any]] = []
    system = _texts(body.system, "/system")
    if system:
        messages.append({"role": "system", "content": system})
        pointers.add("/system")
    if body.messages[-1].role == "assistant":
        raise UnsupportedParameter(
            "A final assistant message (a prefill to continue) is not supported; end with a user message.",
            pointer=f"/messages/{len(body.messages) - 1}",
        )
    for i, message in enumerate(body.messages):
        at = f"/messages/{i}"
        if isinstance(message.content, str):
            messages.append({"role": message.role, "content": message.content})
            pointers.add(at)
            continue
        texts, calls = [], []
        for j, block in enumerate(message.content):
            where = f"{at}/content/{j}"
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ThinkingBlock) and message.role == "assistant":
                continue
            elif isinstance(block, ToolUseBlock) and message.role == "assistant":
                arguments = json.dumps(block.input, ensure_ascii=False)
                calls.append(
                    {
                        "id": block.id,
                        "type": "function",
                        "function": {"name": block.name, "arguments": arguments},
                    }
                )
            elif isinstance(block, ToolResultBlock) and message.role == "user":
                result = _texts(block.content, f"{where}/content")
                if block.is_error:
                    result = f"Error: {result}"
                messages.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": result})
                pointers.add(f"{where}/tool_use_id")
            else:
                raise UnsupportedParameter(
                    f"{block.type} blocks are not supported in {message.role} messages here.",
                    pointer=f"{where}/type",
                )
        if message.role == "assistant":
            assistant: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) or None}
            if calls:
                assistant["tool_calls"] = calls
            elif assistant["content"] is None:
                assistant["content"] = ""
            messages.append(assistant)
            pointers.add(at)
        elif texts or not any(isinstance(b, ToolResultBlock) for b in message.content):
            messages.append({"role": "user", "content": "\n\n".join(texts)})
            pointers.add(at)
    return pointers.chat_request(_options(body) | {"messages": messages}), pointers


def _options(body: MessagesRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "model": body.model,
        "stream": body.stream,
        "max_tokens": body.max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": body.stop_sequences,
        "region": body.region,
        "mode": body.mode,
        "api_key_ref": body.api_key_ref,
        # Anthropic's tiers (`auto`, `standard_only`) both mean the one standard tier served here
        "service_tier": None if body.service_tier in ("auto", "standard_only") else body.service_tier,
    }
    if body.thinking is not None:  # `disabled` (anything else is refused above)
        fields["enable_thinking"] = False
    output = body.output_config
    if output is not None and output.format is not None:
        schema = {"name": "output", "schema": output.format.schema_, "strict": True}
        fields["response_format"] = {"type": "json_schema", "json_schema": schema}
    if output is not None:
        fields["reasoning_effort"] = output.effort
    if body.tools:
        fields["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
            }
            for t in body.tools
            if isinstance(t, CustomTool)
        ]
    choice = body.tool_choice
    if choice is not None:
        if choice.type == "tool":
            fields["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            fields["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        if (
            choice.disable_parallel_tool_use is not None
            and "parallel_tool_calls" in ChatCompletionRequest.model_fields
        ):
            fields["parallel_tool_calls"] = not choice.disable_parallel_tool_use
    fields |= chat_option("top_k", body.top_k, "/top_k")
    fields |= chat_option("user", body.metadata.user_id if body.metadata else None, "/metadata/user_id")
    return {k: v for k, v in fields.items() if v is not None}


# ---- output ------------------------------------------------------------------------------------------------
def tool_use(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        value = {}
    return {
        "type": "tool_use",
        "id": call_id,
        "name": name,
        "input": value if isinstance(value, dict) else {},
    }


def usage_of(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }


def to_message(completion: ChatCompletion) -> dict[str, Any]:
    """A finished chat completion as an Anthropic `message`."""
    choice = completion.choices[0]
    calls = choice.message.tool_calls or []
    content: list[dict[str, Any]] = []
    if choice.message.content or not calls:
        content.append({"type": "text", "text": choice.message.content or ""})
    content += [tool_use(c.id, c.function.name, c.function.arguments) for c in calls]
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": usage_of(completion.usage.model_dump()),
    }
