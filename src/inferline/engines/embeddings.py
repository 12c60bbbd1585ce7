"""The embedding capability: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class EmbeddingEngine(Protocol):
    """A sentence-embedding model. Implementations load lazily, on the first call."""

    model_id: str
    dimensions: int
    max_tokens: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text, shape `(len(texts), dimensions)`.

        Texts longer than `max_tokens` are truncated to their first `max_tokens` tokens.
        """
        ...

    def count_tokens(self, texts: list[str]) -> list[int]:
        """How many model tokens each text has, special tokens included, before any truncation."""
        ...


class WouldWait(Exception):
    """`embed_now` would have to wait: for the model to load, for a running batch, or for chat decoding."""


@runtime_checkable
class ImmediateEmbedding(Protocol):
    """An engine that can also embed in the calling thread at once, without waiting (a local model): the
    HTTP loop runs a lone request's text with it instead of handing it to a worker thread and back."""

    def ready_now(self) -> bool:
        """Whether `embed_now` would run at once (loaded, no batch running, nothing to yield to)."""
        ...

    def embed_now(self, texts: list[str]) -> np.ndarray:
        """`embed` in the calling thread, as a batch of its own; `WouldWait` where it would have to wait."""
        ...
