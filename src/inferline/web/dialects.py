"""Error bodies in the dialect each client family reads, always alongside the Telnyx `errors` array.

OpenAI-compatible paths (`/v2/ai/openai/…`, `/v2/audio/…`, and `/v1/…`, which is served by them) add OpenAI's
`{"error": {"message", "type", "param", "code"}}`; Anthropic's path (`/v2/ai/anthropic/…`) adds
`{"type": "error", "error": {"type", "message"}}`. So every SDK shows the reason, not just the status.
"""

from __future__ import annotations

from typing import Any, Literal

Dialect = Literal["telnyx", "openai", "anthropic"]

OPENAI_PREFIXES = ("/v2/ai/openai/", "/v2/audio/", "/v1/")
ANTHROPIC_PREFIXES = ("/v2/ai/anthropic/",)

_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def dialect_of(path: str) -> Dialect:
    if path.startswith(ANTHROPIC_PREFIXES):
        return "anthropic"
    if path.startswith(OPENAI_PREFIXES):
        return "openai"
    return "telnyx"


def _param(entry: dict[str, Any]) -> str | None:
    """A JSON pointer (`/messages/0/content`) as OpenAI names a parameter (`messages[0].content`)."""
    source = entry.get("source") or {}
    if "parameter" in source:
        return str(source["parameter"])
    pointer = str(source.get("pointer") or "").strip("/")
    if not pointer:
        return None
    out = ""
    for part in pointer.split("/"):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def with_dialect(path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
    """`body` (a Telnyx envelope) with the error object of the path's client family added."""
    dialect = dialect_of(path)
    entries = body.get("errors") or []
    if dialect == "telnyx" or not entries:
        return body
    message = "; ".join(str(e.get("detail") or e.get("title") or "") for e in entries)
    if dialect == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}, **body}
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    first = entries[0]
    error = {"message": message, "type": kind, "param": _param(first), "code": first.get("code")}
    return {"error": error, **body}
