"""`LlamaCppChatEngine`: a GGUF model (plus LoRA adapters) on the embedded llama.cpp server (xllamacpp).

llama.cpp runs `parallel` slots with continuous batching, so concurrent requests decode together without
sharing state. Multi-turn chats reuse the cached prompt prefix: a request goes to the idle slot whose cached
prompt shares the longest prefix with it (llama.cpp's `slot_prompt_similarity`), only the new tokens are
read (`cache_prompt`), and a slot taken by another conversation is saved to llama.cpp's RAM prompt cache
(`cache_ram_mib`) and restored when its conversation returns (bench/bench_chat_turns.py measures it).
Decoding holds `SHARES.foreground()` (engines/cpu.py), so embedding batches yield to it.

Threads: the measured count (`fastest_threads`) when the CPU is otherwise idle, and `contended_threads` (one)
while batch engines hold it. llama.cpp's threads meet at a barrier after every operation and spin there, so
when an embedding batch or a Whisper window takes a core from one of them the others spin until it returns.
The engine therefore keeps a second llama.cpp context of the same model with `contended_threads` threads,
and a request that starts while `SHARES.contended()` decodes there. That context reads the weights from the
file mapping the first one also maps, without llama.cpp's repacked copy of some quantized tensors
(`no_extra_bufts`): it adds its KV cache and compute buffers only (measured: ~0.3 GiB with
Qwen2.5-Coder-1.5B, 2 slots of 4,096 tokens, instead of ~0.9 GiB with the copy), and decodes ~12% slower
than with it on one thread. Measured with bench/bench_fairness.py: 4 chat clients beside 20 search clients
kept 0.43 of their p95 alone when every request decoded on two threads, ~0.6 with this.

Constraints become grammars: JSON schemas through llama.cpp's schema converter, regexes through
llguidance, choices as a GBNF alternation. The model loads on first use.

Tools: when the model's chat template has a tool-call format llama.cpp parses (Hermes / Qwen2.5
`<tool_call>`, Mistral `[TOOL_CALLS]`, Llama 3.x JSON; see `TOOL_CALL_OPENERS`), `tools` go to llama.cpp as
they are: the template offers them, llama.cpp constrains a call's arguments to the function's schema and
streams the parsed calls as OpenAI `tool_calls` deltas. `tool_choice: required` starts the reply with the
format's call opener (an assistant prefill), so the reply is calls from its first token.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inferline.engines.chat import ChatEngineError, Constraint, EngineRequest, OnChunk
from inferline.engines.cpu import SHARES, physical_cores
from inferline.errors import EngineUnavailable
from inferline.logs import logged_load

log = logging.getLogger("inferline.chat")

# OpenAI request fields llama.cpp's chat endpoint understands as-is.
PASSTHROUGH = (
    "max_tokens",
    "temperature",
    "top_p",
    "min_p",
    "n",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "top_k",
    "logit_bias",
    "repetition_penalty",  # llama.cpp's `repeat_penalty` (renamed in `body`); vLLM's own name
)

# Chat templates that declare tools, by a marker of their tool-call format, and how a call starts (the
# assistant prefill of `tool_choice: required`). Templates without one get tools as constrained JSON.
TOOL_CALL_OPENERS = (
    ("<tool_call>", "<tool_call>\n"),  # Hermes 2 Pro, Qwen2.5, Qwen3
    ("[TOOL_CALLS]", "[TOOL_CALLS]"),  # Mistral (Nemo, Small)
    ('"parameters": dictionary of argument name', '{"name": "'),  # Llama 3.1 to 3.3
)


def tool_call_opener(template: str | None) -> str | None:
    """How a call starts in `template`'s tool-call format, if it declares tools in one llama.cpp parses."""
    if not template or "tools" not in template:
        return None
    return next((opener for marker, opener in TOOL_CALL_OPENERS if marker in template), None)


