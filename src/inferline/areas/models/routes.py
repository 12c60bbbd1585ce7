"""`GET /ai/models` (deprecated) and `GET /ai/openai/models`: the installed models, same payload."""

from __future__ import annotations

from fastapi import APIRouter

from inferline.areas.models.protocol import ModelsResponse
from inferline.web.deps import ContainerDep, TenantDep

router = APIRouter(tags=["models"])


@router.get("/ai/models")
@router.get("/ai/openai/models")
def list_models(container: ContainerDep, principal: TenantDep) -> ModelsResponse:
    return ModelsResponse(data=container.models.list_metadata(principal.tenant_id))
