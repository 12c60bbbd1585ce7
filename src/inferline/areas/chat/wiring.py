"""Builds the chat area: embedded llama.cpp per model, remote OpenAI-compatible servers, tenant fine-tunes."""

from __future__ import annotations

from inferline.areas.chat.engine_pool import EnginePool, TenantModels
from inferline.areas.chat.service import ChatService, DocumentSearch
from inferline.areas.models.service import ModelService
from inferline.config import Settings
from inferline.engines.cpu import SHARES
from inferline.stores.db import Database


def build_chat(
    settings: Settings,
    models: ModelService,
    search: DocumentSearch,
    tenant_models: TenantModels,
    db: Database | None = None,
) -> ChatService:
    """Chat completions; `search` serves the `retrieval` tool, `tenant_models` the tenants' fine-tunes; `db`
    meters the tokens of background generations."""
    SHARES.yield_ratio = settings.background_yield  # how batch engines yield to chat decoding
    pool = EnginePool(
        models,
        parallel=settings.chat_parallel,
        max_queue=settings.chat_max_queue,
        context=settings.chat_context,
        threads=settings.chat_threads,
        contended_threads=settings.chat_contended_threads,
        max_models=settings.chat_max_models,
        remote=models.remote("chat"),  # INFERLINE_REMOTE_CHAT_MODELS and the models file
        tenant_models=tenant_models,
    )
    return ChatService(pool, search, db, stream_interval=settings.chat_stream_interval_ms / 1000)
