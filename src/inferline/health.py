"""Readiness: can this process serve? The database answers and every remote engine serves its model.

`GET /ready` (no auth, like `/health`) answers 200 when all checks pass and 503 otherwise, naming each check;
load balancers and orchestrators use it to keep traffic off a replica whose dependencies are down.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from sqlalchemy import text

from inferline.container import Container
from inferline.errors import InferlineError

CHECK_TIMEOUT_SECONDS = 5.0


class HealthChecked(Protocol):
    """A remote engine: `health()` raises an `InferlineError` (502/504) unless its upstream serves it."""

    model_id: str

    def health(self, timeout_seconds: float = 5.0) -> dict[str, Any]: ...


def remote_engines(container: Container) -> list[HealthChecked]:
    """Every engine of the container that calls a remote server."""
    engines: list[HealthChecked] = list(container.embeddings.remote.values())  # type: ignore[arg-type]
    chat = getattr(container, "chat", None)
    for engine in getattr(chat, "remote", {}).values() if chat is not None else ():
        if hasattr(engine, "health"):
            engines.append(engine)
    return engines


def _check_database(container: Container) -> dict[str, Any]:
    try:
        with container.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"name": "database", "status": "ok", "dialect": container.db.engine.dialect.name}
    except Exception as exc:
        return {"name": "database", "status": "error", "detail": f"{type(exc).__name__}: {exc}"[:300]}


def _check_engine(engine: HealthChecked) -> dict[str, Any]:
    name = f"engine:{engine.model_id}"
    try:
        engine.health(timeout_seconds=CHECK_TIMEOUT_SECONDS)
        return {"name": name, "status": "ok"}
    except InferlineError as exc:
        return {"name": name, "status": "error", "detail": exc.detail}


def readiness(container: Container) -> tuple[bool, dict[str, Any]]:
    """(ready, body): every check, run concurrently so one slow upstream does not serialise the rest."""
    engines = remote_engines(container)
    with ThreadPoolExecutor(max(1, len(engines))) as pool:
        engine_checks = list(pool.map(_check_engine, engines))
    checks = [_check_database(container), *engine_checks]
    ready = all(c["status"] == "ok" for c in checks)
    return ready, {"status": "ready" if ready else "unavailable", "checks": checks}
