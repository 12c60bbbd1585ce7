"""Chat completions: model resolution, admission (bounded queue, 429), generation threads, telemetry.

Every generation runs in its own thread against a `ChatEngine` and emits OpenAI chunks. Streamed requests
forward them as SSE; the others are assembled into a `chat.completion`. Tools, beam search and sampling
`best_of` are computed whole and then emitted as chunks, so they stream too. A consumer that goes away sets
the job's cancel flag and the engine stops at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from inferline import catalog
from inferline.areas.chat.beam import beam_search
from inferline.areas.chat.output import (
    Assembler,
    chunks_of,
    completion,
    completion_id,
    satisfies,
    sse,
    tool_message,
)
from inferline.areas.chat.planning import (
    Plan,
    last_user_text,
    plan,
    tool_constraint,
    tool_prompt,
    with_system,
)
from inferline.areas.models.service import ModelService
from inferline.catalog import ModelEntry
from inferline.config import RemoteModel
from inferline.engines.chat import ChatEngine, ChatEngineError, EngineRequest
from inferline.errors import (
    BadRequest,
    EngineUnavailable,
    InferlineError,
    NotFound,
    RateLimited,
    UnsupportedParameter,
    UpstreamError,
    UpstreamTimeout,
)

log = logging.getLogger("inferline.chat")


# (tenant_id, model_id) -> (base catalog entry, LoRA adapter files) for tenant models such as fine-tunes.
class DocumentSearch(Protocol):
    """Similarity search over a tenant's embedded bucket (the buckets area), for the `retrieval` tool."""

    def similarity_search(
        self, tenant_id: str, bucket_name: str, query: str, num_docs: int = 3
    ) -> list[dict[str, Any]]: ...


class TenantModel(Protocol):
    """A tenant's own model (a fine-tune): a catalog base with a LoRA adapter."""

    @property
    def base(self) -> ModelEntry: ...

    @property
    def adapter_path(self) -> Path: ...


class TenantModels(Protocol):
    """Where tenant models come from (the fine-tuning area)."""

    def resolve_model(self, tenant_id: str, model_id: str) -> TenantModel | None: ...


Emit = Callable[[dict[str, Any]], bool]


@dataclass
class Telemetry:
    """Timing of one request: queueing, time to first token, decode speed (sent as `x-*` headers)."""

    admitted: float = field(default_factory=time.perf_counter)
    started: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    completion_tokens: int = 0

    def token(self) -> None:
        now = time.perf_counter()
        if self.first_token is None:
            self.first_token = now
        self.last_token = now

    @property
    def queue_ms(self) -> float:
        return ((self.started or time.perf_counter()) - self.admitted) * 1000

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.admitted) * 1000

    @property
    def tokens_per_second(self) -> float | None:
        if self.first_token is None or self.last_token is None or self.completion_tokens < 2:
            return None
        span = self.last_token - self.first_token
        return (self.completion_tokens - 1) / span if span > 0 else None

    def as_dict(self) -> dict[str, float | None]:
        tps = self.tokens_per_second
        ttft = self.ttft_ms
        return {
            "queue_ms": round(self.queue_ms, 1),
            "time_to_first_token_ms": None if ttft is None else round(ttft, 1),
            "tokens_per_second": None if tps is None else round(tps, 2),
        }

    def headers(self) -> dict[str, str]:
        values = self.as_dict()
        names = {
            "queue_ms": "x-queue-time-ms",
            "time_to_first_token_ms": "x-time-to-first-token-ms",
            "tokens_per_second": "x-tokens-per-second",
        }
        return {names[k]: str(v) for k, v in values.items() if v is not None}


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


@dataclass(frozen=True)
class Target:
    """A resolved model: the id answered with and how to build its engine (cached under `key`)."""

    model_id: str
    key: tuple[Any, ...]
    build: Callable[[], ChatEngine]
    enforces_constraints: bool = True


