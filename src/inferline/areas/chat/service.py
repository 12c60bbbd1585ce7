"""The chat service: a typed `ChatCompletionRequest` in, a typed `ChatCompletion` (or a stream of
`ChatCompletionChunk`s) out.

A request is planned (`planning`), its model resolved and admitted by the `EnginePool` (bounded queue, 429),
and generated in its own thread (`generation`), whose chunks reach the caller through an asyncio queue.
A consumer that goes away sets the generation's cancel flag and the engine stops at the next token.

Function tools reach a model whose chat template has a tool-call format llama.cpp parses (`native_tools`)
as OpenAI tools, with the messages' calls and results structured; other models get them described in the
system prompt and the reply constrained to JSON (one call at most). Each finished generation is recorded
as one `inferline.chat` log line: request id, tenant, model, `user`, `metadata` and token counts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from inferline.areas.chat.engine_pool import EnginePool, Target
from inferline.areas.chat.generation import Emit, Run, Telemetry, generate
from inferline.areas.chat.output import Assembler, completion, satisfies
from inferline.areas.chat.planning import (
    Plan,
    last_user_text,
    plan,
    tool_constraint,
    tool_prompt,
    with_system,
)
from inferline.areas.chat.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
)
from inferline.engines.chat import ChatEngine, ChatEngineError, EngineRequest
from inferline.errors import (
    BadRequest,
    EngineUnavailable,
    InferlineError,
    RateLimited,
    UnsupportedParameter,
    UpstreamError,
    UpstreamTimeout,
)
from inferline.logs import REQUEST_ID
from inferline.ops import context as ops_context
from inferline.stores.db import Database

log = logging.getLogger("inferline.chat")


class DocumentSearch(Protocol):
    """Similarity search over a tenant's embedded bucket (the buckets area), for the `retrieval` tool."""

    def similarity_search(
        self, tenant_id: str, bucket_name: str, query: str, num_docs: int = 3
    ) -> list[dict[str, Any]]: ...


