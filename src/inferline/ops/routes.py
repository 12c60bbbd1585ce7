"""`GET /metrics`: on the API port (open, or behind `INFERLINE_METRICS_TOKEN`), or only on its own listener
(`INFERLINE_METRICS_PORT` on `INFERLINE_METRICS_HOST`, unauthenticated: bind it where only Prometheus can
reach it)."""

from __future__ import annotations

import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fastapi import FastAPI, Request, Response

from inferline.config import Settings
from inferline.errors import AuthenticationFailed, RouteNotFound
from inferline.ops.metrics import CONTENT_TYPE, exposition


def install_metrics(app: FastAPI, settings: Settings) -> None:
    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        if settings.metrics_port:
            raise RouteNotFound(f"/metrics is served on port {settings.metrics_port}.")
        if settings.metrics_token:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), settings.metrics_token):
                raise AuthenticationFailed(
                    "GET /metrics needs `Authorization: Bearer <INFERLINE_METRICS_TOKEN>`."
                )
        return Response(exposition(app.state.container), media_type=CONTENT_TYPE)


def start_metrics_listener(app: FastAPI, settings: Settings) -> ThreadingHTTPServer | None:
    """Serve `/metrics` on `metrics_host:metrics_port` in a daemon thread (None when the port is 0)."""
    if not settings.metrics_port:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            container = getattr(app.state, "container", None)
            if self.path.split("?")[0] != "/metrics" or container is None:
                self.send_error(404)
                return
            body = exposition(container)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes stay out of the log
            return

    server = ThreadingHTTPServer((settings.metrics_host, settings.metrics_port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
