"""`POST /ai/openai/embeddings` and `GET /ai/openai/embeddings/models` (bare OpenAI-style bodies)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from inferline.areas.embeddings.protocol import CreateEmbeddingsRequest, EmbeddingModelsResponse
from inferline.web.deps import ContainerDep, TenantDep

router = APIRouter(tags=["embeddings"])


@router.post("/ai/openai/embeddings")
def create_embeddings(
    body: CreateEmbeddingsRequest, container: ContainerDep, tenant: TenantDep
) -> JSONResponse:
    result = container.embeddings.create(
        body.input,  # type: ignore[arg-type]
        body.model,
        dimensions=body.dimensions,
        encoding_format=body.encoding_format,
        tenant_id=tenant.tenant_id,
    )
    return JSONResponse(result)


@router.get("/ai/openai/embeddings/models")
def list_embedding_models(container: ContainerDep, tenant: TenantDep) -> EmbeddingModelsResponse:
    return EmbeddingModelsResponse(data=container.embeddings.list_models(tenant.tenant_id))
