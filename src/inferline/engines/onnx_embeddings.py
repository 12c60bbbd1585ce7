"""`OnnxEmbeddingEngine`: a BERT-style sentence encoder (MiniLM int8) on onnxruntime + tokenizers.

The ONNX graph returns token states; pooling (the mean over the attention mask, or the first token for CLS
models) and L2 normalisation happen here.
Inputs are sorted by length and run in batches padded to the longest member, so short texts stay cheap.
Callers count tokens before they embed (to refuse texts over the limit): `count_tokens` keeps its encodings
for the `embed` that follows in the same thread, so each text is tokenized once (~70 µs per 60-word text).

Two sessions on the same model (CPU): one whose intra-op threads spin between the operators of a run, used
when the process is quiet (no chat generation decoding, no other embedding request waiting), and one whose
threads sleep, used otherwise. Spinning saves the thread wake-ups between operators (single 60-word text,
quiet 2-core machine: about 6.0 ms instead of 7.2 ms), but spinning threads take cores from llama.cpp
decoding and from the HTTP loop serving concurrent requests (8 concurrent 12-word clients lost ~20% of their
throughput with it). Both stop spinning when a run ends (`session.force_spinning_stop`). The second session
costs about 110 MiB of resident memory (measured: 337 -> 448 MiB for the loaded engine).

`embed_now` runs a short call in the calling thread at once, or refuses (`WouldWait`) where it would wait:
the HTTP loop uses it for a lone single-text request (`areas.embeddings.routes`).
"""

from __future__ import annotations

import threading
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Any

import numpy as np

from inferline.engines.cpu import SHARES
from inferline.engines.embeddings import WouldWait
from inferline.engines.micro_batch import MicroBatcher
from inferline.errors import EngineUnavailable, model_not_installed
from inferline.logs import logged_load

# The most tokens `embed_now` runs at once: MiniLM takes ~11 ms for 128 tokens on the 2-core machine (25 ms
# for its longest text, 256), so the HTTP loop, which calls it, never stalls long.
NOW_TOKENS = 128
# Texts per run by device: 256 on a GPU embeds 1.4-1.5x as many texts per second as 32 there (MiniLM, H200,
# docs/DEVELOPING.md "GPU paths"); on the CPU larger batches only add padding (32: 387, 256: 351 texts/s).
BATCH_SIZES = {"cpu": 32, "cuda": 256}


