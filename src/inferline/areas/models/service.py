"""The models this server can run: packaged (the catalog), registered (the database) and remote, with the
models file's per-model settings, aliases and tenant restrictions, as the spec's `ModelMetadata`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from inferline import catalog
from inferline.areas.models.cache import TTLCache
from inferline.areas.models.config import ModelSettings
from inferline.areas.models.registry import ModelRegistry, Registered
from inferline.catalog import ModelEntry, ModelKind
from inferline.config import RemoteModel
from inferline.errors import NotFound, model_not_installed
from inferline.stores.db import Database

REGISTRY_TTL_SECONDS = 1.0  # how long a read of the registry serves before the database is asked again
Request = TypeVar("Request", bound=BaseModel)


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


def remote_metadata(model_id: str, kind: ModelKind, remote: RemoteModel) -> dict[str, Any]:
    """`ModelMetadata` of a model served by a remote OpenAI-compatible server."""
    return {
        "id": model_id,
        "object": "model",
        "created": "2026-11-01T00:00:00Z",
        "owned_by": "remote",
        "organization": model_id.split("/", 1)[0] if "/" in model_id else "remote",
        "context_length": remote.max_tokens,
        "parameters": 0,
        "parameters_str": None,
        "languages": ["en"],
        "license": "unknown",
        "tier": "unlisted",
        "task": "text-generation" if kind == "chat" else "feature-extraction",
        "description": f"Served by a remote OpenAI-compatible server ({remote.model or model_id}).",
        "base_model": None,
        "is_fine_tunable": False,
        "is_vision_supported": False,
        "max_completion_tokens": None,
        "recommended_for_assistants": kind == "chat",
        "regions": ["remote"],
        "service_tiers": ["default"],
    }


def _human(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


@dataclass(frozen=True)
class Configured:
    """What the models file (or `INFERLINE_REMOTE_*_MODELS`) says about one model id."""

    id: str
    kind: ModelKind
    settings: ModelSettings
    aliases: tuple[str, ...] = ()
    tenants: frozenset[str] | None = None  # None: every tenant
    remote: RemoteModel | None = None


@dataclass(frozen=True)
class ModelRow:
    """One line of `inferline models list`."""

    id: str
    kind: ModelKind
    source: str
    size: int | None
    quantization: str | None
    state: str  # installed | loaded | remote | missing | available


class ModelService:
    """Answers which models exist and are installed, resolves names (ids and aliases) for a tenant, picks the
    default of each kind and knows each model's settings."""

    def __init__(
        self,
        models_dir: Path,
        db: Database,
        profile: str = "default",
        default_chat: str | None = None,
        configured: tuple[Configured, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.models_dir = models_dir
        self.clock = clock  # what the registry read's lifetime is measured with
        self.registry = ModelRegistry(db, models_dir)
        self.profile = profile
        self.default_chat = default_chat
        self.configured = {c.id: c for c in configured}
        self._cache: tuple[float, list[Registered]] | None = None
        self._lock = threading.Lock()
        self._generation = 0  # bumped by `forget_cache`: a read started before it is not kept
        self._used = 0.0  # when `registered` was last asked (monotonic)
        # tenant -> its models list (installed files and the registry, read at most every TTL per tenant)
        self._listed: TTLCache[str | None, list[dict[str, Any]]] = TTLCache(REGISTRY_TTL_SECONDS)

    # ---- what exists -------------------------------------------------------------------------------------
    def registered(self) -> list[Registered]:
        """The registry, re-read from the database at most every `REGISTRY_TTL_SECONDS` (API processes keep
        it fresh in the background while it is in use: `refresh`)."""
        with self._lock:
            self._used = now = self.clock()
            if self._cache is not None and now - self._cache[0] <= REGISTRY_TTL_SECONDS:
                return self._cache[1]
            generation = self._generation
        return self._read(generation)

    def refresh(self, idle_seconds: float) -> None:
        """Re-read the registry when it was used in the last `idle_seconds` (`ops.cache_refresh`, every half
        lifetime, as the key cache): chat requests arriving a second or more apart each waited for this query
        (0.2-0.9 ms of the time to first token on the 2-core machine)."""
        with self._lock:
            if self.clock() - self._used > idle_seconds:
                return
            generation = self._generation
        self._read(generation)

    def _read(self, generation: int) -> list[Registered]:
        """Read the registry now; kept unless `forget_cache` ran meanwhile (the lifetime counts from the
        moment the query started)."""
        started = self.clock()
        records = self.registry.all()
        with self._lock:
            if generation == self._generation:
                self._cache = (started, records)
        return records

    def forget_cache(self) -> None:
        """Read the registry (and the installed files) again at the next use: after a local change."""
        with self._lock:
            self._cache = None
            self._generation += 1
        self._listed.forget()

    def find(self, model_id: str) -> ModelEntry | None:
        """The packaged or registered model named `model_id` (an id or an alias), installed or not."""
        for entry in catalog.CATALOG:
            if entry.id == model_id:
                return entry
        for record in self.registered():
            if record.id == model_id:
                return record.entry()
        canonical = self._aliases().get(model_id)
        return self.find(canonical[1]) if canonical is not None else None

    def remote(self, kind: ModelKind) -> dict[str, RemoteModel]:
        """Models of `kind` served by remote OpenAI-compatible servers (settings and models file)."""
        return {c.id: c.remote for c in self.configured.values() if c.kind == kind and c.remote is not None}

    def installed(self, kind: ModelKind | None = None, tenant_id: str | None = None) -> list[ModelEntry]:
        """Installed packaged and registered models (of `kind`; those `tenant_id` may use when given)."""
        entries = catalog.installed(self.models_dir, kind)
        for record in self.registered():
            if kind is None or record.kind == kind:
                entry = record.entry()
                if catalog.is_installed(self.models_dir, entry):
                    entries.append(entry)
        return [e for e in entries if self.allowed(e.id, tenant_id)]

    def allowed(self, model_id: str, tenant_id: str | None) -> bool:
        """False when the models file restricts `model_id` to tenants other than `tenant_id`."""
        configured = self.configured.get(model_id)
        if tenant_id is None or configured is None or configured.tenants is None:
            return True
        return tenant_id in configured.tenants

    # ---- names -------------------------------------------------------------------------------------------
    def _aliases(self) -> dict[str, tuple[ModelKind, str]]:
        """alias -> (kind, model id), from the registry and the models file."""
        found = {a: (r.kind, r.id) for r in self.registered() for a in r.aliases}
        found.update({a: (c.kind, c.id) for c in self.configured.values() for a in c.aliases})
        return found

    def canonical(self, name: str, kind: ModelKind) -> str:
        """The model id `name` stands for: an alias of a `kind` model resolves to its id."""
        target = self._aliases().get(name)
        return target[1] if target is not None and target[0] == kind else name

    def resolve(self, model_id: str | None, kind: ModelKind, tenant_id: str | None = None) -> ModelEntry:
        """The installed model of `kind` named `model_id` (an id or alias; None: the default) that `tenant_id`
        may use; 404 listing the choices."""
        if model_id is None:
            return self.default(kind, tenant_id)
        available = self.installed(kind, tenant_id)
        wanted = self.canonical(model_id, kind)
        for entry in available:
            if entry.id == wanted:
                return entry
        if not available:
            raise model_not_installed(kind, model_id)
        names = ", ".join(e.id for e in available)
        raise NotFound(
            f"Model {model_id!r} is not installed. Installed {kind} models: {names}.", pointer="/model"
        )

    def default(self, kind: ModelKind, tenant_id: str | None = None) -> ModelEntry:
        """The configured default (chat), else the profile's model of `kind`, else any installed one."""
        available = self.installed(kind, tenant_id)
        default_chat = self.canonical(self.default_chat, "chat") if self.default_chat else None
        preferred = [e for e in available if kind == "chat" and e.id == default_chat]
        preferred += [e for e in available if self.profile in e.profiles] + available
        if not preferred:
            raise model_not_installed(kind)
        return preferred[0]

    # ---- settings ----------------------------------------------------------------------------------------
    def settings(self, model_id: str) -> ModelSettings:
        """The model's settings: the models file's over those given at registration (`--set`)."""
        record = next((r for r in self.registered() if r.id == model_id), None)
        base = record.settings if record is not None else ModelSettings()
        configured = self.configured.get(model_id)
        return configured.settings.over(base) if configured is not None else base

    def sampling_defaults(self, model: str | None, kind: ModelKind = "chat") -> dict[str, Any]:
        """Default sampling parameters of the chat model named `model` (None: the default model)."""
        if model is None:
            try:
                model = self.default(kind).id
            except NotFound:
                return {}
        sampling = self.settings(self.canonical(model, kind)).sampling
        return sampling.model_dump(exclude_none=True) if sampling is not None else {}

    def with_sampling_defaults(self, request: Request) -> Request:
        """`request` (a chat request with `model`) with the model's default sampling parameters filled in
        where the request gives none."""
        defaults = self.sampling_defaults(getattr(request, "model", None))
        given = request.model_fields_set
        if "max_completion_tokens" in given:
            defaults.pop("max_tokens", None)
        update = {k: v for k, v in defaults.items() if k not in given and k in type(request).model_fields}
        return request.model_copy(update=update) if update else request

    # ---- listings ----------------------------------------------------------------------------------------
    def cached_metadata(self, tenant_id: str | None) -> list[dict[str, Any]] | None:
        """`list_metadata(tenant_id)` if read less than `REGISTRY_TTL_SECONDS` ago, else None (no I/O)."""
        return self._listed.get(tenant_id)

    def list_metadata(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """Installed and remote models `tenant_id` may use (its own fine-tunes come from fine-tuning); served
        from a cache for `REGISTRY_TTL_SECONDS` per tenant (the list is shared: do not modify it)."""
        return self._listed.get_or_load(tenant_id, lambda: self._list_metadata(tenant_id))

    def _list_metadata(self, tenant_id: str | None) -> list[dict[str, Any]]:
        with self._lock:  # read the registry now: the list is then at most REGISTRY_TTL_SECONDS old
            self._cache = None
            self._generation += 1
        local = [metadata(e) for e in self.installed(tenant_id=tenant_id)]
        remote = [
            remote_metadata(model_id, kind, cfg)
            for kind in ("chat", "embeddings")
            for model_id, cfg in self.remote(kind).items()  # type: ignore[arg-type]
            if self.allowed(model_id, tenant_id)
        ]
        return local + remote

    def rows(self, loaded: set[str] | frozenset[str] = frozenset()) -> list[ModelRow]:
        """Every packaged, registered and remote model with its state, for `inferline models list`."""
        rows = []
        for entry in catalog.CATALOG:
            ok = catalog.is_installed(self.models_dir, entry)
            size = _size(catalog.model_dir(self.models_dir, entry), entry) if ok else None
            state = "loaded" if entry.id in loaded else "installed" if ok else "available"
            quantization = entry.options.get("quantization")
            rows.append(ModelRow(entry.id, entry.kind, "catalog", size, _str(quantization), state))
        for record in self.registered():
            ok = catalog.is_installed(self.models_dir, record.entry())
            state = "loaded" if record.id in loaded else "installed" if ok else "missing"
            quantization = _str(record.info.get("quantization"))
            rows.append(ModelRow(record.id, record.kind, record.source, record.size, quantization, state))
        for kind in ("chat", "embeddings"):
            for model_id, cfg in self.remote(kind).items():  # type: ignore[arg-type]
                rows.append(ModelRow(model_id, kind, cfg.url, None, None, "remote"))  # type: ignore[arg-type]
        return rows


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _size(directory: Path, entry: ModelEntry) -> int:
    return sum((directory / f.name).stat().st_size for f in entry.files if (directory / f.name).exists())
