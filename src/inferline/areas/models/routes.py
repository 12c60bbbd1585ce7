"""`GET /ai/models` (deprecated) and `GET /ai/openai/models`: installed models and the caller's fine-tunes."""

from __future__ import annotations

from fastapi import APIRouter

from inferline.areas.models.protocol import ModelsResponse
from inferline.web.deps import ContainerDep, TenantDep

router = APIRouter(tags=["models"])


@router.get("/ai/models")
@router.get("/ai/openai/models")
def list_models(container: ContainerDep, principal: TenantDep) -> ModelsResponse:
    tenant_models = container.fine_tuning.model_metadata(principal.tenant_id)
    return ModelsResponse(data=[*container.models.list_metadata(), *tenant_models])
