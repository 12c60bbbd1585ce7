"""Builds the models area: the catalog, the registry and the models file (`INFERLINE_MODELS_FILE`).

The file is read and checked here, at start-up: its local `source`s not registered yet are registered (copied
or linked and verified, once), and every key is checked against what the model's engine honours, so a
setting that cannot be honoured stops the process with a message naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from inferline import catalog
from inferline.areas.models.config import (
    ALIAS_KINDS,
    TENANT_KINDS,
    ModelSettings,
    ModelSpec,
    SettingsError,
    check,
    load_file,
)
from inferline.areas.models.registry import ModelRegistry, Registered
from inferline.areas.models.service import Configured, ModelService
from inferline.catalog import ModelKind
from inferline.config import RemoteModel, Settings
from inferline.stores.db import Database

log = logging.getLogger("inferline.models")


def build_models(settings: Settings, db: Database) -> ModelService:
    """The model service of this process, with the models file applied."""
    registry = ModelRegistry(db, settings.models_dir)
    path = settings.models_file
    specs = load_file(Path(path)).models if path else []
    configured = configure(
        specs, registry, settings.remote_chat_models, settings.remote_embedding_models, path
    )
    return ModelService(
        settings.models_dir,
        db,
        profile=settings.profile,
        default_chat=settings.chat_model,
        configured=configured,
    )


def configure(
    specs: list[ModelSpec],
    registry: ModelRegistry,
    remote_chat: dict[str, RemoteModel],
    remote_embeddings: dict[str, RemoteModel],
    path: object = None,
) -> tuple[Configured, ...]:
    """Check the file's entries (registering their sources when needed) and the remote settings, and return
    what each model id is configured with."""
    where = f"models file {path}"
    out: dict[str, Configured] = {}
    for kind, remote in (("chat", remote_chat), ("embeddings", remote_embeddings)):
        for model_id, cfg in remote.items():
            out[model_id] = Configured(model_id, kind, ModelSettings(), remote=cfg)  # type: ignore[arg-type]
    packaged = {e.id: e for e in catalog.CATALOG}
    registered = {r.id: r for r in registry.all()}
    for record in registered.values():
        check(record.id, record.kind, False, record.settings, "registry (see `inferline models show`)")
    seen: set[str] = set()
    for spec in specs:
        if spec.id in seen:
            raise SettingsError(f"{where}: {spec.id} is listed twice")
        seen.add(spec.id)
        if spec.remote is not None:
            kind = _remote_kind(spec, packaged, registered, out, where)
            settings = spec.settings()
        else:
            kind, record = _local(spec, packaged, registered, registry, where)
            settings = spec.settings().over(record.settings) if record is not None else spec.settings()
        check(spec.id, kind, spec.remote is not None, spec.settings(), where)
        if spec.tenants is not None and kind not in TENANT_KINDS:
            raise SettingsError(
                f"{where}: {spec.id}: `tenants` is honoured for {', '.join(TENANT_KINDS)} models"
            )
        if spec.aliases and kind not in ALIAS_KINDS:
            raise SettingsError(
                f"{where}: {spec.id}: `aliases` are honoured for {', '.join(ALIAS_KINDS)} models"
            )
        tenants = frozenset(spec.tenants) if spec.tenants is not None else None
        out[spec.id] = Configured(spec.id, kind, settings, tuple(spec.aliases), tenants, spec.remote)
    _check_aliases(out, packaged, registered, where)
    return tuple(out.values())


def _remote_kind(
    spec: ModelSpec,
    packaged: dict[str, object],
    registered: dict[str, Registered],
    out: dict[str, Configured],
    where: str,
) -> ModelKind:
    if spec.source is not None:
        raise SettingsError(f"{where}: {spec.id}: a model has a `source` or a `remote`, not both")
    if spec.kind not in ("chat", "embeddings"):
        raise SettingsError(f"{where}: {spec.id}: a remote model needs `kind: chat` or `kind: embeddings`")
    if spec.id in packaged or spec.id in registered:
        raise SettingsError(f"{where}: {spec.id} is a local model; a remote one needs another id")
    if spec.id in out:
        raise SettingsError(f"{where}: {spec.id} is also in INFERLINE_REMOTE_{spec.kind.upper()}_MODELS")
    return spec.kind


def _local(
    spec: ModelSpec,
    packaged: dict[str, catalog.ModelEntry],
    registered: dict[str, Registered],
    registry: ModelRegistry,
    where: str,
) -> tuple[ModelKind, Registered | None]:
    record = registered.get(spec.id)
    if spec.id in packaged:
        if spec.source is not None:
            raise SettingsError(f"{where}: {spec.id} is a packaged model; it takes no `source`")
        kind = packaged[spec.id].kind
    elif record is not None:
        kind = record.kind
    elif spec.source is not None:
        log.info("registering %s from %s (models file)", spec.id, spec.source)
        try:
            record = registry.add(
                spec.source, model_id=spec.id, kind=spec.kind, link=spec.link, say=log.info, exist_ok=True
            )
        except Exception as exc:
            record = registry.get(spec.id)  # registered meanwhile by a process elsewhere (another host)
            if record is None:
                raise SettingsError(f"{where}: {spec.id}: cannot register {spec.source}: {exc}") from None
        registered[spec.id] = record
        kind = record.kind
    else:
        raise SettingsError(
            f"{where}: {spec.id} is neither packaged nor registered; give it a `source` or a `remote`"
        )
    if spec.kind is not None and spec.kind != kind:
        raise SettingsError(f"{where}: {spec.id} is a {kind} model, not {spec.kind}")
    return kind, record


def _check_aliases(
    out: dict[str, Configured],
    packaged: dict[str, catalog.ModelEntry],
    registered: dict[str, Registered],
    where: str,
) -> None:
    owners: dict[str, str] = {name: name for name in (*packaged, *registered, *out)}
    for record in registered.values():
        for alias in record.aliases:
            owners[alias] = record.id
    for configured in out.values():
        for alias in configured.aliases:
            owner = owners.get(alias)
            if owner is not None and owner != configured.id:
                what = "a model id" if owner == alias else f"an alias of {owner}"
                raise SettingsError(f"{where}: {configured.id}: alias {alias!r} is already {what}")
            owners[alias] = configured.id