class _Job:
    """One generation thread feeding an asyncio queue; `cancel()` stops the engine at the next token."""

    def __init__(self, loop: asyncio.AbstractEventLoop, telemetry: Telemetry) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.telemetry = telemetry

    def emit(self, chunk: dict[str, Any]) -> bool:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, ("chunk", chunk))
        return self.cancelled.is_set()

    def finish(self, error: BaseException | None) -> None:
        item = ("error", error) if error is not None else ("end", None)
        with contextlib.suppress(RuntimeError):  # the loop is gone (server shutting down)
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def cancel(self) -> None:
        self.cancelled.set()

    async def chunks(self, disconnected: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[dict]:
        checked = time.monotonic()
        while True:
            if disconnected is None:
                kind, value = await self.queue.get()
            else:
                try:
                    kind, value = await asyncio.wait_for(self.queue.get(), timeout=0.5)
                except TimeoutError:
                    kind, value = "idle", None
                if time.monotonic() - checked >= 0.5:
                    checked = time.monotonic()
                    if await disconnected():
                        self.cancel()
                        raise BadRequest("The client disconnected; generation cancelled.")
                if kind == "idle":
                    continue
            if kind == "chunk":
                yield value
            elif kind == "error":
                raise value
            else:
                return


@dataclass
class ChatStream:
    """A started streamed completion: SSE lines to send, and the telemetry known at its first token."""

    events: AsyncIterator[str]
    telemetry: Telemetry


class ChatService:
    """Serves chat completions on embedded llama.cpp models and remote OpenAI-compatible servers."""

    def __init__(
        self,
        models: ModelService,
        *,
        parallel: int = 2,
        max_queue: int = 16,
        context: int = 4096,
        threads: int = 0,
        max_models: int = 3,
        remote: dict[str, RemoteModel] | None = None,
        search: DocumentSearch,
        tenant_models: TenantModels,
    ) -> None:
        self.models = models
        self.parallel, self.max_queue, self.context, self.threads = parallel, max_queue, context, threads
        self.max_models = max_models
        self.remote = dict(remote or {})
        self.search = search
        self.tenant_models = tenant_models
        self._engines: dict[tuple[Any, ...], ChatEngine] = {}
        self._gates: dict[tuple[Any, ...], AdmissionGate] = {}
        self._lock = threading.Lock()

    # ---- models and engines ----------------------------------------------------------------------------
    def resolve(self, tenant_id: str, model_id: str | None) -> Target:
        """The engine target for `model_id` (default: the default chat model); 404 listing the choices."""
        if model_id is not None and model_id in self.remote:
            return self._remote_target(model_id)
        try:
            entry = self.models.resolve(model_id, "chat")
        except NotFound:
            found = self.tenant_models.resolve_model(tenant_id, model_id) if model_id is not None else None
            if found is not None and model_id is not None:  # a tenant's fine-tune: base + adapter
                return self._local_target(model_id, found.base, (found.adapter_path,))
            if model_id is None and self.remote:
                return self._remote_target(next(iter(self.remote)))
            names = [e.id for e in self.models.installed("chat")] + list(self.remote)
            if not names:
                raise NotFound(
                    "No chat model is installed. Run `inferline models install`.", pointer="/model"
                ) from None
            raise NotFound(
                f"Model {model_id!r} is not available; available chat models: {', '.join(names)}.",
                pointer="/model",
            ) from None
        return self._local_target(entry.id, entry, ())

    def _local_target(self, model_id: str, entry: ModelEntry, adapters: tuple[Path, ...]) -> Target:
        gguf = catalog.model_dir(self.models.models_dir, entry) / entry.main_file

        def build() -> ChatEngine:
            from inferline.engines.llamacpp_chat import LlamaCppChatEngine

            return LlamaCppChatEngine(
                entry.id,
                gguf,
                adapters,
                parallel=self.parallel,
                context=min(self.context, entry.context_length),
                threads=self.threads,
            )

        return Target(model_id, ("llamacpp", str(gguf), tuple(str(a) for a in adapters)), build)

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

    def gate(self, target: Target) -> AdmissionGate:
        with self._lock:
            gate = self._gates.get(target.key)
            if gate is None:
                running = self.parallel if target.key[0] == "llamacpp" else self.parallel * 4
                gate = self._gates[target.key] = AdmissionGate(running, self.max_queue)
            return gate

    def loaded(self) -> list[tuple[Any, ...]]:
        """Engine keys currently held, least recently used first."""
        with self._lock:
            return list(self._engines)

    def in_flight(self) -> int:
        """Chat requests admitted and not finished (running or queued), over all models."""
        with self._lock:
            return sum(g.tickets for g in self._gates.values())

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()

    # ---- the interface for other areas -----------------------------------------------------------------
    def complete_text(
        self,
        tenant_id: str,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.2,
        cancelled: threading.Event | None = None,
    ) -> str:
        """The assistant's reply text; with `json_schema`, grammar-constrained JSON that validates against it.

        Blocking (call it from a job or a worker thread). Internal callers wait for a slot instead of 429.
        Setting `cancelled` stops the generation at the next token and raises `BadRequest`.
        """
        params: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        if model is not None:
            params["model"] = model
        if json_schema is not None:
            params["guided_json"] = json_schema
        the_plan = plan(params)
        target = self.resolve(tenant_id, the_plan.model)
        self.gate(target).admit(force=True)
        assembler = Assembler()

        def collect(chunk: dict[str, Any]) -> bool:
            assembler.add(chunk)
            return False

        stop = cancelled or threading.Event()
        self._execute(tenant_id, target, the_plan, collect, Telemetry(), stop)
        if stop.is_set():
            raise BadRequest("The generation was cancelled.")
        (_, text, finish), *_ = assembler.outputs()
        constraint = the_plan.request.constraint
        if constraint is not None and not satisfies(constraint, text):
            if finish == "length":
                raise UpstreamError(
                    f"The output reached max_tokens={max_tokens} before the JSON was complete."
                )
            raise UpstreamError("The chat engine's output does not satisfy the JSON schema.")
        return text

    # ---- HTTP entry points ------------------------------------------------------------------------------
    async def complete(
        self,
        tenant_id: str,
        params: dict[str, Any],
        disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> tuple[dict[str, Any], Telemetry]:
        """A non-streamed `chat.completion`; a client that disconnects cancels it."""
        the_plan, target, job = self._start(tenant_id, params)
        assembler = Assembler()
        try:
            async for chunk in job.chunks(disconnected):
                assembler.add(chunk)
        finally:
            job.cancel()
        choices = [assembler.choice(i, logprobs=the_plan.user_logprobs) for i, _, _ in assembler.outputs()]
        return completion(target.model_id, choices, assembler.usage), job.telemetry

    async def stream(self, tenant_id: str, params: dict[str, Any]) -> ChatStream:
        """A started streamed completion: errors before the first token raise here, not in the stream."""
        _, _, job = self._start(tenant_id, params)
        usage = (params.get("stream_options") or {}).get("include_usage") is not False
        chunks = job.chunks()
        head: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                head.append(chunk)
                if any(c.get("delta", {}).get("content") or c.get("finish_reason") for c in chunk["choices"]):
                    break
                if chunk.get("usage"):
                    break
        except BaseException:
            job.cancel()
            raise
        return ChatStream(self._sse(job, head, chunks, usage), job.telemetry)

    async def _sse(
        self, job: _Job, head: list[dict[str, Any]], rest: AsyncIterator[dict], usage: bool
    ) -> AsyncIterator[str]:
        """SSE lines; the usage-only last chunk is left out when `stream_options.include_usage` is false."""
        try:
            for chunk in head:
                if usage or chunk.get("choices"):
                    yield sse(chunk)
            async for chunk in rest:
                if usage or chunk.get("choices"):
                    yield sse(chunk)
        except InferlineError as exc:
            yield sse({"error": {"message": exc.detail, "type": exc.title, "code": exc.code}})
        finally:
            job.cancel()
        yield sse("[DONE]")

    def _start(self, tenant_id: str, params: dict[str, Any]) -> tuple[Plan, Target, _Job]:
        """Validate, resolve the model, take a queue ticket (or 429) and start the generation thread."""
        the_plan = plan(params)
        target = self.resolve(tenant_id, the_plan.model)
        if the_plan.beam is not None and not target.enforces_constraints:
            raise UnsupportedParameter(
                "Beam search runs on embedded models; this model is served remotely.",
                pointer="/use_beam_search",
            )
        gate = self.gate(target)
        gate.admit()
        job = _Job(asyncio.get_running_loop(), Telemetry())

        def run() -> None:
            error: BaseException | None = None
            try:
                self._execute(tenant_id, target, the_plan, job.emit, job.telemetry, job.cancelled)
            except BaseException as exc:
                error = exc
            job.finish(error)

        threading.Thread(target=run, name="chat-generation", daemon=True).start()
        return the_plan, target, job

    # ---- generation (runs in a worker thread) -----------------------------------------------------------
    def _execute(
        self,
        tenant_id: str,
        target: Target,
        the_plan: Plan,
        emit: Emit,
        telemetry: Telemetry,
        cancelled: threading.Event,
    ) -> None:
        gate = self.gate(target)
        try:
            gate.acquire()
        except BaseException:
            gate.abandon()
            raise
        telemetry.started = time.perf_counter()
        try:
            if cancelled.is_set():
                return
            engine = self.engine(target)
            request = self._engine_request(tenant_id, the_plan)
            if the_plan.beam is not None:
                self._run_beam(engine, target, the_plan, request, emit, telemetry, cancelled)
            elif the_plan.buffered or (request.constraint is not None and not target.enforces_constraints):
                self._run_buffered(engine, target, the_plan, request, emit, telemetry, cancelled)
            else:
                self._run_plain(engine, target, request, emit, telemetry, cancelled)
        except ChatEngineError as exc:
            raise self._mapped(exc, the_plan) from exc
        finally:
            gate.release(time.perf_counter() - telemetry.started)

    @staticmethod
    def _mapped(exc: ChatEngineError, the_plan: Plan) -> InferlineError:
        if exc.status in (408, 504):
            return UpstreamTimeout(exc.message)
        if exc.status == 429:
            return RateLimited(f"The chat engine is busy: {exc.message}", headers={"Retry-After": "1"})
        if exc.status == 502:
            return UpstreamError(exc.message)
        if 400 <= exc.status < 500:
            pointer = the_plan.constraint_pointer if the_plan.request.constraint is not None else None
            return BadRequest(f"The chat engine refused the request: {exc.message}", pointer=pointer)
        if exc.status == 503:
            return EngineUnavailable(exc.message)
        return UpstreamError(f"The chat engine failed: {exc.message}")

    def _engine_request(self, tenant_id: str, the_plan: Plan) -> EngineRequest:
        """The plan's request with retrieved documents and the tool instructions added."""
        base = the_plan.request
        messages = base.messages
        for retrieval in the_plan.retrieval:
            query = last_user_text(messages)
            if not query:
                raise BadRequest(
                    "The retrieval tool needs a user message to search with.", pointer="/messages"
                )
            docs = [
                hit["document_chunk"]
                for bucket in retrieval.bucket_ids
                for hit in self.search.similarity_search(tenant_id, bucket, query, retrieval.max_num_results)
            ]
            if docs:
                listed = "\n".join(f"[{i + 1}] {d}" for i, d in enumerate(docs))
                messages = with_system(messages, "Answer using these documents:\n" + listed)
        constraint = base.constraint
        if the_plan.calls_tools:
            choice = the_plan.tool_choice or "auto"
            messages = with_system(messages, tool_prompt(the_plan.tools, choice))
            constraint = tool_constraint(the_plan.tools, choice)
        return EngineRequest(messages, dict(base.params), constraint, base.enable_thinking)

    def _run_plain(
        self,
        engine: ChatEngine,
        target: Target,
        request: EngineRequest,
        emit: Emit,
        telemetry: Telemetry,
        cancelled: threading.Event,
    ) -> None:
        ident, created = completion_id(), int(time.time())
        assembler = Assembler() if request.constraint is not None else None

        def on_chunk(chunk: dict[str, Any]) -> bool:
            if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                telemetry.token()
            if assembler is not None:
                assembler.add(chunk)
            chunk.update(id=ident, created=created, model=target.model_id, system_fingerprint="inferline")
            chunk.pop("timings", None)
            if chunk.get("usage"):
                telemetry.completion_tokens = int(chunk["usage"].get("completion_tokens", 0))
                chunk["telemetry"] = telemetry.as_dict()
            return emit(chunk) or cancelled.is_set()

        engine.stream(request, on_chunk)
        if assembler is not None and request.constraint is not None and not cancelled.is_set():
            for _, text, finish in assembler.outputs():  # grammar-enforced; checked as a safety net
                if finish != "length" and not satisfies(request.constraint, text):
                    raise UpstreamError("The chat engine's output does not satisfy the requested constraint.")

    def _run_buffered(
        self,
        engine: ChatEngine,
        target: Target,
        the_plan: Plan,
        request: EngineRequest,
        emit: Emit,
        telemetry: Telemetry,
        cancelled: threading.Event,
    ) -> None:
        """Generate whole, then post-process (tool calls, best_of, constraint check) and emit as chunks."""
        assembler = Assembler()

        def on_chunk(chunk: dict[str, Any]) -> bool:
            if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                telemetry.token()
            assembler.add(chunk)
            return cancelled.is_set()

        engine.stream(request, on_chunk)
        if cancelled.is_set():
            return
        indexes = [i for i, _, _ in assembler.outputs()]
        if the_plan.best_of is not None:
            indexes = sorted(indexes, key=assembler.logprob_sum, reverse=True)[: the_plan.n]
        choices = []
        for position, index in enumerate(indexes):
            choice = assembler.choice(index, logprobs=the_plan.user_logprobs)
            choice["index"] = position
            text, finish = choice["message"]["content"], choice["finish_reason"]
            if (
                request.constraint is not None
                and finish != "length"
                and not satisfies(request.constraint, text)
            ):
                raise UpstreamError(
                    f"The chat engine ({target.model_id}) did not honour the output constraint."
                )
            if the_plan.calls_tools and finish != "length":
                choice["message"], choice["finish_reason"] = tool_message(text)
            choices.append(choice)
        usage = assembler.usage
        if usage:
            telemetry.completion_tokens = int(usage.get("completion_tokens", 0))
        done = completion(target.model_id, choices, usage)
        for chunk in chunks_of(done):
            if chunk.get("usage"):
                chunk["telemetry"] = telemetry.as_dict()
            if emit(chunk):
                return

    def _run_beam(
        self,
        engine: ChatEngine,
        target: Target,
        the_plan: Plan,
        request: EngineRequest,
        emit: Emit,
        telemetry: Telemetry,
        cancelled: threading.Event,
    ) -> None:
        spec = the_plan.beam
        assert spec is not None
        prompt_tokens: list[int] = []

        def step(prefix: str) -> list[tuple[str, float]]:
            messages = request.messages + ([{"role": "assistant", "content": prefix}] if prefix else [])
            params = {"max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": spec.width}
            if request.params.get("stop") is not None:
                params["stop"] = request.params["stop"]
            assembler = Assembler()

            def on_chunk(chunk: dict[str, Any]) -> bool:
                assembler.add(chunk)
                return cancelled.is_set()

            engine.stream(EngineRequest(messages, params, None, request.enable_thinking), on_chunk)
            telemetry.token()
            if assembler.usage and not prompt_tokens:
                prompt_tokens.append(int(assembler.usage.get("prompt_tokens", 0)))
            slot = assembler.choices.get(0)
            if not slot or not slot["logprobs"]:
                return [("", 0.0)]  # the engine ended the turn (e.g. a stop sequence)
            return [(t["token"], float(t["logprob"])) for t in slot["logprobs"][0].get("top_logprobs") or []]

        beams = beam_search(
            step,
            width=spec.width,
            max_tokens=spec.max_tokens,
            length_penalty=spec.length_penalty,
            early_stopping=spec.early_stopping,
            cancelled=cancelled.is_set,
        )
        if cancelled.is_set():
            return
        chosen = beams[: spec.n]
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": b.text},
                "logprobs": None,
                "finish_reason": b.finish_reason,
            }
            for i, b in enumerate(chosen)
        ]
        generated = sum(b.tokens for b in chosen)
        telemetry.completion_tokens = generated
        prompt = prompt_tokens[0] if prompt_tokens else 0
        usage = {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}
        for chunk in chunks_of(completion(target.model_id, choices, usage)):
            if chunk.get("usage"):
                chunk["telemetry"] = telemetry.as_dict()
            if emit(chunk):
                return