# GGUF value types: fixed-size scalars (struct formats), strings and arrays.
_SCALARS = dict(enumerate(("<B", "<b", "<H", "<h", "<I", "<i", "<f", "<?"))) | {10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def gguf_chat_metadata(path: Path) -> tuple[str | None, int | None]:
    """A GGUF file's chat template and vocabulary size, read from its header (arrays are skipped, not
    loaded); (None, None) when the file cannot be read."""
    template: str | None = None
    vocab: int | None = None
    with path.open("rb") as fh:

        def number(fmt: str) -> Any:
            return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]

        def skip(kind: int, count: int = 1) -> None:
            if kind in _SCALARS:
                fh.seek(struct.calcsize(_SCALARS[kind]) * count, 1)
            elif kind == _STRING:
                for _ in range(count):
                    fh.seek(number("<Q"), 1)
            elif kind == _ARRAY:
                for _ in range(count):
                    inner = number("<I")
                    skip(inner, number("<Q"))
            else:
                raise ValueError(f"unknown GGUF value type {kind}")

        try:
            if fh.read(4) != b"GGUF" or number("<I") < 2:
                return None, None
            number("<Q")  # tensors
            for _ in range(number("<Q")):
                key = fh.read(number("<Q"))
                kind = number("<I")
                if key == b"tokenizer.chat_template" and kind == _STRING:
                    template = fh.read(number("<Q")).decode("utf-8", "replace")
                elif key == b"tokenizer.ggml.tokens" and kind == _ARRAY:
                    inner, vocab = number("<I"), number("<Q")
                    skip(inner, vocab)
                else:
                    skip(kind)
        except (struct.error, ValueError):
            return None, None
    return template, vocab


PROBE_PROMPT = (
    "The harbour master wrote in the log that the morning tide came in early, that two fishing boats left "
    "before dawn, that the ferry from the island was delayed by fog for nearly an hour, that a cargo ship "
    "asked for a pilot at nine, and that the wind turned to the north-east by noon. In the afternoon he noted"
)


def completion_rate(server: Any, tokens: int = 12, seconds: float = 1.5) -> float:
    """Tokens/s of a greedy raw completion on `server`, reading a ~70-token prompt included: `tokens` new
    tokens, or what `seconds` allowed (a slow candidate is cut short). Prompt reading counts because more
    threads speed it up most (time to first token), decode because it is most of a reply."""
    stamps: list[float] = []
    started = time.perf_counter()

    def on_chunk(chunk: dict[str, Any]) -> bool:
        if chunk.get("choices"):
            stamps.append(time.perf_counter())
        return time.perf_counter() - started > seconds

    body = {"prompt": PROBE_PROMPT, "max_tokens": tokens, "temperature": 0, "cache_prompt": False}
    server.handle_completions({**body, "stream": True, "ignore_eos": True}, on_chunk)
    if not stamps:
        return 0.0
    return len(stamps) / max(stamps[-1] - started, 1e-9)


def probe_server(xllamacpp: Any, model: Path, threads: int, adapters: Sequence[Path] = ()) -> Any:
    """A small llama.cpp server for timing short completions (`completion_rate`): one slot, a 512-token
    context, `threads` threads, no warm-up."""
    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.n_parallel, params.n_ctx = 1, 512
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
    params.port, params.verbosity, params.warmup = 0, 0, False
    if adapters:
        params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(a), 1.0) for a in adapters]
    return xllamacpp.Server(params)


def regex_grammar(pattern: str) -> str:
    """An llguidance (lark) grammar whose only sentence is a full match of `pattern`."""
    return "%llguidance {}\nstart: /" + pattern.replace("/", "\\/") + "/\n"


def choice_grammar(choices: Sequence[str]) -> str:
    """A GBNF grammar matching exactly one of `choices`."""
    return "root ::= " + " | ".join(json.dumps(c, ensure_ascii=False) for c in choices) + "\n"


def constraint_fields(constraint: Constraint | None) -> dict[str, Any]:
    """The llama.cpp request fields that enforce `constraint` while decoding."""
    if constraint is None:
        return {}
    if constraint.kind == "json_schema":
        return {"json_schema": constraint.value}
    if constraint.kind == "json_object":
        return {"response_format": {"type": "json_object"}}
    if constraint.kind == "regex":
        return {"grammar": regex_grammar(constraint.value)}
    return {"grammar": choice_grammar(constraint.value)}


