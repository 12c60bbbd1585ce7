"""Names and summarises a cluster with the chat model, from its most central chunks."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from inferline.errors import UpstreamError

SAMPLE_CHUNKS = 4  # the most central chunks shown to the model
SAMPLE_CHARS = 300  # of each
HEADER_CHARS, SUMMARY_CHARS = 60, 240
MAX_TOKENS = 160  # enough for both fields at their longest
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "header": {"type": "string", "minLength": 1, "maxLength": HEADER_CHARS},
        "summary": {"type": "string", "minLength": 1, "maxLength": SUMMARY_CHARS},
    },
    "required": ["header", "summary"],
    "additionalProperties": False,
}
SYSTEM = (
    "You label groups of related text passages. Reply in JSON: `header` is a short title naming the "
    "topic the passages share (at most 8 words); `summary` says in one or two sentences what they are about."
)


class TextCompleter(Protocol):
    """What the clusters area needs from the chat service (`container.chat`)."""

    def complete_text(
        self,
        tenant_id: str,
        messages: list[dict[str, Any]],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.2,
        cancelled: threading.Event | None = None,
    ) -> str: ...


@dataclass(frozen=True)
class Label:
    header: str
    summary: str


def _fallback(texts: list[str]) -> Label:
    """When the model's reply is unusable: the most central chunk's opening words and text."""
    words = " ".join(texts[0].split())
    return Label(" ".join(words.split()[:8])[:HEADER_CHARS] or "Cluster", words[:SUMMARY_CHARS] or "-")


def name_cluster(
    chat: TextCompleter, tenant_id: str, central_texts: list[str], cancelled: threading.Event | None = None
) -> Label:
    """A header and a summary of the passages `central_texts` (most central first).

    Engine errors other than an unusable reply (`UpstreamError`) propagate to the caller."""
    sample = [" ".join(t.split())[:SAMPLE_CHARS] for t in central_texts[:SAMPLE_CHUNKS]]
    passages = "\n".join(f"- {text}" for text in sample)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"{passages}\n\nWhich topic do these passages share?"},
    ]
    try:
        reply = chat.complete_text(
            tenant_id,
            messages,
            json_schema=SCHEMA,
            max_tokens=MAX_TOKENS,
            temperature=0.2,
            cancelled=cancelled,
        )
        value = json.loads(reply)
        header, summary = str(value["header"]).strip(), str(value["summary"]).strip()
    except (UpstreamError, ValueError, KeyError, TypeError):
        return _fallback(central_texts)
    if not header or not summary:
        return _fallback(central_texts)
    return Label(header[:HEADER_CHARS], summary[:SUMMARY_CHARS])
