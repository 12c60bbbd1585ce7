"""Grounded insights (inferline extension): a template with `evidence: true` is answered together with the
messages that support the answer, and every quote is checked to occur in the message it names.

The model sees the transcript with message ids (`[<id>] role: text`) and answers under a JSON schema
`{"answer": <the template's schema, or a string>, "evidence": [{"field"?, "message_id", "quote"}]}` whose
`message_id` is an enum of the conversation's real ids (`field`, for object schemas, names the result field
the quote supports). `check_evidence` marks each item `verified` when its quote, normalised (case, spacing,
surrounding punctuation), occurs in that message's text, and adds the message's time span
(`start_ms`/`end_ms` of recordings) when its metadata has one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_EVIDENCE = 3
MAX_QUOTE_CHARS = 160
MAX_ANSWER_CHARS = 400  # a free-text answer, so answer and evidence fit the token budget
_SPACE = re.compile(r"\s+")
_EDGE = " \t\n\"'`.,;:!?()[]{}"


@dataclass(frozen=True)
class SourceMessage:
    """A message as evidence may cite it."""

    id: str
    role: str
    text: str
    meta: dict[str, Any] | None = None


def transcript(messages: list[SourceMessage], max_chars: int) -> str:
    """`[<id>] role: text` lines, the last `max_chars` characters (whole lines)."""
    lines = [f"[{m.id}] {m.role}: {m.text}" for m in messages]
    out: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line) + 1
        if out and size > max_chars:
            break
        out.append(line)
    return "\n".join(reversed(out))


def result_fields(schema: dict[str, Any] | None) -> list[str]:
    """The top-level property names of an object schema (the fields evidence can point at)."""
    if schema is None or not isinstance(schema.get("properties"), dict):
        return []
    return [str(k) for k in schema["properties"]]


def evidence_schema(answer: dict[str, Any] | None, message_ids: list[str]) -> dict[str, Any]:
    """The schema the model answers under: the answer and 1..MAX_EVIDENCE quotes from real messages."""
    item: dict[str, Any] = {
        "type": "object",
        "properties": {
            "message_id": {"type": "string", "enum": message_ids},
            "quote": {"type": "string", "minLength": 1, "maxLength": MAX_QUOTE_CHARS},
        },
        "required": ["message_id", "quote"],
        "additionalProperties": False,
    }
    fields = result_fields(answer)
    if fields:
        item["properties"] = {"field": {"type": "string", "enum": fields}, **item["properties"]}
        item["required"] = ["field", "message_id", "quote"]
    return {
        "type": "object",
        "properties": {
            "answer": answer
            if answer is not None
            else {"type": "string", "minLength": 1, "maxLength": MAX_ANSWER_CHARS},
            "evidence": {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_EVIDENCE},
        },
        "required": ["answer", "evidence"],
        "additionalProperties": False,
    }


def normalise(text: str) -> str:
    """Lower case, single spaces, without surrounding quotes and punctuation."""
    return _SPACE.sub(" ", text).strip().strip(_EDGE).lower()


def check_evidence(
    evidence: Any, messages: dict[str, SourceMessage], fields: list[str] | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """The evidence items, each marked `verified`, with the cited message's time span when it has one; and
    whether the evidence checks out (at least one item, and every item verified)."""
    items: list[dict[str, Any]] = []
    if not isinstance(evidence, list):
        return items, False
    for raw in evidence:
        if not isinstance(raw, dict):
            items.append({"message_id": None, "quote": None, "verified": False})
            continue
        message_id = str(raw.get("message_id", ""))
        quote = raw.get("quote")
        item: dict[str, Any] = {"message_id": message_id, "quote": quote}
        if fields and raw.get("field") is not None:
            item = {"field": raw["field"], **item}
        message = messages.get(message_id)
        needle = normalise(quote) if isinstance(quote, str) else ""
        verified = message is not None and bool(needle) and needle in normalise(message.text)
        if fields and raw.get("field") not in fields:
            verified = False
        item["verified"] = verified
        meta = (message.meta or {}) if message is not None else {}
        for key in ("start_ms", "end_ms"):
            if isinstance(meta.get(key), int | float):
                item[key] = meta[key]
        items.append(item)
    return items, bool(items) and all(i["verified"] for i in items)
