"""Similarity search over an embedded bucket: the spec's `document_chunk`, `distance`, `metadata` items.

`distance` is the cosine distance `1 - cos` clipped to [0, 1] (lower is closer) and `certainty` is
`(1 + cos) / 2` (higher is closer), the pair the Telnyx example shows (0.186 / 0.907).

The query's tokens are metered as `embedding_tokens` of the bucket's model, as the embeddings API meters its
inputs: under the request's tenant and key (or the tenant's background usage outside a request).
"""

from __future__ import annotations

from typing import Any

from inferline.areas.buckets.ingest import IngestService
from inferline.areas.embeddings.service import EmbeddingsService
from inferline.errors import BadRequest, ValidationFailed
from inferline.ops import context as ops_context
from inferline.stores.vectors import VectorIndex

MAX_DOCS = 100


class SimilaritySearch:
    """`similarity_search(tenant_id, bucket_name, query, num_docs)`, also used by chat's `retrieval` tool."""

    def __init__(self, ingest: IngestService, index: VectorIndex, embeddings: EmbeddingsService) -> None:
        self.ingest = ingest
        self.index = index
        self.embeddings = embeddings

    def similarity_search(
        self,
        tenant_id: str,
        bucket_name: str,
        query: str,
        num_docs: int = 3,
        embedding_model: str | None = None,
    ) -> list[dict[str, Any]]:
        """The `num_docs` chunks of the bucket closest to `query`, best first, among those embedded with the
        bucket's model: while the bucket is re-embedded with another model, the chunks still holding the
        previous model's vectors (not comparable) are left out until their file is re-embedded. 404 if it has
        no embeddings; 400 when `embedding_model` names another model than the one the bucket was (last)
        embedded with."""
        if not query.strip():
            raise ValidationFailed("query: must not be empty", pointer="/query")
        if not 1 <= num_docs <= MAX_DOCS:
            raise ValidationFailed(f"num_of_docs: must be between 1 and {MAX_DOCS}", pointer="/num_of_docs")
        model = self.ingest.bucket_model(tenant_id, bucket_name)
        if embedding_model is not None:
            asked = self.embeddings.resolve(embedding_model, "/embedding_model", tenant_id).model_id
            if asked != model:
                raise BadRequest(
                    f"Bucket {bucket_name!r} is embedded with {model!r}; it cannot be searched with "
                    f"{asked!r}. Search it with {model!r} (or without embedding_model), or embed it again "
                    f"with {asked!r} first.",
                    pointer="/embedding_model",
                )
        engine = self.embeddings.resolve(model, tenant_id=tenant_id)
        tokens = min(engine.count_tokens([query])[0], engine.max_tokens)  # before embed, which truncates
        vector = engine.embed([query])[0]
        ops_context.metered(self.ingest.db, tenant_id, "embedding_tokens", tokens, engine.model_id)
        hits = self.index.search(tenant_id, bucket_name, vector, num_docs, model=engine.model_id)
        return [
            {
                "document_chunk": hit.chunk.text,
                "distance": min(1.0, max(0.0, 1.0 - hit.similarity)),
                "metadata": {
                    "source": hit.chunk.source,
                    "checksum": hit.chunk.checksum,
                    "embedding": hit.chunk.model,
                    "filename": hit.chunk.filename,
                    "certainty": min(1.0, max(0.0, (1.0 + hit.similarity) / 2)),
                    "loader_metadata": hit.chunk.loader_metadata,
                },
            }
            for hit in hits
        ]
