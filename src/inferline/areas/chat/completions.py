"""Legacy text completions on the pool's embedded llama.cpp engines: a raw prompt continued, no chat template.

The request is admitted by the model's gate (bounded queue, 429) and generated in its own thread; chunks
reach the caller through an asyncio queue. A consumer that goes away stops the engine at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from inferline.areas.chat.completions_protocol import CompletionRequest
from inferline.areas.chat.engine_pool import EnginePool
from inferline.engines.chat import ChatEngineError
from inferline.errors import BadRequest, RateLimited, UnsupportedParameter, UpstreamError


async def start(
    pool: EnginePool, tenant_id: str, request: CompletionRequest
) -> AsyncIterator[dict[str, Any]]:
    """The completion's `text_completion` chunks (the last carries usage); errors before the first chunk
    raise here. Closing the iterator cancels the generation."""
    request.unsupported()
    target = pool.resolve(tenant_id, request.model)
    if target.key[0] != "llamacpp":
        raise UnsupportedParameter(
            f"completions are served for local models; {target.model_id} is served remotely.",
            pointer="/model",
        )
    gate = pool.gate(target)
    gate.admit()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()
    meta = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": target.model_id}

    def put(item: tuple[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone (server shutting down)
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def emit(chunk: dict[str, Any]) -> bool:
        put(("chunk", chunk))
        return cancelled.is_set()

    def run() -> None:
        try:
            gate.acquire()
        except BaseException as exc:
            gate.abandon()
            put(("error", exc))
            return
        began = time.perf_counter()
        try:
            if not cancelled.is_set():
                pool.engine(target).complete_prompt(request.engine_body(), emit)  # type: ignore[attr-defined]
            put(("end", None))
        except ChatEngineError as exc:
            put(("error", _mapped(exc)))
        except BaseException as exc:
            put(("error", exc))
        finally:
            gate.release(time.perf_counter() - began)

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(run,), name="completion", daemon=True).start()

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        try:
            while True:
                kind, value = await queue.get()
                if kind == "error":
                    raise value
                if kind == "end":
                    return
                chunk = {**value, **meta, "object": "text_completion"}
                chunk.pop("system_fingerprint", None)
                yield chunk
        finally:
            cancelled.set()

    iterator = chunks()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None
    except BaseException:
        await iterator.aclose()
        raise

    async def joined() -> AsyncIterator[dict[str, Any]]:
        try:
            if first is not None:
                yield first
            async for chunk in iterator:
                yield chunk
        finally:
            await iterator.aclose()

    return joined()


async def collect(
    chunks: AsyncIterator[dict[str, Any]], disconnected: Callable[[], Awaitable[bool]] | None = None
) -> dict[str, Any]:
    """The whole `text_completion` object from its chunks."""
    text: list[str] = []
    finish: str | None = None
    usage: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    async for chunk in chunks:
        meta = {k: chunk[k] for k in ("id", "created", "model")}
        for choice in chunk.get("choices") or []:
            text.append(choice.get("text") or "")
            finish = choice.get("finish_reason") or finish
        usage = chunk.get("usage") or usage
        if disconnected is not None and await disconnected():
            await chunks.aclose()  # type: ignore[attr-defined]
            raise BadRequest("The client disconnected; generation cancelled.")
    choice = {"index": 0, "text": "".join(text), "finish_reason": finish, "logprobs": None}
    usage = {k: usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {**meta, "object": "text_completion", "choices": [choice], "usage": usage}


def _mapped(exc: ChatEngineError) -> Exception:
    if exc.status == 429:
        return RateLimited(f"The chat engine is busy: {exc.message}", headers={"Retry-After": "1"})
    if 400 <= exc.status < 500:
        return BadRequest(f"The chat engine refused the request: {exc.message}", pointer=exc.pointer)
    return UpstreamError(f"The chat engine failed: {exc.message}")
