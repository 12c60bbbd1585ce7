"""The list of models this server can run, as the spec's `ModelMetadata`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferline import catalog
from inferline.catalog import ModelEntry, ModelKind
from inferline.errors import NotFound, model_not_installed


def metadata(entry: ModelEntry) -> dict[str, Any]:
    """`ModelMetadata` of one catalog entry."""
    return {
        "id": entry.id,
        "object": "model",
        "created": entry.created,
        "owned_by": "inferline",
        "organization": entry.organization,
        "context_length": entry.context_length,
        "parameters": entry.parameters,
        "parameters_str": _human(entry.parameters),
        "languages": list(entry.languages),
        "license": entry.license,
        "tier": entry.tier,
        "task": entry.task,
        "description": entry.description,
        "base_model": None,
        "is_fine_tunable": entry.fine_tunable,
        "is_vision_supported": False,
        "max_completion_tokens": None,
        "recommended_for_assistants": entry.kind == "chat",
        "regions": ["local"],
        "service_tiers": ["default"],
    }


def _human(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


class ModelService:
    """Answers which models are installed and picks the default of each kind."""

    def __init__(self, models_dir: Path, profile: str = "default", default_chat: str | None = None) -> None:
        self.models_dir = models_dir
        self.profile = profile
        self.default_chat = default_chat

    def installed(self, kind: ModelKind | None = None) -> list[ModelEntry]:
        return catalog.installed(self.models_dir, kind)

    def list_metadata(self) -> list[dict[str, Any]]:
        """The installed models (a tenant's own fine-tunes are listed by the fine-tuning area)."""
        return [metadata(e) for e in self.installed()]

    def resolve(self, model_id: str | None, kind: ModelKind) -> ModelEntry:
        """The installed model of `kind` named `model_id` (or the default); 404 listing the choices."""
        available = self.installed(kind)
        if model_id is None:
            return self.default(kind)
        for entry in available:
            if entry.id == model_id:
                return entry
        if not available:
            raise model_not_installed(kind, model_id)
        names = ", ".join(e.id for e in available)
        raise NotFound(
            f"Model {model_id!r} is not installed. Installed {kind} models: {names}.", pointer="/model"
        )

    def default(self, kind: ModelKind) -> ModelEntry:
        """The configured default (chat), else the profile's model of `kind`, else any installed one."""
        available = self.installed(kind)
        preferred = [e for e in available if kind == "chat" and e.id == self.default_chat]
        preferred += [e for e in available if self.profile in e.profiles] + available
        if not preferred:
            raise model_not_installed(kind)
        return preferred[0]
