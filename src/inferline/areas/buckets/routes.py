"""Bucket embeddings. `POST /ai/embeddings` also accepts an OpenAI embeddings body (`input`, `model`), which
the `openai` SDK sends there with base URL `/v2/ai`; it is answered exactly like `/ai/openai/embeddings`."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Body, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from inferline.areas.buckets.protocol import (
    Data,
    EmbeddingBucketRequest,
    EmbeddingSimilaritySearchRequest,
    EmbeddingUrlRequest,
)
from inferline.areas.embeddings.protocol import CreateEmbeddingsRequest
from inferline.web.deps import ContainerDep, TenantDep, list_param
from inferline.web.vector_json import VectorJSONResponse

router = APIRouter(tags=["embeddings"])
M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], body: Any) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


@router.post("/ai/embeddings", response_model=None)
def create_embeddings(
    container: ContainerDep, tenant: TenantDep, body: dict[str, Any] = Body(...)
) -> Data | JSONResponse:
    if "input" in body:
        oai = _parse(CreateEmbeddingsRequest, body)
        result = container.embeddings.create(
            oai.input,  # type: ignore[arg-type]
            oai.model,
            dimensions=oai.dimensions,
            encoding_format=oai.encoding_format,
            tenant_id=tenant.tenant_id,
        )
        return VectorJSONResponse(result)
    request = _parse(EmbeddingBucketRequest, body)
    task = container.ingest.create_task(
        tenant.tenant_id, request.bucket_name, request.settings(), key_id=tenant.key_id
    )
    return Data(data=task)


@router.get("/ai/embeddings")
def list_embedding_tasks(request: Request, container: ContainerDep, tenant: TenantDep) -> Data:
    return Data(data=container.ingest.list_tasks(tenant.tenant_id, list_param(request, "status")))


@router.get("/ai/embeddings/buckets")
def list_embedded_buckets(container: ContainerDep, tenant: TenantDep) -> Data:
    return Data(data={"buckets": container.ingest.list_buckets(tenant.tenant_id)})


@router.get("/ai/embeddings/buckets/{bucket_name}")
def retrieve_embedded_bucket(bucket_name: str, container: ContainerDep, tenant: TenantDep) -> Data:
    return Data(data=container.ingest.bucket_files(tenant.tenant_id, bucket_name))


@router.delete("/ai/embeddings/buckets/{bucket_name}")
def delete_embedded_bucket(bucket_name: str, container: ContainerDep, tenant: TenantDep) -> Response:
    container.ingest.delete_bucket(tenant.tenant_id, bucket_name)
    return Response(status_code=200)


@router.post("/ai/embeddings/similarity-search")
def similarity_search(
    body: EmbeddingSimilaritySearchRequest, container: ContainerDep, tenant: TenantDep
) -> Data:
    return Data(
        data=container.embeddings_search.similarity_search(
            tenant.tenant_id, body.bucket_name, body.query, body.num_of_docs, body.embedding_model
        )
    )


@router.post("/ai/embeddings/url")
def embed_url(body: EmbeddingUrlRequest, container: ContainerDep, tenant: TenantDep) -> Data:
    task = container.ingest.create_url_task(tenant.tenant_id, body.bucket_name, body.url, tenant.key_id)
    return Data(data=task)


@router.get("/ai/embeddings/{task_id}")
def retrieve_embedding_task(task_id: str, container: ContainerDep, tenant: TenantDep) -> Data:
    return Data(data=container.ingest.get_task(tenant.tenant_id, task_id))
