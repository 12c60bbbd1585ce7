"""Chat output: assemble chunks into a `chat.completion`, check constraints, shape tool calls, SSE."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from inferline.engines.chat import Constraint


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


class Assembler:
    """Accumulates OpenAI chunks (any number of choices) into one non-streamed completion."""

    def __init__(self) -> None:
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        for c in chunk.get("choices") or []:
            slot = self.choices.setdefault(
                c.get("index", 0),
                {"content": [], "reasoning": [], "tool_calls": [], "logprobs": None, "finish_reason": None},
            )
            delta = c.get("delta") or {}
            if delta.get("content"):
                slot["content"].append(delta["content"])
            if delta.get("reasoning_content"):
                slot["reasoning"].append(delta["reasoning_content"])
            for call in delta.get("tool_calls") or []:
                _add_call(slot["tool_calls"], call)
            if c.get("logprobs") and c["logprobs"].get("content") is not None:
                slot["logprobs"] = (slot["logprobs"] or []) + c["logprobs"]["content"]
            if c.get("finish_reason"):
                slot["finish_reason"] = c["finish_reason"]
        if chunk.get("usage"):
            self.usage = chunk["usage"]

    def tool_calls(self, index: int) -> list[dict[str, Any]]:
        return self.choices[index]["tool_calls"] if index in self.choices else []

    def outputs(self) -> list[tuple[int, str, str | None]]:
        """(index, text, finish_reason) per choice."""
        return [(i, "".join(s["content"]), s["finish_reason"]) for i, s in sorted(self.choices.items())]

    def choice(self, index: int, *, logprobs: bool) -> dict[str, Any]:
        slot = self.choices[index]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(slot["content"])}
        if slot["reasoning"]:
            message["reasoning_content"] = "".join(slot["reasoning"])
        if slot["tool_calls"]:
            message.update(content=None, tool_calls=slot["tool_calls"])
        return {
            "index": index,
            "message": message,
            "logprobs": {"content": slot["logprobs"] or []} if logprobs else None,
            "finish_reason": slot["finish_reason"] or "stop",
        }

    def logprob_sum(self, index: int) -> float:
        return sum(t.get("logprob", 0.0) for t in self.choices[index]["logprobs"] or [])


def _add_call(calls: list[dict[str, Any]], delta: dict[str, Any]) -> None:
    """Merge one streamed `tool_calls` delta: a new `index` starts a call (id, type, name), the same index
    continues its `arguments`."""
    function = delta.get("function") or {}
    index = delta.get("index", len(calls))
    if index < len(calls):
        calls[index]["function"]["arguments"] += function.get("arguments") or ""
        return
    calls.append(
        {
            "id": delta.get("id") or "call_" + secrets.token_hex(12),
            "type": delta.get("type") or "function",
            "function": {"name": function.get("name", ""), "arguments": function.get("arguments") or ""},
        }
    )


def completion(model: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "inferline",
        "choices": choices,
        "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def satisfies(constraint: Constraint, text: str) -> bool:
    """Whether `text` is what `constraint` asks for (checked after decoding, whatever the engine)."""
    if constraint.kind == "choice":
        return text in constraint.value
    if constraint.kind == "regex":
        return re.fullmatch(constraint.value, text, re.ASCII) is not None  # \d, \w, \s are ASCII
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return False
    if constraint.kind == "json_object":
        return True
    from jsonschema import validate
    from jsonschema.exceptions import ValidationError

    try:
        validate(value, constraint.value)
    except ValidationError:
        return False
    return True


def tool_message(text: str) -> tuple[dict[str, Any], str]:
    """The assistant message and finish reason for a tool-constrained output (a call, or a plain reply)."""
    value = json.loads(text)
    if "name" in value:
        call = {
            "id": "call_" + secrets.token_hex(12),
            "type": "function",
            "function": {"name": value["name"], "arguments": json.dumps(value.get("arguments", {}))},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    return {"role": "assistant", "content": value.get("content", "")}, "stop"


def chunks_of(done: dict[str, Any]) -> list[dict[str, Any]]:
    """A finished completion as the chunks a stream of it would have carried (usage last)."""
    head = {k: done[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    out = []
    for choice in done["choices"]:
        message, index = choice["message"], choice["index"]
        out.append(
            {**head, "choices": [{"index": index, "delta": {"role": "assistant"}, "finish_reason": None}]}
        )
        delta: dict[str, Any] = {}
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        if delta:
            piece = {"index": index, "delta": delta, "finish_reason": None}
            if choice.get("logprobs"):
                piece["logprobs"] = choice["logprobs"]
            out.append({**head, "choices": [piece]})
        out.append(
            {**head, "choices": [{"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}]}
        )
    out.append({**head, "choices": [], "usage": done["usage"]})
    return out


def sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"
