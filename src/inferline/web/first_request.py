"""`prepare_first_request(app)`: work an API process would otherwise do in its first requests, done at
start-up instead (~20 ms on the 2-core machine; each piece below once per process).

- FastAPI looks up each endpoint's source file and line (`inspect.getsourcelines`, for its error messages)
  on the endpoint's first request, on the event loop: 0.1 to 0.6 ms each. It also builds each included
  router's effective routes (prefix, dependencies) at the first request that reaches that router.
- SQLAlchemy configures its mappers at the first query, and compiles a statement the first time it runs:
  the key lookup and the limits read run in every request whose key is not in the caches yet.
- The configured key (`INFERLINE_API_KEY`, seeded at start-up) and its limits are read into the caches, which
  the refresh thread keeps fresh while the key is in use: its first request, usually the server's first,
  skips that read and its worker-thread hop (~1 to 2 ms; other keys' first requests still pay it once).

Both FastAPI steps use FastAPI's private helpers (the version is pinned); where one is missing, as after an
upgrade that renamed it, that step is skipped and the first requests pay for it as before.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from sqlalchemy.orm import configure_mappers

from inferline.errors import AuthenticationFailed
from inferline.web.deps import read_principal

log = logging.getLogger("inferline")


def prepare_first_request(app: FastAPI) -> None:
    """Runs that work now; a database that does not answer yet is left to the requests (and `/ready`)."""
    _build_effective_routes(app.router.routes)
    endpoint_context = getattr(fastapi.routing, "_extract_endpoint_context", None)
    if endpoint_context is not None:
        for route in _routes(app.router.routes):
            if isinstance(route, fastapi.routing.APIRoute):
                endpoint_context(route.dependant.call)
    configure_mappers()
    container = app.state.container
    try:
        container.keys.prepare()
        container.limits.prepare()
        if container.settings.api_key:
            with contextlib.suppress(AuthenticationFailed):  # a revoked configured key stays revoked
                read_principal(container, container.settings.api_key)
    except Exception as exc:  # the requests meet the same error, and /ready reports it
        log.warning("preparing the statements of the first requests failed: %s", exc)


def _build_effective_routes(routes: list[Any]) -> None:
    """Builds the effective routes of each included router (FastAPI >= 0.16x), through the nested ones that
    requests reach (the branches the parent's `effective_candidates` made, not the routers as declared)."""
    for route in routes:
        if callable(getattr(route, "effective_candidates", None)):
            if callable(getattr(route, "effective_low_priority_routes", None)):
                route.effective_low_priority_routes()
            _build_effective_routes(route.effective_candidates())


def _routes(routes: list[Any]) -> list[Any]:
    """Every route under `routes`, through included routers, as declared."""
    found: list[Any] = []
    for route in routes:
        if hasattr(route, "original_router"):  # an included router (FastAPI >= 0.16x)
            found.extend(_routes(route.original_router.routes))
        else:
            found.append(route)
    return found
