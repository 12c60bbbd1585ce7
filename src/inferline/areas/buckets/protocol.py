"""Wire models of the bucket-embedding endpoints (spec `EmbeddingBucketRequest`, `EmbeddingUrlRequest`, …)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from inferline.areas.buckets.ingest import EmbedSettings


class EmbeddingBucketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket_name: str = Field(min_length=1)
    document_chunk_size: int = 1024
    document_chunk_overlap_size: int = 512
    embedding_model: str | None = Field(
        default=None, description="Default: the server's embedding model (Telnyx names are aliases of it)."
    )
    loader: str = "default"

    def settings(self) -> EmbedSettings:
        return EmbedSettings(
            self.embedding_model, self.document_chunk_size, self.document_chunk_overlap_size, self.loader
        )


class EmbeddingUrlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket_name: str = Field(min_length=1)
    url: str = Field(min_length=1)


class EmbeddingSimilaritySearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket_name: str = Field(min_length=1)
    query: str
    num_of_docs: int = 3
    embedding_model: str | None = Field(
        default=None,
        description="Inferline extension: the model the bucket must have been embedded with (its id or an "
        "alias); another model is a 400. Default: the bucket's own model.",
    )


class Data(BaseModel):
    """`{"data": …}`, the envelope of every `/ai/embeddings*` response."""

    data: Any
