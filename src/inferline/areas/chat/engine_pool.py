"""The chat engines: model ids resolved to targets, loaded engines kept in an LRU cache, one admission gate
(bounded queue, 429) per engine."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from inferline import catalog
from inferline.areas.models.service import ModelService
from inferline.catalog import ModelEntry
from inferline.config import RemoteModel
from inferline.engines.chat import ChatEngine
from inferline.errors import NotFound, RateLimited


class TenantModel(Protocol):
    """A tenant's own model (a fine-tune): a catalog base with a LoRA adapter, or both merged in a GGUF."""

    @property
    def base(self) -> ModelEntry: ...

    @property
    def adapter_path(self) -> Path: ...

    @property
    def merged_path(self) -> Path | None: ...


class TenantModels(Protocol):
    """Where tenant models come from (the fine-tuning area)."""

    def resolve_model(self, tenant_id: str, model_id: str) -> TenantModel | None: ...


@dataclass(frozen=True)
class Target:
    """A resolved model: the id answered with and how to build its engine (cached under `key`)."""

    model_id: str
    key: tuple[Any, ...]
    build: Callable[[], ChatEngine]
    enforces_constraints: bool = True
    slots: int = 0  # generations the engine decodes at once (the model's `parallel`); 0: the pool's


class AdmissionGate:
    """At most `running` generations at once and `waiting` more queued; beyond that, 429 + Retry-After."""

    def __init__(self, running: int, waiting: int) -> None:
        self.capacity, self.waiting = running, waiting
        self.tickets = 0
        self.active = 0
        self.avg_seconds = 2.0
        self._cond = threading.Condition()

    def admit(self, *, force: bool = False) -> None:
        with self._cond:
            if not force and self.tickets >= self.capacity + self.waiting:
                retry = max(
                    1, math.ceil(self.avg_seconds * (self.tickets - self.capacity + 1) / self.capacity)
                )
                raise RateLimited(
                    f"{self.tickets} chat requests are running or queued for this model; retry in {retry} s.",
                    headers={"Retry-After": str(retry)},
                )
            self.tickets += 1

    def acquire(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.active < self.capacity)
            self.active += 1

    def release(self, seconds: float | None) -> None:
        with self._cond:
            self.active -= 1
            self.tickets -= 1
            if seconds is not None:
                self.avg_seconds = 0.8 * self.avg_seconds + 0.2 * seconds
            self._cond.notify_all()

    def abandon(self) -> None:
        """Give back a ticket whose generation never started."""
        with self._cond:
            self.tickets -= 1
            self._cond.notify_all()


