"""The `/v1` base that OpenAI-compatible tools default to, served by the same handlers and keys.

`/v1/audio/…` is `/v2/audio/…`; any other `/v1/…` is `/v2/ai/openai/…` (chat/completions, embeddings,
models, models/{id}, responses). The path is rewritten before routing, so authentication, limits and errors
are those of the `/v2` route (with OpenAI's error object, see `dialects`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

V1 = "/v1"


def v2_path(path: str) -> str:
    """The `/v2` route serving a `/v1` path."""
    rest = path[len(V1) :]
    if rest == "/audio" or rest.startswith("/audio/"):
        return "/v2" + rest
    return "/v2/ai/openai" + rest


class OpenAIV1Paths:
    """Pure ASGI middleware: rewrites `/v1/…` requests onto their `/v2` routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and (path == V1 or path.startswith(V1 + "/")):
            new = v2_path(path)
            scope = {**scope, "path": new, "raw_path": new.encode()}
        await self.app(scope, receive, send)
