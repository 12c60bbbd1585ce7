"""`GET /ai/models` (deprecated) and `GET /ai/openai/models`: the installed models, same payload."""

from __future__ import annotations

from fastapi import APIRouter

from inferline.api.deps import ContainerDep, TenantDep
from inferline.api.models.protocol import ModelsResponse

router = APIRouter(tags=["models"])


@router.get("/ai/models")
@router.get("/ai/openai/models")
def list_models(container: ContainerDep, principal: TenantDep) -> ModelsResponse:
    return ModelsResponse(data=container.models.list_metadata(principal.tenant_id))
