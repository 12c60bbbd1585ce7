"""The embedding capability: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

from typing import Protocol

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
