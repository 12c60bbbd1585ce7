"""Per-request checks after authentication: the key's scope, then the tenant's and key's limits."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from inferline.errors import Forbidden, RateLimited
from inferline.keys import Principal
from inferline.ops.context import RequestOps
from inferline.ops.limits import CounterBusy

ADMIN_PREFIX = "/v2/admin"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POST routes counted against a limit category (the /v1 paths are rewritten onto these before routing).
CATEGORIES = {
    "/v2/ai/chat/completions": "chat",
    "/v2/ai/openai/chat/completions": "chat",
    "/v2/ai/openai/responses": "chat",
    "/v2/ai/anthropic/v1/messages": "chat",
    "/v2/ai/openai/embeddings": "embeddings",
    "/v2/audio/transcriptions": "transcriptions",
    "/v2/ai/audio/transcriptions": "transcriptions",
    "/v2/ai/openai/audio/transcriptions": "transcriptions",
    "/v2/audio/translations": "transcriptions",
    "/v2/ai/openai/audio/translations": "transcriptions",
}
LIMITED = {c: (f"{c}_requests", f"{c}_tokens") for c in ("chat", "embeddings")}  # limits checked on admission


def check_scope(principal: Principal, method: str, path: str) -> None:
    """403 (code 10010) when the key's scope does not cover the request (see `keys.SCOPES`)."""
    if principal.scope == "admin":
        return
    if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
        raise Forbidden(
            f"This API key has the {principal.scope!r} scope; the admin endpoints need an admin key."
        )
    if principal.scope == "read" and method not in READ_METHODS:
        raise Forbidden("This API key has the 'read' scope: it may only make GET requests.")


def check_websocket_scope(principal: Principal, path: str) -> None:
    """A WebSocket runs inference (it is not a read although its handshake is a GET): 403 for `read` keys."""
    if principal.scope == "read":
        raise Forbidden(
            f"This API key has the 'read' scope: the WebSocket {path} runs inference and needs an "
            "'inference' or 'admin' key."
        )
    check_scope(principal, "GET", path)


async def guard(request: Request, principal: Principal) -> None:
    """Check the scope, then admit the request against its category's limits (429 with headers if spent).

    A tenant and key without such limits (known from the limits cache) are admitted on the event loop; so are
    limited ones whose counters the loop can bump itself (`LimitService.admit_on_loop`); else the
    counters are bumped in a worker thread (which refreshes the cache)."""
    path = request.scope["path"]  # not `request.url`, which builds a URL object (~5 µs)
    check_scope(principal, request.method, path)
    category = CATEGORIES.get(path) if request.method == "POST" else None
    ops: RequestOps | None = getattr(request.state, "ops", None)
    if category is None or ops is None:
        return
    limits = request.app.state.container.limits
    ops.category = category
    names = ("concurrent_transcriptions",) if category == "transcriptions" else LIMITED[category]
    if limits.unlimited(principal, *names):  # known from the cache: admitted here, no thread or database
        return
    try:
        if category == "transcriptions":
            ops.slot = await run_in_threadpool(limits.acquire_slot, principal, category)
        else:
            try:  # from the event loop where it can (`LimitService.admit_on_loop`), else in a worker thread
                ops.ratelimit_headers, _ = await limits.admit_on_loop(principal, category)
            except CounterBusy:
                ops.ratelimit_headers, _ = await run_in_threadpool(limits.admit, principal, category)
    except RateLimited as exc:
        ops.refusal = _reason(category, exc)
        raise


def _reason(category: str, exc: RateLimited) -> str:
    if category == "transcriptions":
        return "concurrent_transcriptions"
    return f"{category}_tokens" if "tokens" in exc.detail.split(":")[0] else f"{category}_requests"
