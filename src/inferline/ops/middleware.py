"""Pure ASGI middleware: per-request accounting. Starts a `RequestOps`, adds the `x-ratelimit-*` headers to
the response; before the last body byte meters the request's usage (into the batched meter's tally) and counts
its tokens against its token limits, if any (so the caller's next request sees them), and after it records the
HTTP metrics and one log line. It also counts the requests and WebSocket sessions in flight (`IN_FLIGHT`)."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inferline.keys import Principal
from inferline.ops import metrics
from inferline.ops.context import CURRENT, IN_FLIGHT, RequestOps
from inferline.ops.limits import CounterBusy

log = logging.getLogger("inferline.requests")
UNMATCHED = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The matched route's path with its parameters as `{name}` (never the ids themselves)."""
    if scope.get("route") is None:
        return UNMATCHED
    path: str = scope.get("path", "")
    params: dict[str, Any] = scope.get("path_params") or {}
    for name, value in sorted(params.items(), key=lambda kv: -len(str(kv[1]))):
        text = str(value)
        if text:
            path = path.replace(text, "{" + name + "}", 1)
    return path


class OpsMiddleware:
    """See the module docstring. `log_format` is "json" (one JSON object per line) or "text"."""

    def __init__(self, app: ASGIApp, log_format: str = "text") -> None:
        self.app = app
        self.json = log_format == "json"
        if self.json and not any(getattr(h, "inferline_json", False) for h in log.handlers):
            handler = logging.StreamHandler(sys.stdout)  # bare JSON lines, without uvicorn's level prefix
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler.inferline_json = True  # type: ignore[attr-defined]
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._pass(scope, receive, send)
            return
        ops = RequestOps()
        scope.setdefault("state", {})["ops"] = ops
        token = CURRENT.set(ops)
        start, status, accounted = time.perf_counter(), 500, False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, accounted
            if message["type"] == "http.response.body" and not message.get("more_body") and not accounted:
                accounted = True  # before the last byte: the caller's next request sees this one counted
                await self._account(scope, ops)
            if message["type"] == "http.response.start":
                status = message["status"]
                if ops.ratelimit_headers:
                    headers = message.setdefault("headers", [])
                    present = {k.lower() for k, _ in headers}
                    headers.extend(
                        (k.encode(), v.encode())
                        for k, v in ops.ratelimit_headers.items()
                        if k.encode() not in present
                    )
            await send(message)

        IN_FLIGHT.add(1)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            IN_FLIGHT.add(-1)
            CURRENT.reset(token)
            if not accounted:
                await self._account(scope, ops)
            self._finish(scope, ops, status, time.perf_counter() - start)

    async def _pass(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Anything but HTTP passes through; a WebSocket session counts as in flight while it lasts."""
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        IN_FLIGHT.add(1)
        try:
            await self.app(scope, receive, send)
        finally:
            IN_FLIGHT.add(-1)

    async def _account(self, scope: Scope, ops: RequestOps) -> None:
        """Meter the request's units (a batched meter only tallies them, on the event loop), count its tokens
        against token limits (from the event loop where it can: `LimitService.add_tokens_on_loop`), and in a
        worker thread, only when there is database work left: release its slot, count those tokens."""
        principal: Principal | None = (scope.get("state") or {}).get("principal")
        container = getattr(getattr(scope.get("app"), "state", None), "container", None)
        if container is None:
            return
        try:
            if principal is not None and ops.units:
                units = [(m, model, q) for (m, model), q in ops.units.items()]
                if container.usage.batched:
                    container.usage.record(principal.tenant_id, principal.key_id, units)
                else:
                    await run_in_threadpool(
                        container.usage.record, principal.tenant_id, principal.key_id, units
                    )
            tokens = ops.tokens() if principal is not None and ops.category in ("chat", "embeddings") else 0
            if tokens and container.limits.unlimited(principal, f"{ops.category}_tokens"):
                tokens = 0
            if tokens and not ops.slot:  # counted from the event loop where it can be, as requests are
                try:
                    await container.limits.add_tokens_on_loop(principal, ops.category, tokens)
                    return
                except CounterBusy:
                    pass
            if ops.slot or tokens:
                await run_in_threadpool(_release_and_count, container, principal, ops, tokens)
        except Exception as exc:  # metering must never break a response
            log.warning("usage not recorded: %s", exc)

    def _finish(self, scope: Scope, ops: RequestOps, status: int, seconds: float) -> None:
        route = route_template(scope)
        method = scope.get("method", "")
        metrics.HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
        metrics.HTTP_LATENCY.labels(method=method, route=route).observe(seconds)
        if status == 429:
            metrics.RATE_LIMITED.labels(reason=ops.refusal or "busy").inc()
        state = scope.get("state") or {}
        principal: Principal | None = state.get("principal")
        self._log(state, principal, method, route, status, seconds, ops, path=scope.get("path", ""))

    def _log(
        self,
        state: dict[str, Any],
        principal: Principal | None,
        method: str,
        route: str,
        status: int,
        seconds: float,
        ops: RequestOps,
        path: str = "",
    ) -> None:
        """The request's one line: JSON (route template), or text starting `METHOD /path STATUS` (the path
        without its query string, the route template after it where they differ)."""
        if not log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": state.get("request_id", "-"),
            "tenant": principal.tenant_id if principal else None,
            "key_id": principal.key_id if principal else None,
            "method": method,
            "route": route,
            "status": status,
            "latency_ms": round(seconds * 1000, 1),
        }
        if ops.model:
            fields["model"] = ops.model
        for (metric, _), quantity in sorted(ops.units.items()):
            fields[metric] = round(fields.get(metric, 0) + quantity, 3)
        if ops.refusal:
            fields["refused"] = ops.refusal
        if self.json:
            log.info(json.dumps(fields, separators=(",", ":")))
        else:
            shown = path or route
            extra = " ".join(
                f"{k}={v}"
                for k, v in fields.items()
                if k not in ("time", "method", "status") and (k != "route" or shown != route)
            )
            log.info("%s %s %s %s", method, shown, status, extra)


def _release_and_count(container: Any, principal: Principal | None, ops: RequestOps, tokens: int) -> None:
    if ops.slot:
        container.limits.release_slot(ops.slot)
    if principal is not None and tokens:
        container.limits.add_tokens(principal, ops.category, tokens)
