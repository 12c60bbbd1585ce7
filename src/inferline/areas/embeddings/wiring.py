"""Builds the embeddings area: the default ONNX embedder and remote OpenAI-compatible embedding models."""

from __future__ import annotations

from inferline import catalog
from inferline.areas.embeddings.service import EmbeddingsService
from inferline.areas.models.service import ModelService
from inferline.config import Settings
from inferline.engines.embeddings import EmbeddingEngine
from inferline.engines.onnx_embeddings import OnnxEmbeddingEngine


def build_embeddings(settings: Settings, models: ModelService) -> EmbeddingsService:
    """Text embeddings for the OpenAI endpoint, bucket ingestion and similarity search."""
    return EmbeddingsService(
        build_embedder(settings),
        models,
        settings.embedding_aliases.split(","),
        remote=build_remote_embedders(settings),
    )


def build_embedder(settings: Settings) -> EmbeddingEngine:
    """The default embedding model on onnxruntime; it loads on first use."""
    entry = catalog.find(settings.embedding_model)
    return OnnxEmbeddingEngine(
        entry.id,
        catalog.model_dir(settings.models_dir, entry),
        dimensions=int(entry.options.get("dimensions", 384)),  # type: ignore[call-overload]
        max_tokens=entry.context_length,
    )


def build_remote_embedders(settings: Settings) -> dict[str, EmbeddingEngine]:
    """Embedding models routed to OpenAI-compatible servers (`INFERLINE_REMOTE_EMBEDDING_MODELS`)."""
    from inferline.engines.openai_compat_embeddings import OpenAICompatEmbeddingEngine

    return {
        model_id: OpenAICompatEmbeddingEngine(
            model_id,
            remote.url,
            upstream_model=remote.model,
            api_key=remote.api_key,
            timeout_seconds=remote.timeout_seconds,
            max_tokens=remote.max_tokens,
            dimensions=remote.dimensions,
        )
        for model_id, remote in settings.remote_embedding_models.items()
    }
