"""`GET /ai/models` (deprecated), `GET /ai/openai/models` and `…/models/{id}`: models and fine-tunes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from inferline.areas.models.protocol import ModelsResponse
from inferline.container import Container
from inferline.errors import NotFound
from inferline.web.deps import ContainerDep, TenantDep

router = APIRouter(tags=["models"])


@router.get("/ai/models")
@router.get("/ai/openai/models")
def list_models(container: ContainerDep, principal: TenantDep) -> ModelsResponse:
    return ModelsResponse(data=_visible(container, principal.tenant_id))


@router.get("/ai/openai/models/{model_id:path}")
def retrieve_model(model_id: str, container: ContainerDep, principal: TenantDep) -> dict[str, Any]:
    """One model of the list (OpenAI's `models.retrieve`); ids may contain `/`."""
    for model in _visible(container, principal.tenant_id):
        if model["id"] == model_id:
            return model
    raise NotFound(f"Model {model_id!r} does not exist.", parameter="model_id")


def _visible(container: Container, tenant_id: str) -> list[dict[str, Any]]:
    """The installed and remote models the tenant may use (the models file may restrict some), and its own
    fine-tunes."""
    return [*container.models.list_metadata(tenant_id), *container.fine_tuning.model_metadata(tenant_id)]
