"""Builds the embeddings area: ONNX embedders (packaged or registered) and remote OpenAI-compatible models."""

from __future__ import annotations

from inferline import catalog
from inferline.areas.embeddings.service import EmbeddingsService
from inferline.areas.models.service import ModelService
from inferline.catalog import ModelEntry
from inferline.config import RemoteModel, Settings
from inferline.engines.embeddings import EmbeddingEngine
from inferline.engines.onnx_embeddings import OnnxEmbeddingEngine


def build_embeddings(settings: Settings, models: ModelService) -> EmbeddingsService:
    """Text embeddings for the OpenAI endpoint, bucket ingestion and similarity search."""
    return EmbeddingsService(
        build_embedder(settings, models),
        models,
        settings.embedding_aliases.split(","),
        remote=build_remote_embedders(models.remote("embeddings")),
        engine_for=lambda entry: onnx_embedder(models, entry),
    )


def build_embedder(settings: Settings, models: ModelService) -> EmbeddingEngine:
    """The default embedding model (packaged or registered) on onnxruntime; it loads on first use."""
    entry = models.find(settings.embedding_model) or catalog.find(settings.embedding_model)
    return onnx_embedder(models, entry)


def onnx_embedder(models: ModelService, entry: ModelEntry) -> OnnxEmbeddingEngine:
    """An ONNX embedder for `entry` with its per-model settings (threads, device)."""
    options, settings = entry.options, models.settings(entry.id)
    return OnnxEmbeddingEngine(
        entry.id,
        catalog.model_dir(models.models_dir, entry),
        dimensions=int(options.get("dimensions", 384)),  # type: ignore[call-overload]
        max_tokens=int(options.get("max_tokens", entry.context_length)),  # type: ignore[call-overload]
        threads=settings.threads or 0,
        pooling=str(options.get("pooling", "mean")),
        device=settings.device or "cpu",
    )


def build_remote_embedders(remote: dict[str, RemoteModel]) -> dict[str, EmbeddingEngine]:
    """Embedding models routed to OpenAI-compatible servers (`INFERLINE_REMOTE_EMBEDDING_MODELS` and the
    models file)."""
    from inferline.engines.openai_compat_embeddings import OpenAICompatEmbeddingEngine

    return {
        model_id: OpenAICompatEmbeddingEngine(
            model_id,
            cfg.url,
            upstream_model=cfg.model,
            api_key=cfg.api_key,
            timeout_seconds=cfg.timeout_seconds,
            max_tokens=cfg.max_tokens,
            dimensions=cfg.dimensions,
        )
        for model_id, cfg in remote.items()
    }
