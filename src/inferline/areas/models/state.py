"""Which models this process has loaded (for `GET /ready` and `inferline models list`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _engines(obj: Any, attribute: str) -> list[Any]:
    held = getattr(obj, attribute, None)
    return list(held.values()) if isinstance(held, dict) else []


def loaded_models(container: Any) -> list[str]:
    """Ids of the local models whose weights this process holds in memory now."""
    ids: set[str] = set()
    slugs = {e.slug: e.id for e in container.models.installed()}
    chat = getattr(container.chat, "pool", container.chat)
    for key in chat.loaded():
        if key and key[0] == "llamacpp" and not key[2]:  # a base model (fine-tunes carry adapters)
            model_id = slugs.get(Path(key[1]).parent.name)
            if model_id is not None:
                ids.add(model_id)
    embedders = [container.embeddings.engine, *_engines(container.embeddings, "_engines")]
    ids.update(e.model_id for e in embedders if getattr(e, "_session", None) is not None)
    ids.update(
        e.model_id for e in _engines(container.transcription, "_engines") if getattr(e, "_model", None)
    )
    voices = getattr(container.speech, "_voices", None) or []
    ids.update(v.engine.model_id for v in voices if getattr(v.engine, "_voice", None) is not None)
    return sorted(ids)
