"""`GET /ai/models` (deprecated), `GET /ai/openai/models` and `…/models/{id}`: models and fine-tunes.

The list is served from per-tenant caches on the event loop (no thread, no database) and read again in a
worker thread at most once per `REGISTRY_TTL_SECONDS` per tenant; see `ModelService.list_metadata`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from inferline.areas.models.protocol import ModelsResponse
from inferline.container import Container
from inferline.errors import NotFound
from inferline.web.deps import ContainerDep, TenantDep

router = APIRouter(tags=["models"])


@router.get("/ai/models", response_model=ModelsResponse)
@router.get("/ai/openai/models", response_model=ModelsResponse)
async def list_models(container: ContainerDep, principal: TenantDep) -> Response:
    body = {"object": "list", "data": await _visible(container, principal.tenant_id)}
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), media_type="application/json"
    )


@router.get("/ai/openai/models/{model_id:path}")
async def retrieve_model(model_id: str, container: ContainerDep, principal: TenantDep) -> dict[str, Any]:
    """One model of the list (OpenAI's `models.retrieve`); ids may contain `/`."""
    for model in await _visible(container, principal.tenant_id):
        if model["id"] == model_id:
            return model
    raise NotFound(f"Model {model_id!r} does not exist.", parameter="model_id")


async def _visible(container: Container, tenant_id: str) -> list[dict[str, Any]]:
    """The installed and remote models the tenant may use (the models file may restrict some), and its own
    fine-tunes: from the caches when both are fresh, else read in a worker thread."""
    models = container.models.cached_metadata(tenant_id)
    tunes = container.fine_tuning.cached_model_metadata(tenant_id)
    if models is None or tunes is None:
        models, tunes = await run_in_threadpool(_read, container, tenant_id)
    return [*models, *tunes]


def _read(container: Container, tenant_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return container.models.list_metadata(tenant_id), container.fine_tuning.model_metadata(tenant_id)
