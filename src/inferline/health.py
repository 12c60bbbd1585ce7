"""Readiness: can this process serve? The database answers and every remote engine serves its model.

`GET /ready` (no auth, like `/health`) answers 200 when all checks pass and 503 otherwise, naming each check;
load balancers and orchestrators use it to keep traffic off a replica whose dependencies are down, or whose
default models are still loading (the `warmup` check, `ops.warmup`).

`missing_models` lists the model kinds (chat, embeddings, stt, tts) with no installed or remote model, with
the command that installs them. A missing kind does not make the server unready (200): its other areas
serve, and requests needing the kind answer 404 "not installed" naming the same command.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from sqlalchemy import text

from inferline.areas.models.state import loaded_models
from inferline.catalog import ModelKind
from inferline.container import Container
from inferline.errors import InferlineError

CHECK_TIMEOUT_SECONDS = 5.0


class HealthChecked(Protocol):
    """A remote engine: `health()` raises an `InferlineError` (502/504) unless its upstream serves it."""

    model_id: str

    def health(self, timeout_seconds: float = 5.0) -> dict[str, Any]: ...


def remote_engines(container: Container) -> list[HealthChecked]:
    """The remote embedding engines of the container."""
    return list(container.embeddings.remote.values())  # type: ignore[arg-type]


def remote_chat_probes(container: Container) -> list[Any]:
    """One `GET {url}/models` probe per remote chat model (the chat service builds its engines lazily)."""
    from inferline.engines.openai_compat_embeddings import OpenAICompatEmbeddingEngine

    return [
        OpenAICompatEmbeddingEngine(model_id, cfg.url, upstream_model=cfg.model, api_key=cfg.api_key)
        for model_id, cfg in container.models.remote("chat").items()  # settings and the models file
    ]


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


MODEL_KINDS: tuple[ModelKind, ...] = ("chat", "embeddings", "stt", "tts")


def missing_models(container: Container) -> list[str]:
    """The model kinds with neither an installed model nor a remote one."""
    remote = {"chat": getattr(container.chat, "remote", None), "embeddings": container.embeddings.remote}
    return [k for k in MODEL_KINDS if not container.models.installed(k) and not remote.get(k)]


def readiness(container: Container) -> tuple[bool, dict[str, Any]]:
    """(ready, body): every check, run concurrently so one slow upstream does not serialise the rest."""
    probes = remote_chat_probes(container)
    engines = [*remote_engines(container), *probes]
    try:
        with ThreadPoolExecutor(max(1, len(engines))) as pool:
            engine_checks = list(pool.map(_check_engine, engines))
    finally:
        for probe in probes:
            probe.close()
    checks = [_check_database(container), *engine_checks]
    if container.warmup is not None and container.warmup.steps:
        checks.append(container.warmup.check())  # `warming` until the default models are loaded
    ready = all(c["status"] == "ok" for c in checks)
    body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": checks}
    body["loaded"] = loaded_models(container)  # model ids whose weights this replica holds (models list)
    body["missing_models"] = missing = missing_models(container)
    if missing:
        body["install"] = "inferline models install"
    return ready, body