class EnginePool:
    """Embedded llama.cpp models, tenants' fine-tunes (base + LoRA) and remote OpenAI-compatible servers."""

    def __init__(
        self,
        models: ModelService,
        *,
        parallel: int = 2,
        max_queue: int = 16,
        context: int = 4096,
        threads: int = 0,
        contended_threads: int = 0,
        max_models: int = 3,
        remote: dict[str, RemoteModel] | None = None,
        tenant_models: TenantModels,
    ) -> None:
        self.models = models
        self.parallel, self.max_queue, self.context, self.threads = parallel, max_queue, context, threads
        self.contended_threads = contended_threads
        self.max_models = max_models
        self.remote = dict(remote or {})
        self.tenant_models = tenant_models
        self._engines: dict[tuple[Any, ...], ChatEngine] = {}
        self._gates: dict[tuple[Any, ...], AdmissionGate] = {}
        self._lock = threading.Lock()

    def resolve(self, tenant_id: str, model_id: str | None) -> Target:
        """The engine target for `model_id` (default: the default chat model); 404 listing the choices.

        Aliases resolve to their model; a model the models file restricts to other tenants is not found."""
        if model_id is not None:
            model_id = self.models.canonical(model_id, "chat")
        if model_id is not None and model_id in self.remote and self.models.allowed(model_id, tenant_id):
            return self._remote_target(model_id)
        try:
            entry = self.models.resolve(model_id, "chat", tenant_id)
        except NotFound:
            found = self.tenant_models.resolve_model(tenant_id, model_id) if model_id is not None else None
            if found is not None and model_id is not None:  # a tenant's fine-tune: merged, or base + adapter
                if found.merged_path is not None:
                    return self._local_target(model_id, found.base, (), gguf=found.merged_path)
                return self._local_target(model_id, found.base, (found.adapter_path,))
            remote = [r for r in self.remote if self.models.allowed(r, tenant_id)]
            if model_id is None and remote:
                return self._remote_target(remote[0])
            names = [e.id for e in self.models.installed("chat", tenant_id)] + remote
            if not names:
                raise NotFound(
                    "No chat model is installed. Run `inferline models install`.", pointer="/model"
                ) from None
            raise NotFound(
                f"Model {model_id!r} is not available; available chat models: {', '.join(names)}.",
                pointer="/model",
            ) from None
        return self._local_target(entry.id, entry, ())

    def _local_target(
        self, model_id: str, entry: ModelEntry, adapters: tuple[Path, ...], gguf: Path | None = None
    ) -> Target:
        """`entry` on llama.cpp with `adapters`; `gguf` replaces its weights file (a merged fine-tune)."""
        gguf = gguf or catalog.model_dir(self.models.models_dir, entry) / entry.main_file
        settings = self.models.settings(entry.id)  # per-model settings (models file, `models add --set`)
        parallel = settings.parallel or self.parallel

        def build() -> ChatEngine:
            from inferline.engines.llamacpp_chat import LlamaCppChatEngine

            context = settings.context or self.context
            return LlamaCppChatEngine(
                entry.id,
                gguf,
                adapters,
                parallel=parallel,
                context=min(context, entry.context_length or context),
                threads=settings.threads or self.threads,
                contended_threads=self.contended_threads,
                chat_template=settings.chat_template,
                gpu_layers=settings.llama_gpu_layers(),
            )

        key = ("llamacpp", str(gguf), tuple(str(a) for a in adapters))
        return Target(model_id, key, build, slots=parallel)

    def _remote_target(self, model_id: str) -> Target:
        cfg = self.remote[model_id]

        def build() -> ChatEngine:
            from inferline.engines.openai_compat_chat import OpenAICompatChatEngine

            return OpenAICompatChatEngine(
                model_id, cfg.url, cfg.model or model_id, api_key=cfg.api_key, timeout=cfg.timeout_seconds
            )

        return Target(model_id, ("remote", cfg.url, model_id), build, enforces_constraints=False)

    def engine(self, target: Target) -> ChatEngine:
        """The target's engine; beyond `max_models` the least recently used idle engines are unloaded."""
        evicted = []
        with self._lock:
            engine = self._engines.pop(target.key, None) or target.build()
            self._engines[target.key] = engine  # most recently used last
            for key in list(self._engines)[:-1]:
                if len(self._engines) <= self.max_models:
                    break
                gate = self._gates.get(key)
                if gate is None or gate.tickets == 0:  # never unload an engine a request holds
                    evicted.append(self._engines.pop(key))
        for old in evicted:
            old.close()
        return engine

    def default_engine(self) -> ChatEngine | None:
        """The default chat model's engine when it runs in this process (for the start-up warm-up); None when
        no chat model is installed here."""
        try:
            entry = self.models.default("chat")
        except NotFound:
            return None
        return self.engine(self._local_target(entry.id, entry, ()))

    def gate(self, target: Target) -> AdmissionGate:
        """The target's admission gate (remote servers admit four times as many running requests)."""
        with self._lock:
            gate = self._gates.get(target.key)
            if gate is None:
                local = target.key[0] == "llamacpp"
                running = (target.slots or self.parallel) if local else self.parallel * 4
                gate = self._gates[target.key] = AdmissionGate(running, self.max_queue)
            return gate

    def loaded(self) -> list[tuple[Any, ...]]:
        """Engine keys currently held, least recently used first."""
        with self._lock:
            return list(self._engines)

    def in_flight(self) -> int:
        """Requests admitted and not finished (running or queued), over all models."""
        with self._lock:
            return sum(g.tickets for g in self._gates.values())

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()