class OnnxEmbeddingEngine:
    """Embeds texts with an ONNX sentence encoder found in `model_dir` (`model.onnx` + `tokenizer.json`)."""

    def __init__(
        self,
        model_id: str,
        model_dir: Path,
        *,
        dimensions: int = 384,
        max_tokens: int = 256,
        batch_size: int | None = None,
        threads: int = 0,
        pooling: str = "mean",
        device: str = "cpu",
    ) -> None:
        self.model_id = model_id
        self.pooling = pooling  # "mean" or "cls" (the sentence-transformers 1_Pooling mode)
        self.device = device  # "cpu", or "cuda" where onnxruntime has the CUDA provider
        self.model_dir = model_dir
        self.dimensions = dimensions
        self.max_tokens = max_tokens
        self.batch_size = batch_size or BATCH_SIZES[device]
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._spinning: Any = None
        self._tokenizer: Any = None
        self._counter: Any = None
        self._input_names: set[str] = set()
        self._memo = threading.local()  # `pending`: text -> encoding from this thread's last `count_tokens`
        self._batcher = MicroBatcher(self._embed_encoded, max_texts=self.batch_size)

    @logged_load("embeddings", "_session")
    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise EngineUnavailable(f"onnxruntime/tokenizers are not installed: {exc}") from exc
            model, vocab = self.model_dir / "model.onnx", self.model_dir / "tokenizer.json"
            if not model.is_file() or not vocab.is_file():
                raise model_not_installed("embeddings", self.model_id)
            tokenizer = Tokenizer.from_file(str(vocab))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.no_padding()
            counter = Tokenizer.from_file(str(vocab))
            counter.no_truncation()
            counter.no_padding()
            providers = ["CPUExecutionProvider"]
            if self.device == "cuda":
                providers.insert(0, "CUDAExecutionProvider")
                preload_cuda_libraries(ort)
            session = self._new_session(ort, model, providers, spinning=False)
            if self.device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
                # onnxruntime only warns and runs on the CPU where its CUDA provider is missing or cannot
                # load CUDA's libraries (cuDNN, cuBLAS): `device: cuda` is refused instead, with the reason.
                raise EngineUnavailable(
                    f"embeddings model {self.model_id}: device=cuda, but onnxruntime "
                    f"{ort.__version__} runs it on {', '.join(session.get_providers())} "
                    f"(available: {', '.join(ort.get_available_providers())}; the CUDA provider needs "
                    "onnxruntime-gpu and CUDA's cuDNN and cuBLAS libraries)"
                )
            spinning = (
                self._new_session(ort, model, providers, spinning=True) if self.device == "cpu" else session
            )
            self._input_names = {i.name for i in session.get_inputs()}
            self._tokenizer = tokenizer
            self._counter = counter
            self._spinning = spinning
            self._session = session

    def _new_session(self, ort: Any, model: Path, providers: list[str], *, spinning: bool) -> Any:
        """An onnxruntime session on `model`; `spinning`: its intra-op threads spin between the operators of
        a run (faster) and stop when the run ends, else they sleep (see `_run`)."""
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        return ort.InferenceSession(str(model), options, providers=providers)

    def count_tokens(self, texts: list[str]) -> list[int]:
        self._load()
        encodings = self._counter.encode_batch(texts)
        self._memo.pending = dict(zip(texts, encodings, strict=True))  # for the `embed` that follows
        return [len(e.ids) for e in encodings]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Calls of fewer than `batch_size` texts made at the same time share one run (`MicroBatcher`)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        self._load()
        encodings = self._encode(texts)
        if len(texts) < self.batch_size:
            return self._batcher(encodings)
        return self._embed_encoded(encodings)

    def ready_now(self) -> bool:
        """Whether `embed_now` would run at once and alone: the model loaded, no batch running and none of
        several calls lately (concurrent callers batch better in worker threads), no chat decoding."""
        batcher = self._batcher
        return self._session is not None and not batcher.busy and not batcher.crowded and SHARES.chat == 0

    def embed_now(self, texts: list[str]) -> np.ndarray:
        """`embed` in the calling thread, at once, as a batch of its own of at most `NOW_TOKENS` tokens (a
        short run: the HTTP loop calls this); `WouldWait` when the model is not loaded yet, a batch is
        running, a chat generation is decoding (a batch then yields to it, in a worker thread), or the texts
        are longer."""
        if not texts or not self.ready_now():
            raise WouldWait("the embedding engine is not idle")
        encodings = self._encode(texts)
        if sum(len(e.ids) for e in encodings) > NOW_TOKENS:
            raise WouldWait(f"more than {NOW_TOKENS} tokens")
        return self._batcher.now(encodings)

    def _encode(self, texts: list[str]) -> list[Any]:
        """The texts' encodings, truncated to `max_tokens`: those `count_tokens` just made in this thread
        when they are the same texts within the limit, else tokenized now."""
        pending: dict[str, Any] = getattr(self._memo, "pending", None) or {}
        self._memo.pending = None
        known = [pending.get(text) for text in texts]
        if all(e is not None and len(e.ids) <= self.max_tokens for e in known):
            return known
        return list(self._tokenizer.encode_batch(texts))

    def _embed_encoded(self, encodings: list[Any]) -> np.ndarray:
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(encodings), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            members = order[start : start + self.batch_size]
            # A CPU run yields to chat decoding (engines/cpu.py); a GPU run takes no core to yield.
            with SHARES.background() if self.device == "cpu" else nullcontext():
                out[members] = self._run([encodings[i] for i in members])
        return out

    def _run(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = enc.attention_mask
            types[row, :n] = enc.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        quiet = SHARES.chat == 0 and not self._batcher.crowded  # no decoding, no other request waiting
        session = self._spinning if quiet else self._session
        states = session.run(None, {k: v for k, v in feeds.items() if k in self._input_names})[0]
        if self.pooling == "cls":
            return normalise(states[:, 0, :].astype(np.float32))
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalise(pooled.astype(np.float32))


def preload_cuda_libraries(ort: Any) -> None:
    """Loads CUDA's and cuDNN's libraries from the NVIDIA wheels beside onnxruntime-gpu (`pip install
    'onnxruntime-gpu[cuda,cudnn]'`, or torch's CUDA build of the same major version), else from the system's
    library path; its CUDA provider opens them by name, so without this they must be on `LD_LIBRARY_PATH`.
    What is still missing shows when the session starts (`_load` refuses it)."""
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is not None:
        with suppress(Exception):  # what failed shows in the session's providers
            preload()


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
