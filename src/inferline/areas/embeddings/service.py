"""OpenAI-compatible text embeddings: model resolution, batching, dimension truncation, float/base64 encoding.

Model rule: the installed embedding model ids (packaged or registered) and their aliases are accepted, each
served by its own engine, and so are the names listed in `INFERLINE_EMBEDDING_ALIASES` (by default Telnyx's
`thenlper/gte-large` and `intfloat/multilingual-e5-large`, whose weights are not packaged), which the default
model serves. Responses name the model actually used.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np

from inferline.areas.models.service import ModelService
from inferline.catalog import ModelEntry
from inferline.engines.embeddings import EmbeddingEngine, ImmediateEmbedding, WouldWait
from inferline.engines.onnx_embeddings import normalise
from inferline.errors import NotFound, UnsupportedParameter, ValidationFailed, model_not_installed
from inferline.ops import context as ops_context

MAX_INPUTS = 2048
EncodingFormat = Literal["float", "base64"]


@dataclass(frozen=True)
class EmbeddingResult:
    model: str
    vectors: np.ndarray
    prompt_tokens: int


class EmbeddingsService:
    """Embeds texts with the engine serving the requested model name."""

    def __init__(
        self,
        engine: EmbeddingEngine,
        models: ModelService,
        aliases: list[str],
        remote: dict[str, EmbeddingEngine] | None = None,
        engine_for: Callable[[ModelEntry], EmbeddingEngine] | None = None,
    ) -> None:
        self.engine = engine
        self.models = models
        self.remote = dict(remote or {})  # model id -> engine on an OpenAI-compatible server
        self.aliases = [a for a in aliases if a and a != engine.model_id and a not in self.remote]
        self.engine_for = engine_for  # builds the engine of another installed model
        self._engines: dict[str, EmbeddingEngine] = {}
        self._lock = threading.Lock()

    def accepted_names(self, tenant_id: str | None = None) -> list[str]:
        """The names `tenant_id` may ask for (None: every tenant's)."""
        default = self.engine.model_id
        names = [default, *self.aliases] if self.models.allowed(default, tenant_id) else []
        names += [e.id for e in self.models.installed("embeddings", tenant_id) if e.id != default]
        return names + [r for r in self.remote if self.models.allowed(r, tenant_id)]

    def resolve(
        self, model: str | None, pointer: str = "/model", tenant_id: str | None = None
    ) -> EmbeddingEngine:
        """The engine for `model` (None: the default) that `tenant_id` may use (None: no restriction); 404
        naming the accepted models otherwise. A model the models file keeps for other tenants is answered
        exactly as an unknown one."""
        if model is not None:
            model = self.models.canonical(model, "embeddings")
        engine = self._engine(model)
        if engine is not None and self.models.allowed(engine.model_id, tenant_id):
            return engine
        if model is None:
            raise model_not_installed("embeddings", pointer=pointer)
        names = ", ".join(self.accepted_names(tenant_id)) or "none"
        raise NotFound(f"Embedding model {model!r} is not available. Available: {names}.", pointer=pointer)

    def _engine(self, model: str | None) -> EmbeddingEngine | None:
        if model is not None and model in self.remote:
            return self.remote[model]
        if model is None or model == self.engine.model_id or model in self.aliases:
            return self.engine
        entry = next((e for e in self.models.installed("embeddings") if e.id == model), None)
        if entry is None or self.engine_for is None:
            return None
        with self._lock:
            if entry.id not in self._engines:
                self._engines[entry.id] = self.engine_for(entry)
            return self._engines[entry.id]

    def embed(
        self,
        texts: list[str],
        model: str | None = None,
        dimensions: int | None = None,
        tenant_id: str | None = None,
        *,
        now: bool = False,
    ) -> EmbeddingResult:
        """Embed `texts` (each within the model's token limit), optionally truncated to `dimensions`; `now`:
        in the calling thread at once (`ImmediateEmbedding`), else `WouldWait` before any model work."""
        engine = self.resolve(model, tenant_id=tenant_id)
        at_once = engine if now and isinstance(engine, ImmediateEmbedding) else None
        if now and (at_once is None or not at_once.ready_now()):
            raise WouldWait(f"{engine.model_id} cannot embed at once")
        if not texts:
            raise ValidationFailed("input: must not be empty", pointer="/input")
        if len(texts) > MAX_INPUTS:
            raise ValidationFailed(f"input: at most {MAX_INPUTS} items per request", pointer="/input")
        for i, text in enumerate(texts):
            if not text:
                raise ValidationFailed("input: strings must not be empty", pointer=f"/input/{i}")
        if dimensions is not None and not 1 <= dimensions <= engine.dimensions:
            raise UnsupportedParameter(
                f"dimensions must be between 1 and {engine.dimensions} for {engine.model_id}.",
                pointer="/dimensions",
            )
        counts = engine.count_tokens(texts)
        for i, count in enumerate(counts):
            if count > engine.max_tokens:
                raise UnsupportedParameter(
                    f"input[{i}] has {count} tokens; {engine.model_id} takes at most {engine.max_tokens}.",
                    pointer=f"/input/{i}" if len(texts) > 1 else "/input",
                )
        vectors = at_once.embed_now(texts) if at_once is not None else engine.embed(texts)
        if dimensions is not None and dimensions < engine.dimensions:
            vectors = normalise(vectors[:, :dimensions])
        return EmbeddingResult(engine.model_id, vectors, sum(counts))

    def create(
        self,
        inputs: str | list[str],
        model: str,
        *,
        dimensions: int | None = None,
        encoding_format: EncodingFormat = "float",
        tenant_id: str | None = None,
        now: bool = False,
    ) -> dict[str, Any]:
        """The OpenAI `CreateEmbeddingResponse` body (`now`: see `embed`); float embeddings are numpy arrays,
        for `web.vector_json.VectorJSONResponse`."""
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        result = self.embed(texts, model, dimensions, tenant_id, now=now)
        data = [
            {"object": "embedding", "index": i, "embedding": encode(vector, encoding_format)}
            for i, vector in enumerate(result.vectors)
        ]
        usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
        ops_context.note("embedding_tokens", result.prompt_tokens, result.model)  # metered per tenant and key
        ops_context.note("embedding_texts", len(texts), result.model)
        return {"object": "list", "data": data, "model": result.model, "usage": usage}

    def list_models(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """Installed embedding models `tenant_id` may use, OpenAI `Model` objects (`created` in unix
        seconds)."""
        return [
            {
                "id": entry.id,
                "object": "model",
                "created": int(datetime.fromisoformat(entry.created.replace("Z", "+00:00")).timestamp()),
                "owned_by": entry.organization,
            }
            for entry in self.models.installed("embeddings", tenant_id)
        ] + [
            {"id": name, "object": "model", "created": 0, "owned_by": name.partition("/")[0] or "remote"}
            for name in self.remote
            if self.models.allowed(name, tenant_id)
        ]


def encode(vector: np.ndarray, encoding_format: EncodingFormat) -> np.ndarray | str:
    """The float32 array (written as JSON numbers by `web.vector_json.VectorJSONResponse`), or base64 of its
    little-endian bytes (what the OpenAI SDKs decode)."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return np.ascontiguousarray(vector, dtype=np.float32)