class _Job:
    """One generation thread handing its chunks to the event loop; `cancel()` stops the engine at the next
    token.

    The thread appends to a deque and wakes the loop only when no wake-up is already pending (one
    `call_soon_threadsafe` per burst, not per chunk); the consumer takes every chunk that arrived, in order.
    After the first token, a chunk that comes less than `interval` seconds after the last wake-up waits for
    the next chunk, which wakes the loop for both once `interval` has passed (the end and errors wake it at
    once): when tokens come faster than that, each wake-up delivers several
    (`Settings.chat_stream_interval_ms`).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, telemetry: Telemetry, interval: float = 0.0) -> None:
        self.loop = loop
        self.items: collections.deque[tuple[str, Any]] = collections.deque()
        self.cancelled = threading.Event()
        self.telemetry = telemetry
        self.interval = interval
        self._wake_pending = False
        self._woken = 0.0  # time.monotonic() of the last wake-up
        self._waiter: asyncio.Future[None] | None = None

    def _put(self, item: tuple[str, Any]) -> None:
        self.items.append(item)
        if self._wake_pending:
            return
        now = time.monotonic()
        if item[0] == "chunk" and now - self._woken < self.interval and self._past_first_token():
            return  # the next chunk (or the end) wakes the loop for both
        self._woken = now
        self._wake_pending = True
        self.loop.call_soon_threadsafe(self._wake)

    def _past_first_token(self) -> bool:
        """Whether a token after the first has come (the first is never held: time to first token)."""
        first, last = self.telemetry.first_token, self.telemetry.last_token
        return first is not None and last != first

    def _wake(self) -> None:
        """On the loop: let the consumer take what arrived."""
        self._wake_pending = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def emit(self, chunk: dict[str, Any]) -> bool:
        self._put(("chunk", chunk))
        return self.cancelled.is_set()

    def finish(self, error: BaseException | None) -> None:
        item = ("error", error) if error is not None else ("end", None)
        with contextlib.suppress(RuntimeError):  # the loop is gone (server shutting down)
            self._put(item)

    def cancel(self) -> None:
        self.cancelled.set()

    async def _next(self, patience: float | None) -> tuple[str, Any]:
        """The next item, or ("idle", None) when none came within `patience` seconds."""
        while not self.items:
            self._waiter = self.loop.create_future()
            try:
                if patience is None:
                    await self._waiter
                else:
                    await asyncio.wait_for(self._waiter, patience)
            except TimeoutError:
                if not self.items:
                    return "idle", None
            finally:
                self._waiter = None
        return self.items.popleft()

    async def bursts(
        self, disconnected: Callable[[], Awaitable[bool]] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The chunks in the groups they arrived in (all that one wake-up found): the SSE route writes each
        group at once. `disconnected` is asked every 0.5 s; a client gone cancels the generation."""
        checked = time.monotonic()
        while True:
            if disconnected is None:
                kind, value = await self._next(None)
            else:
                kind, value = await self._next(0.5)
                if time.monotonic() - checked >= 0.5:
                    checked = time.monotonic()
                    if await disconnected():
                        self.cancel()
                        raise BadRequest("The client disconnected; generation cancelled.")
                if kind == "idle":
                    continue
            burst: list[dict[str, Any]] = []
            while kind == "chunk":
                burst.append(value)
                if not self.items:
                    break
                kind, value = self.items.popleft()
            if burst:
                yield burst
            if kind == "error":
                raise value
            if kind == "end":
                return

    async def chunks(self, disconnected: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[dict]:
        async for burst in self.bursts(disconnected):
            for chunk in burst:
                yield chunk


@dataclass
class ChatStream:
    """A started streamed completion: `bursts` yields the OpenAI chunks as plain dicts, in the groups they
    arrived in (what the SSE route writes as they are), `dicts` one by one, `chunks` typed; consume one of
    them. Each raises an `InferlineError` if the generation fails midway; call `cancel()` when the consumer
    stops (it ends the generation at the next token)."""

    bursts: AsyncIterator[list[dict[str, Any]]]
    telemetry: Telemetry  # complete up to the first token when the stream is returned
    cancel: Callable[[], None]

    @property
    def dicts(self) -> AsyncIterator[dict[str, Any]]:
        return (chunk async for burst in self.bursts for chunk in burst)

    @property
    def chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        return (ChatCompletionChunk.model_validate(chunk) async for chunk in self.dicts)


class ChatService:
    """Serves chat completions on the pool's engines; `search` serves the `retrieval` tool."""

    def __init__(
        self,
        pool: EnginePool,
        search: DocumentSearch,
        db: Database | None = None,
        stream_interval: float = 0.0,
    ) -> None:
        self.pool = pool
        self.search = search
        self.db = db  # meters the tokens of generations run outside a request (background jobs)
        self.stream_interval = stream_interval  # seconds (see `_Job`)

    def in_flight(self) -> int:
        """Chat requests admitted and not finished (running or queued), over all models."""
        return self.pool.in_flight()

    def close(self) -> None:
        self.pool.close()

    # ---- the interface for other areas -----------------------------------------------------------------
    def complete_text(
        self,
        tenant_id: str,
        messages: Sequence[dict[str, Any]],
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
        request = ChatCompletionRequest(
            messages=[ChatMessage.model_validate(m) for m in messages],
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            guided_json=json_schema,
        )
        the_plan = plan(self.pool.models.with_sampling_defaults(request))  # the model's own defaults
        target = self.pool.resolve(tenant_id, the_plan.model)
        self.pool.gate(target).admit(force=True)
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

    # ---- completions ------------------------------------------------------------------------------------
    async def complete(
        self,
        tenant_id: str,
        request: ChatCompletionRequest,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> tuple[ChatCompletion, Telemetry]:
        """A whole completion (whatever `request.stream` says); a client that disconnects cancels it."""
        the_plan, target, job = self._start(tenant_id, request)
        assembler = Assembler()
        try:
            async for chunk in job.chunks(disconnected):
                assembler.add(chunk)
        finally:
            job.cancel()
        choices = [assembler.choice(i, logprobs=the_plan.user_logprobs) for i, _, _ in assembler.outputs()]
        done = completion(target.model_id, choices, assembler.usage)
        return ChatCompletion.model_validate(done), job.telemetry

    async def stream(self, tenant_id: str, request: ChatCompletionRequest) -> ChatStream:
        """A started streamed completion: errors before the first token raise here, not in the stream.

        The usage-only last chunk is left out when `stream_options.include_usage` is false.
        """
        the_plan, _, job = self._start(tenant_id, request)
        bursts = job.bursts()
        head: list[dict[str, Any]] = []
        try:
            async for burst in bursts:
                head += burst
                if any(any(_started(c) for c in chunk["choices"]) or chunk.get("usage") for chunk in burst):
                    break
        except BaseException:
            job.cancel()
            raise

        def kept(burst: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [chunk for chunk in burst if the_plan.include_usage or chunk.get("choices")]

        async def rest() -> AsyncIterator[list[dict[str, Any]]]:
            if first := kept(head):
                yield first
            async for burst in bursts:
                if some := kept(burst):
                    yield some

        return ChatStream(rest(), job.telemetry, job.cancel)

    def _start(self, tenant_id: str, request: ChatCompletionRequest) -> tuple[Plan, Target, _Job]:
        """Plan, resolve the model, take a queue ticket (or 429) and start the generation thread."""
        the_plan = plan(self.pool.models.with_sampling_defaults(request))  # the model's own defaults
        target = self.pool.resolve(tenant_id, the_plan.model)
        if the_plan.beam is not None and not target.enforces_constraints:
            raise UnsupportedParameter(
                "Beam search runs on embedded models; this model is served remotely.",
                pointer="/use_beam_search",
            )
        gate = self.pool.gate(target)
        gate.admit()
        job = _Job(asyncio.get_running_loop(), Telemetry(), self.stream_interval)

        def run() -> None:
            error: BaseException | None = None
            try:
                self._execute(tenant_id, target, the_plan, job.emit, job.telemetry, job.cancelled)
            except BaseException as exc:
                error = exc
            job.finish(error)

        context = contextvars.copy_context()  # the request id, for the usage line
        threading.Thread(target=context.run, args=(run,), name="chat-generation", daemon=True).start()
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
        """Wait for a slot of the target's gate (the ticket is already taken), then generate."""
        gate = self.pool.gate(target)
        try:
            gate.acquire()
        except BaseException:
            gate.abandon()
            raise
        telemetry.started = time.perf_counter()
        usage: dict[str, Any] = {}

        def recorded(chunk: dict[str, Any]) -> bool:
            usage.update(chunk.get("usage") or {})
            return emit(chunk)

        try:
            if cancelled.is_set():
                return
            engine = self.pool.engine(target)
            request = self._engine_request(tenant_id, the_plan, engine)
            run = Run(engine, target.model_id, recorded, telemetry, cancelled)
            generate(run, the_plan, request, enforced=target.enforces_constraints)
        except ChatEngineError as exc:
            raise self._mapped(exc, the_plan) from exc
        finally:
            gate.release(time.perf_counter() - telemetry.started)
        if usage:
            self._record(tenant_id, target.model_id, the_plan, usage)
            ops_context.chat_finished(
                target.model_id,
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
                None if telemetry.ttft_ms is None else telemetry.ttft_ms / 1000,
                telemetry.tokens_per_second,
                telemetry.queue_ms / 1000,
                db=self.db,
                tenant_id=tenant_id,
            )

    @staticmethod
    def _record(tenant_id: str, model_id: str, the_plan: Plan, usage: dict[str, Any]) -> None:
        """The usage line of a finished generation (values JSON-quoted: one line whatever they hold)."""
        log.info(
            "chat usage request_id=%s tenant=%s model=%s user=%s metadata=%s prompt_tokens=%s "
            "completion_tokens=%s",
            REQUEST_ID.get(),
            tenant_id,
            json.dumps(model_id),
            json.dumps(the_plan.user),
            json.dumps(the_plan.metadata, ensure_ascii=False, separators=(",", ":")),
            usage.get("prompt_tokens", 0),
            usage.get("completion_tokens", 0),
        )

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
            return BadRequest(
                f"The chat engine refused the request: {exc.message}", pointer=exc.pointer or pointer
            )
        if exc.status == 503:
            return EngineUnavailable(exc.message)
        return UpstreamError(f"The chat engine failed: {exc.message}")

    def _engine_request(self, tenant_id: str, the_plan: Plan, engine: ChatEngine) -> EngineRequest:
        """The plan's request for `engine`, with retrieved documents and the tools added: as OpenAI tools for
        an engine with `native_tools`, else as a system instruction and a JSON constraint."""
        base = the_plan.request
        native = engine.native_tools
        messages = the_plan.native_messages if native else base.messages
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
        request = EngineRequest(messages, dict(base.params), base.constraint, base.enable_thinking)
        if the_plan.calls_tools and native:
            request.tools = the_plan.openai_tools()
            request.tool_choice = "auto" if the_plan.tool_choice == "auto" else "required"
            request.parallel_tool_calls = the_plan.parallel_tool_calls
        elif the_plan.calls_tools:
            choice = the_plan.tool_choice or "auto"
            request.messages = with_system(messages, tool_prompt(the_plan.tools, choice))
            request.constraint = tool_constraint(the_plan.tools, choice)
        return request


def _started(choice: dict[str, Any]) -> bool:
    """Whether a chunk's choice carries output (text or a tool call) or ends."""
    delta = choice.get("delta") or {}
    return bool(delta.get("content") or delta.get("tool_calls") or choice.get("finish_reason"))
