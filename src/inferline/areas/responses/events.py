"""Chat output → a Responses `response` object and its stream events.

`ResponseBuilder` takes the chat output piece by piece (reasoning text, text, whole tool calls, the finish
reason and usage) and returns the events a stream carries for each (`response.created`,
`response.output_item.added`, `response.output_text.delta`, …, `response.completed`), numbered by
`sequence_number`; a non-streamed response is the same build with the events dropped.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from typing import Any


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def call_id() -> str:
    return "call_" + secrets.token_hex(12)


def sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


class ResponseBuilder:
    """One response under construction; `settings` are the request's echoed fields (`translate.echo`)."""

    def __init__(self, model: str | None, settings: dict[str, Any]) -> None:
        self.id = _id("resp")
        self.created_at = int(time.time())
        self.model = model
        self.settings = settings
        self.output: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.status = "in_progress"
        self.incomplete: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.sequence = 0
        self.open_items: dict[
            str, int
        ] = {}  # "message" / "reasoning" / "call" -> output index of the open item
        self.call_key: Any = None  # the chat `index` of the streamed call being written

    # ---- the response object ----------------------------------------------------------------------------
    def response(self) -> dict[str, Any]:
        done = self.status in ("completed", "incomplete")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": int(time.time()) if done else None,
            "status": self.status,
            "model": self.model,
            "output": copy.deepcopy(self.output),
            "error": self.error,
            "incomplete_details": self.incomplete,
            "usage": self.usage,
            **self.settings,
        }

    def output_text(self) -> str:
        return "".join(
            part["text"] for item in self.output if item["type"] == "message" for part in item["content"]
        )

    # ---- events -----------------------------------------------------------------------------------------
    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self.response()),
            self._event("response.in_progress", response=self.response()),
        ]

    def _add(self, item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.output.append(item)
        index = len(self.output) - 1
        return index, self._event("response.output_item.added", output_index=index, item=copy.deepcopy(item))

    def reasoning(self, delta: str) -> list[dict[str, Any]]:
        events = []
        if "reasoning" not in self.open_items:
            events += self._close_all()
            item = {
                "id": _id("rs"),
                "type": "reasoning",
                "summary": [],
                "content": [],
                "status": "in_progress",
            }
            index, added = self._add(item)
            self.open_items["reasoning"] = index
            item["content"].append({"type": "reasoning_text", "text": ""})
            part = {"type": "reasoning_text", "text": ""}
            events += [added, self._part_event("added", index, part)]
        index = self.open_items["reasoning"]
        self.output[index]["content"][0]["text"] += delta
        events.append(self._text_event("response.reasoning_text.delta", index, delta=delta))
        return events

    def text(self, delta: str) -> list[dict[str, Any]]:
        events = self._open_message()
        index = self.open_items["message"]
        self.output[index]["content"][0]["text"] += delta
        events.append(self._text_event("response.output_text.delta", index, delta=delta, logprobs=[]))
        return events

    def _open_message(self) -> list[dict[str, Any]]:
        if "message" in self.open_items:
            return []
        events = self._close_all()
        item = {
            "id": _id("msg"),
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        index, added = self._add(item)
        self.open_items["message"] = index
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        item["content"].append(dict(part))
        return [*events, added, self._part_event("added", index, part)]

    def tool_call(self, call_id: str, name: str, arguments: str) -> list[dict[str, Any]]:
        """A whole function call."""
        return self.call_start(call_id, name) + self.call_arguments(arguments) + self._close("call")

    def call_start(self, call_id: str, name: str, key: Any = None) -> list[dict[str, Any]]:
        """A function call begins (its arguments follow); `key` tells a streamed call's deltas apart."""
        events = self._close_all()
        item = {
            "id": _id("fc"),
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": "",
            "status": "in_progress",
        }
        index, added = self._add(item)
        self.open_items["call"], self.call_key = index, key
        return [*events, added]

    def call_arguments(self, delta: str) -> list[dict[str, Any]]:
        index = self.open_items["call"]
        item = self.output[index]
        item["arguments"] += delta
        kind = "response.function_call_arguments.delta"
        return [self._event(kind, item_id=item["id"], output_index=index, delta=delta)]

    def finish(self, finish_reason: str | None, usage: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Close what is open and end the response (`incomplete` when the output reached its limit)."""
        events = self._open_message() if not self.output else []  # an empty answer is an empty message
        events += self._close_all()
        if usage is not None:
            self.usage = _usage(usage)
        if finish_reason == "length":
            self.status, self.incomplete = "incomplete", {"reason": "max_output_tokens"}
            for item in self.output:
                if item["type"] == "message":
                    item["status"] = "incomplete"
            return [*events, self._event("response.incomplete", response=self.response())]
        self.status = "completed"
        return [*events, self._event("response.completed", response=self.response())]

    def fail(self, code: str | None, message: str) -> list[dict[str, Any]]:
        """The stream's end when generation fails midway: `error`, then `response.failed`."""
        self.status, self.error = "failed", {"code": "server_error", "message": message}
        return [
            self._event("error", code=code, message=message, param=None),
            self._event("response.failed", response=self.response()),
        ]

    def _close_all(self) -> list[dict[str, Any]]:
        return [event for kind in list(self.open_items) for event in self._close(kind)]

    def _close(self, kind: str) -> list[dict[str, Any]]:
        index = self.open_items.pop(kind, None)
        if index is None:
            return []
        item = self.output[index]
        item["status"] = "completed"
        if kind == "call":
            args = {"item_id": item["id"], "output_index": index, "name": item["name"]}
            events = [
                self._event("response.function_call_arguments.done", **args, arguments=item["arguments"])
            ]
        else:
            part = item["content"][0]
            if kind == "message":
                text = self._text_event("response.output_text.done", index, text=part["text"], logprobs=[])
            else:
                text = self._text_event("response.reasoning_text.done", index, text=part["text"])
            events = [text, self._part_event("done", index, dict(part))]
        done = self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item))
        return [*events, done]

    def _part_event(self, verb: str, index: int, part: dict[str, Any]) -> dict[str, Any]:
        item_id = self.output[index]["id"]
        kind = f"response.content_part.{verb}"
        return self._event(kind, item_id=item_id, output_index=index, content_index=0, part=part)

    def _text_event(self, kind: str, index: int, **fields: Any) -> dict[str, Any]:
        return self._event(
            kind, item_id=self.output[index]["id"], output_index=index, content_index=0, **fields
        )


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Chat usage as Responses usage."""
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }
