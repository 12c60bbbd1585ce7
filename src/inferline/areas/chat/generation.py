"""The three ways a plan is generated (in a worker thread), each emitting OpenAI chunks:

- plain: the engine's chunks are forwarded as they come (a grammar-enforced constraint, and the arguments of
  tool calls an engine with `native_tools` parsed, are re-checked after);
- buffered: generated whole, then post-processed (tool calls from constrained JSON, sampling `best_of`, the
  check of a constraint a remote engine only requested) and emitted as the chunks of the finished completion;
- beam: beam search over one-token steps, emitted the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inferline.areas.chat.beam import beam_search
from inferline.areas.chat.output import (
    Assembler,
    chunks_of,
    completion,
    completion_id,
    satisfies,
    tool_message,
)
from inferline.areas.chat.planning import Plan
from inferline.engines.chat import ChatEngine, Constraint, EngineRequest
from inferline.errors import UpstreamError

# Called per chunk; returning True means the consumer is gone (stop generating).
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


@dataclass
class Run:
    """One generation: its engine, the model id answered with, where chunks go, timing and cancel flag."""

    engine: ChatEngine
    model_id: str
    emit: Emit
    telemetry: Telemetry
    cancelled: threading.Event

    def content_token(self, chunk: dict[str, Any]) -> None:
        deltas = [c.get("delta") or {} for c in chunk.get("choices") or []]
        if any(d.get("content") or d.get("tool_calls") for d in deltas):
            self.telemetry.token()

    def emit_completion(self, done: dict[str, Any]) -> None:
        """A finished completion as chunks, the usage chunk carrying the telemetry."""
        for chunk in chunks_of(done):
            if chunk.get("usage"):
                chunk["telemetry"] = self.telemetry.as_dict()
            if self.emit(chunk):
                return


def generate(run: Run, plan: Plan, request: EngineRequest, *, enforced: bool) -> None:
    """Generate `request` (the plan's, with retrieval and tool instructions added) the way `plan` needs;
    `enforced` says whether the engine enforces constraints while decoding (else they are checked after)."""
    json_tools = plan.calls_tools and request.tools is None  # tools as constrained JSON, not native
    if plan.beam is not None:
        generate_beam(run, plan, request)
    elif json_tools or plan.best_of is not None or (request.constraint is not None and not enforced):
        generate_buffered(run, plan, request)
    else:
        generate_plain(run, request)


def generate_plain(run: Run, request: EngineRequest) -> None:
    """Forward the engine's chunks under one completion id; a constrained output is re-checked at the end."""
    ident, created = completion_id(), int(time.time())
    assembler = Assembler() if request.constraint is not None or request.tools else None

    def on_chunk(chunk: dict[str, Any]) -> bool:
        run.content_token(chunk)
        if assembler is not None:
            assembler.add(chunk)
        chunk.update(id=ident, created=created, model=run.model_id, system_fingerprint="inferline")
        chunk.pop("timings", None)
        if chunk.get("usage"):
            run.telemetry.completion_tokens = int(chunk["usage"].get("completion_tokens", 0))
            chunk["telemetry"] = run.telemetry.as_dict()
        return run.emit(chunk) or run.cancelled.is_set()

    run.engine.stream(request, on_chunk)
    if assembler is None or run.cancelled.is_set():
        return
    for index, text, finish in assembler.outputs():  # grammar-enforced; checked as a safety net
        if finish == "length":
            continue
        if request.constraint is not None and not satisfies(request.constraint, text):
            raise UpstreamError("The chat engine's output does not satisfy the requested constraint.")
        if request.tools:
            check_tool_calls(request.tools, assembler.tool_calls(index))


def check_tool_calls(tools: list[dict[str, Any]], calls: list[dict[str, Any]]) -> None:
    """Each parsed call names an offered function and its arguments follow that function's parameters."""
    schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
    for call in calls:
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        if name not in schemas or not satisfies(Constraint("json_schema", schemas[name]), arguments):
            raise UpstreamError(
                f"The chat engine's call of {name!r} does not follow the function's parameters."
            )


def generate_buffered(run: Run, plan: Plan, request: EngineRequest) -> None:
    """Generate whole, then post-process (tool calls, best_of, constraint check) and emit as chunks."""
    assembler = Assembler()

    def on_chunk(chunk: dict[str, Any]) -> bool:
        run.content_token(chunk)
        assembler.add(chunk)
        return run.cancelled.is_set()

    run.engine.stream(request, on_chunk)
    if run.cancelled.is_set():
        return
    indexes = [i for i, _, _ in assembler.outputs()]
    if plan.best_of is not None:
        indexes = sorted(indexes, key=assembler.logprob_sum, reverse=True)[: plan.n]
    choices = []
    for position, index in enumerate(indexes):
        choice = assembler.choice(index, logprobs=plan.user_logprobs)
        choice["index"] = position
        text, finish = choice["message"]["content"], choice["finish_reason"]
        if request.constraint is not None and finish != "length" and not satisfies(request.constraint, text):
            raise UpstreamError(f"The chat engine ({run.model_id}) did not honour the output constraint.")
        if plan.calls_tools and request.tools is None and finish != "length":
            choice["message"], choice["finish_reason"] = tool_message(text)
        elif request.tools and finish != "length":
            check_tool_calls(request.tools, choice["message"].get("tool_calls") or [])
        choices.append(choice)
    usage = assembler.usage
    if usage:
        run.telemetry.completion_tokens = int(usage.get("completion_tokens", 0))
    run.emit_completion(completion(run.model_id, choices, usage))


def generate_beam(run: Run, plan: Plan, request: EngineRequest) -> None:
    """Beam search: one engine call per beam and token (greedy, top `width` logprobs)."""
    spec = plan.beam
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
            return run.cancelled.is_set()

        run.engine.stream(EngineRequest(messages, params, None, request.enable_thinking), on_chunk)
        run.telemetry.token()
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
        cancelled=run.cancelled.is_set,
    )
    if run.cancelled.is_set():
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
    run.telemetry.completion_tokens = generated
    prompt = prompt_tokens[0] if prompt_tokens else 0
    usage = {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}
    run.emit_completion(completion(run.model_id, choices, usage))
