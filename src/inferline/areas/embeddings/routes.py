"""`POST /ai/openai/embeddings` and `GET /ai/openai/embeddings/models` (bare OpenAI-style bodies)."""

from __future__ import annotations

import asyncio
from functools import partial

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from inferline.areas.embeddings.protocol import CreateEmbeddingsRequest, EmbeddingModelsResponse
from inferline.engines.embeddings import WouldWait
from inferline.ops.context import IN_FLIGHT
from inferline.web.deps import ContainerDep, TenantDep
from inferline.web.vector_json import VectorJSONResponse

router = APIRouter(tags=["embeddings"])


@router.post("/ai/openai/embeddings")
async def create_embeddings(
    body: CreateEmbeddingsRequest, container: ContainerDep, tenant: TenantDep
) -> JSONResponse:
    """One short text (up to `engines.onnx_embeddings.NOW_TOKENS` tokens, ~11 ms of model at most) is
    embedded right here on the event loop while no other request is in flight and the model is idle: handing
    it to a worker thread and back is among the largest costs around the model (2-core machine, single
    60-word text: ~0.15 ms of a 6.5 ms request). Anything else runs in a worker thread, so the loop keeps
    serving the other requests meanwhile, and concurrent texts share model runs (`engines.micro_batch`). A
    single text is known to be over that limit only once it is tokenized, here; the worker thread then
    tokenizes it again (~0.1 to 0.2 ms of a 12 to 25 ms request).

    Requests sent together with this one may not have started yet (they would not count as in flight): two
    turns of the loop let them start first. Without them, 8 concurrent clients were served one text per run,
    each run blocking the loop, at about 70 % of the throughput."""
    create = partial(
        container.embeddings.create,
        body.input,  # type: ignore[arg-type]
        body.model,
        dimensions=body.dimensions,
        encoding_format=body.encoding_format,
        tenant_id=tenant.tenant_id,
    )
    if isinstance(body.input, str) or len(body.input) == 1:
        for _ in range(2):  # one turn of the loop reads the requests already sent, the next starts them
            await asyncio.sleep(0)
        if IN_FLIGHT.alone:
            try:
                return VectorJSONResponse(create(now=True))
            except WouldWait:
                pass  # the model is loading or busy, or others wait: in a worker thread
    return await run_in_threadpool(lambda: VectorJSONResponse(create()))


@router.get("/ai/openai/embeddings/models")
def list_embedding_models(container: ContainerDep, tenant: TenantDep) -> EmbeddingModelsResponse:
    return EmbeddingModelsResponse(data=container.embeddings.list_models(tenant.tenant_id))
