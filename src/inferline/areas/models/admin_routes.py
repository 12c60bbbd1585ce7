"""`/v2/admin/models`: the model registry over HTTP, for `admin`-scoped keys only (`ops.guard.check_scope`
answers other keys 403 code 10010), as `inferline models list|show|add|remove` on the command line.

`POST` registers from a path on the server (or an `hf://` URI) exactly as `inferline models add` does: the
files are copied (or linked), verified against their sha256 and recorded; what the kind cannot use is a 422
naming the field.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from inferline import catalog
from inferline.areas.models.config import ModelSettings, SettingsError
from inferline.areas.models.hub import HubError
from inferline.areas.models.inspect import ModelRejected
from inferline.areas.models.registry import Registered, RegistryError
from inferline.areas.models.state import loaded_models
from inferline.catalog import ModelKind
from inferline.errors import NotFound, ValidationFailed
from inferline.web.deps import ContainerDep

router = APIRouter(prefix="/admin/models", tags=["Admin"])


class ModelRegistration(BaseModel):
    """`inferline models add` as a body."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, description="A path on the server, or hf://owner/repo[@rev][/file].")
    id: str | None = Field(default=None, description="Default: local/<name> or owner/repo.")
    kind: ModelKind | None = Field(default=None, description="Detected from the files when not given.")
    aliases: list[str] = Field(default_factory=list)
    settings: ModelSettings = Field(default_factory=ModelSettings)
    link: bool = Field(default=False, description="Link the files instead of copying them.")


def _view(record: Registered, state: str) -> dict[str, Any]:
    return {
        "id": record.id,
        "record_type": "registered_model",
        "kind": record.kind,
        "source": record.source,
        "linked": record.linked,
        "size": record.size,
        "files": list(record.files),
        "aliases": list(record.aliases),
        "settings": record.settings.model_dump(exclude_none=True),
        "info": record.info,
        "state": state,
        "created_at": record.created_at.isoformat(),
    }


@router.get("")
def list_models(container: ContainerDep) -> dict[str, Any]:
    """Every packaged, registered and remote model with its state (`inferline models list`)."""
    rows = container.models.rows(set(loaded_models(container)))
    return {
        "data": [
            {"id": r.id, "kind": r.kind, "source": r.source, "size": r.size, "quantization": r.quantization}
            | {"state": r.state}
            for r in rows
        ]
    }


@router.get("/{model_id:path}")
def show_model(model_id: str, container: ContainerDep) -> dict[str, Any]:
    """A registered model's record: files and their sha256, what the files say about themselves."""
    record = container.models.registry.get(model_id)
    if record is None:
        raise NotFound(f"No registered model is named {model_id!r}.", parameter="model_id")
    return {"data": _view(record, _state(container, record))}


@router.post("", status_code=201)
def register_model(body: ModelRegistration, container: ContainerDep) -> dict[str, Any]:
    """Register a model from the server's disk or a hub (may take as long as copying its files)."""
    try:
        record = container.models.registry.add(
            body.source,
            model_id=body.id,
            kind=body.kind,
            aliases=tuple(body.aliases),
            settings=body.settings,
            link=body.link,
        )
    except (ModelRejected, HubError) as exc:
        raise ValidationFailed(str(exc), pointer="/source") from None
    except SettingsError as exc:
        raise ValidationFailed(str(exc), pointer="/settings") from None
    except RegistryError as exc:
        pointer = "/aliases" if body.aliases and "alias" in str(exc) else "/id"
        raise ValidationFailed(str(exc), pointer=pointer) from None
    container.models.forget_cache()
    return {"data": _view(record, _state(container, record))}


@router.delete("/{model_id:path}")
def remove_model(model_id: str, container: ContainerDep) -> dict[str, Any]:
    """Forget a registered model and delete its copied files (packaged models cannot be removed)."""
    if container.models.registry.get(model_id) is None and not any(e.id == model_id for e in catalog.CATALOG):
        raise NotFound(f"No registered model is named {model_id!r}.", parameter="model_id")
    try:
        record = container.models.registry.remove(model_id)
    except RegistryError as exc:
        raise ValidationFailed(str(exc), parameter="model_id") from None
    container.models.forget_cache()
    return {"data": _view(record, "removed")}


def _state(container: Any, record: Registered) -> str:
    if record.id in loaded_models(container):
        return "loaded"
    return "installed" if catalog.is_installed(container.models.models_dir, record.entry()) else "missing"