class LlamaCppChatEngine:
    """One llama.cpp server for a GGUF file and a fixed set of LoRA adapters."""

    enforces_constraints = True

    def __init__(
        self,
        name: str,
        model_path: Path,
        adapters: Sequence[Path] = (),
        *,
        parallel: int = 2,
        context: int = 4096,
        threads: int = 0,
        contended_threads: int = 0,
        chat_template: str | None = None,
        gpu_layers: int | None = None,
    ) -> None:
        self.name = name
        self.chat_template = chat_template  # a Jinja template replacing the GGUF's own
        self.gpu_layers = gpu_layers  # layers offloaded to the GPU (GPU builds); None: llama.cpp's default
        self.model_path = model_path
        self.adapters = tuple(adapters)
        self.parallel = parallel
        self.context = context
        # 0: measured when the model loads (`fastest_threads`); until then the physical cores.
        self.auto_threads = not threads
        self.threads = threads or physical_cores()
        # Threads of the second context, for requests that start while batch engines run (0: none).
        self.contended_threads = contended_threads
        self._lock = threading.Lock()
        self._server: Any = None
        self._contended: Any = None  # that context, when it has fewer threads than `threads`
        self._metadata: tuple[str | None, int | None] | None = None

    def _chat_metadata(self) -> tuple[str | None, int | None]:
        """(the chat template llama.cpp uses, the vocabulary size), read once from the GGUF header."""
        if self._metadata is None:
            try:
                template, vocab = gguf_chat_metadata(self.model_path)
            except OSError:
                template, vocab = None, None
            self._metadata = (self.chat_template or template, vocab)
        return self._metadata

    @property
    def tool_call_opener(self) -> str | None:
        return tool_call_opener(self._chat_metadata()[0])

    @property
    def native_tools(self) -> bool:
        """Whether the model's template declares tools in a format llama.cpp parses (`TOOL_CALL_OPENERS`)."""
        return self.tool_call_opener is not None

    @logged_load("chat", "_server")
    def _load(self) -> Any:
        with self._lock:
            if self._server is not None:
                return self._server
            try:
                import xllamacpp
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise EngineUnavailable(f"xllamacpp is not installed: {exc}") from exc
            missing = [p for p in (self.model_path, *self.adapters) if not p.is_file()]
            if missing:
                raise EngineUnavailable(f"Chat model {self.name} is missing {missing[0]}.")
            if self.auto_threads and not self.gpu_layers:  # decode runs on the CPU
                self.threads = self.fastest_threads(xllamacpp)
            params = xllamacpp.CommonParams()
            params.model.path = str(self.model_path)
            params.n_parallel = self.parallel
            params.n_ctx = self.context * self.parallel
            params.cpuparams.n_threads = self.threads
            params.cpuparams_batch.n_threads = self.threads
            if self.chat_template:
                params.chat_template = self.chat_template
            if self.gpu_layers is not None:
                params.n_gpu_layers = self.gpu_layers
            params.port = 0  # llama.cpp also listens on a free loopback port; we call it in-process
            params.verbosity = 0
            if self.adapters:
                params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(a), 1.0) for a in self.adapters]
            try:
                server = xllamacpp.Server(params)
                if 0 < self.contended_threads < self.threads and not self.gpu_layers:
                    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = self.contended_threads
                    params.no_extra_bufts = True  # reads the mapped weights (no repacked copy: see above)
                    self._contended = xllamacpp.Server(params)
                    log.info(
                        "chat %s: %d threads, %d while batch engines run",
                        self.name,
                        self.threads,
                        self.contended_threads,
                    )
            except Exception as exc:
                raise EngineUnavailable(f"Chat model {self.name} failed to load: {exc}") from exc
            self._server = server
            return server

    def _context(self) -> Any:
        """The llama.cpp context a request starting now decodes on (see the module docstring)."""
        server = self._load()
        contended = self._contended
        return contended if contended is not None and SHARES.contended() else server

    def fastest_threads(self, xllamacpp: Any) -> int:
        """The thread count that decodes fastest now: the physical cores, half of them and one, each tried on
        a short greedy completion with its prompt (`completion_rate`; one slot, small context).

        llama.cpp's threads spin at barriers, so the best count depends on what else runs: on a quiet 2-core
        machine 2 threads decode 12.9 tok/s and 1 thread 7.5, but when other processes keep the cores busy
        2 threads collapse (measured through the API: 0.9 to 3.7 tok/s, against 85 to 130 for 1 thread).
        """
        cores = physical_cores()
        servers: dict[int, Any] = {}
        for threads in sorted({cores, max(1, cores // 2), 1}, reverse=True):
            try:
                servers[threads] = probe_server(xllamacpp, self.model_path, threads)
            except Exception as exc:  # the load after this reports a model that cannot load
                log.warning("chat %s: trying %d threads failed: %s", self.name, threads, exc)
        rates: dict[int, float] = {}
        if servers:
            # The first decode after loading pays for cold weights (page faults, caches): a discarded warm-up,
            # then every candidate twice in turn, each keeping its better rate, so none is measured cold.
            try:
                completion_rate(next(iter(servers.values())))
                for _round in range(2):
                    for threads, server in servers.items():
                        rates[threads] = max(rates.get(threads, 0.0), completion_rate(server))
            except Exception as exc:  # the load after this reports a model that cannot decode
                log.warning("chat %s: measuring thread counts failed: %s", self.name, exc)
        servers.clear()
        best = max(rates, key=lambda n: rates[n], default=cores)
        log.info("chat %s: %d threads (tok/s with the prompt, by threads: %s)", self.name, best, rates)
        return best

    def body(self, request: EngineRequest) -> dict[str, Any]:
        """The llama.cpp chat request for `request`, always streamed with usage in the last chunk."""
        body: dict[str, Any] = {k: v for k, v in request.params.items() if k in PASSTHROUGH}
        if "repetition_penalty" in body:
            body["repeat_penalty"] = body.pop("repetition_penalty")
        body.update(messages=request.messages, stream=True, stream_options={"include_usage": True})
        body.update(constraint_fields(request.constraint))
        if request.tools:
            body.update(
                tools=request.tools,
                tool_choice=request.tool_choice,
                parallel_tool_calls=request.parallel_tool_calls,
            )
            opener = self.tool_call_opener
            if request.tool_choice == "required" and opener:  # the reply starts inside a call
                body["messages"] = [*request.messages, {"role": "assistant", "content": opener}]
        if request.enable_thinking is not None:
            # Templates with a thinking phase read this; the others ignore it (see README, chat).
            body["chat_template_kwargs"] = {"enable_thinking": request.enable_thinking}
            body["reasoning_format"] = "deepseek"
        return body

    def stream(self, request: EngineRequest, on_chunk: OnChunk) -> None:
        """Stream; `n` beyond the slot count runs in rounds of at most `parallel` choices (seed + offset)."""
        self._check_logit_bias(request.params.get("logit_bias"))
        n = int(request.params.get("n") or 1)
        if n <= self.parallel:
            self._stream(self.body(request), on_chunk)
            return
        usage: dict[str, Any] = {}
        for start in range(0, n, self.parallel):
            body = self.body(request)
            body["n"] = min(self.parallel, n - start)
            if body.get("seed") is not None:
                body["seed"] = body["seed"] + start
            stopped = False

            def shifted(chunk: dict[str, Any], start: int = start) -> bool:
                nonlocal stopped
                for choice in chunk.get("choices") or []:
                    choice["index"] = choice.get("index", 0) + start
                if chunk.get("usage"):
                    part = chunk.pop("usage")
                    usage["prompt_tokens"] = part.get("prompt_tokens", 0)
                    usage["completion_tokens"] = usage.get("completion_tokens", 0) + part.get(
                        "completion_tokens", 0
                    )
                    if not chunk.get("choices"):
                        return False
                stopped = bool(on_chunk(chunk))
                return stopped

            self._stream(body, shifted)
            if stopped:
                return
        usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        on_chunk({"object": "chat.completion.chunk", "choices": [], "usage": usage})

    def _check_logit_bias(self, bias: dict[str, float] | None) -> None:
        """Token ids beyond the vocabulary are refused (llama.cpp would ignore them)."""
        vocab = self._chat_metadata()[1]
        if bias and vocab is not None:
            outside = [token for token in bias if int(token) >= vocab]
            if outside:
                raise ChatEngineError(
                    400,
                    f"logit_bias names token {outside[0]}; {self.name} has token ids 0 to {vocab - 1}.",
                    pointer="/logit_bias",
                )

    def complete_prompt(self, body: dict[str, Any], on_chunk: OnChunk) -> None:
        """A raw-prompt text completion (llama.cpp's OpenAI `/completions`), streamed like `_stream`."""
        self._stream(body, on_chunk, completions=True)

    def _stream(self, body: dict[str, Any], on_chunk: OnChunk, *, completions: bool = False) -> None:
        server = self._context()
        failure: list[ChatEngineError] = []

        def callback(chunk: dict[str, Any]) -> bool:
            error = chunk.get("error") if isinstance(chunk, dict) else None
            if error is not None or "choices" not in chunk:
                err = error if isinstance(error, dict) else chunk
                status = int(err.get("code", 500)) if str(err.get("code", "")).isdigit() else 500
                failure.append(ChatEngineError(status, str(err.get("message", err))))
                return True
            return bool(on_chunk(chunk))

        try:
            handle = server.handle_completions if completions else server.handle_chat_completions
            with SHARES.foreground():  # batch engines yield to decoding meanwhile (engines/cpu.py)
                handle(body, callback)
        except ValueError as exc:  # e.g. a JSON schema llama.cpp cannot turn into a grammar
            raise ChatEngineError(400, str(exc)) from exc
        if failure:
            raise failure[0]

    def close(self) -> None:
        with self._lock:
            self._server = self._contended = None
