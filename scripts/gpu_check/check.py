"""The GPU paths on a CUDA machine, each beside the same work on that machine's CPU (all its cores).

- Transcription: inferline's WhisperEngine (faster-whisper / CTranslate2) on 60 s of speech, on `cuda` with
  each compute type and on the CPU (int8, the CPU default); the words each produces, compared to the CPU's.
- Fine-tuning: inferline's PeftLoraTrainer (torch + peft) on SmolLM2-135M, `device=auto` (which must pick
  the GPU) and `device=cpu`: trained tokens per second and the final loss of the same seeded run.
- Embeddings: inferline's OnnxEmbeddingEngine (onnxruntime-gpu) on MiniLM, `device=cuda` and `device=cpu`:
  one short text's latency, 2,048 texts' throughput in batches of 32 and 256, the vectors' agreement with
  the CPU's, and which operators onnxruntime ran on which provider.

Usage: `python3 scripts/gpu_check/check.py STASH OUT SET` (run.sh calls it; SET: `speech` for the first two,
`embeddings` for the last, `embeddings-bare` for `device=cuda` where onnxruntime-gpu has no CUDA libraries
beside it); writes OUT/gpu-SET.json.
"""

from __future__ import annotations

import difflib
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

STASH, OUT, SET = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
WHISPER = STASH / "models" / "openai--whisper-tiny.en"
SMOLLM2 = STASH / "models" / "HuggingFaceTB--SmolLM2-135M-Instruct" / "model.gguf"
MINILM = STASH / "models" / "sentence-transformers--all-MiniLM-L6-v2"
CORES = os.cpu_count() or 1
RUNS = 3
CPU_ONLY = os.environ.get("GPU_CHECK_CPU_ONLY") == "1"  # a dry run of this script on a machine with no GPU
results: dict[str, Any] = {"errors": []}


def section(fn: Callable[[], None]) -> None:
    """Runs one check; a failure is printed and recorded, and the next check still runs."""
    try:
        fn()
    except Exception:
        text = traceback.format_exc()
        print(text, flush=True)
        results["errors"].append(text)


def machine() -> None:
    gpu = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    results["machine"] = {
        "gpu": gpu,
        "cpu_cores": CORES,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    if SET == "speech":
        import torch

        results["machine"]["torch"] = torch.__version__
    print(results["machine"], flush=True)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def transcription() -> None:
    from inferline.engines.whisper_stt import WhisperEngine

    samples = np.load(STASH / "speech.npy")
    seconds = len(samples) / 16_000
    default = WhisperEngine("openai/whisper-tiny.en", WHISPER, english_only=True, device="cuda")
    assert default.compute_type == "float16", default.compute_type
    rows, reference = [], None
    configs = [("cpu", "int8"), ("cuda", "float16"), ("cuda", "int8_float16"), ("cuda", "int8")]
    for device, compute_type in configs[:1] if CPU_ONLY else configs:
        engine = WhisperEngine(
            "openai/whisper-tiny.en",
            WHISPER,
            english_only=True,
            device=device,
            compute_type=compute_type,
            cpu_threads=CORES,
        )
        started = time.perf_counter()
        engine.transcribe(samples[:80_000])  # load + warm-up on 5 s
        first = time.perf_counter() - started
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            transcript = engine.transcribe(samples)
            times.append(time.perf_counter() - started)
        text = words(transcript.text)
        reference = reference or text
        row = {
            "device": device,
            "compute_type": compute_type,
            "audio_seconds": round(seconds, 1),
            "median_seconds": round(float(np.median(times)), 4),
            "times_real_time": round(seconds / float(np.median(times)), 1),
            "load_and_first_5s": round(first, 3),
            "words": len(text),
            "word_agreement_with_cpu": round(difflib.SequenceMatcher(a=reference, b=text).ratio(), 4),
            "start": " ".join(text[:12]),
        }
        rows.append(row)
        print(row, flush=True)
        del engine
    results["transcription"] = rows


def conversations() -> list[list[dict[str, str]]]:
    """32 support-call style conversations of ~120-200 tokens, each with a distinct assistant reply."""
    topics = ["invoice", "delivery", "password", "refund", "appointment", "upgrade", "outage", "address"]
    out = []
    for n in range(32):
        topic = topics[n % len(topics)]
        user = f"Hello, this is customer {1000 + n}. I am calling about my {topic}; can you help me today?"
        reply = (
            f"Of course. I have opened case {5000 + 7 * n} for your {topic}. "
            f"You will receive an email within {n % 5 + 1} hours with the next steps, and a text message "
            f"when it is resolved. Is there anything else about the {topic} I can help you with?"
        )
        out.append([{"role": "user", "content": user}, {"role": "assistant", "content": reply}])
    return out


def fine_tuning() -> None:
    from inferline.engines.lora_trainer import PeftLoraTrainer
    from inferline.engines.training import TrainingConfig

    data = conversations()
    rows = []
    for device in ("auto", "cpu"):
        trainer = PeftLoraTrainer(threads=CORES, device=device)
        chosen = trainer.torch_device()
        if device == "auto" and not CPU_ONLY:
            assert chosen == "cuda", f"device=auto picked {chosen}"

        def run(epochs: int, name: str, trainer: PeftLoraTrainer = trainer) -> tuple[float, Any]:
            started = time.perf_counter()
            result = trainer.train(
                SMOLLM2,
                data,
                TrainingConfig(n_epochs=epochs, seed=0),
                OUT / name,
                checkpoint=lambda: None,
                progress=lambda p: None,
            )
            return time.perf_counter() - started, result

        first, _ = run(1, f"warm-{chosen}.gguf")  # loads (dequantises) the GGUF base, then one epoch
        seconds, result = run(3, f"adapter-{chosen}.gguf")  # the base is cached: training alone
        weights = next(trainer._cached[1].parameters()) if trainer._cached else None
        row = {
            "device": device,
            "ran_on": str(weights.device) if weights is not None else "?",
            "threads": CORES if chosen == "cpu" else None,
            "steps": result.steps,
            "trained_tokens": result.trained_tokens,
            "seconds": round(seconds, 3),
            "tokens_per_second": round(result.trained_tokens / seconds, 1),
            "final_loss": round(result.final_loss, 4),
            "load_and_first_epoch_seconds": round(first, 2),
            "adapter_bytes": (OUT / f"adapter-{chosen}.gguf").stat().st_size,
        }
        rows.append(row)
        print(row, flush=True)
        (OUT / f"warm-{chosen}.gguf").unlink(missing_ok=True)
    results["fine_tuning"] = rows


def texts(count: int) -> list[str]:
    """`count` distinct support-call sentences of 10 to 60 words."""
    topics = ["invoice", "delivery", "password", "refund", "appointment", "upgrade", "outage", "address"]
    out = []
    for n in range(count):
        topic = topics[n % len(topics)]
        words = (
            f"Customer {1000 + n} called about the {topic} on account {n * 37 % 9973} and asked when it "
            f"would be sorted out; the agent opened case {5000 + 7 * n}, promised an email within "
            f"{n % 5 + 1} hours and a text message once the problem was fixed, then asked whether "
            "anything else was needed today."
        ).split()
        out.append(" ".join(words[: 10 + n % 51]))
    return out


def placements(device: str) -> dict[str, Any]:
    """Which provider onnxruntime ran each operator of one batch on (its profile), by operator type."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(OUT / f"profile-{device}")
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(MINILM / "model.onnx"), options, providers=providers)
    ids = np.full((8, 64), 2023, dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    names = {i.name for i in session.get_inputs()}
    session.run(None, {k: v for k, v in feeds.items() if k in names})
    profile = Path(session.end_profiling())
    by_provider: dict[str, set[str]] = {}
    for event in json.loads(profile.read_text()):
        args = event.get("args") or {}
        if event.get("cat") == "Node" and "provider" in args:
            by_provider.setdefault(args["provider"], set()).add(args.get("op_name", "?"))
    profile.unlink()
    return {"session_providers": session.get_providers(), **{k: sorted(v) for k, v in by_provider.items()}}


def embeddings() -> None:
    import onnxruntime as ort

    from inferline.engines.onnx_embeddings import OnnxEmbeddingEngine

    results["onnxruntime"] = {"version": ort.__version__, "providers": ort.get_available_providers()}
    print(results["onnxruntime"], flush=True)
    for device in ("cpu",) if CPU_ONLY else ("cuda", "cpu"):
        results[f"placements_{device}"] = placements(device)
        print(device, results[f"placements_{device}"], flush=True)
    short = ["Thank you for calling, how can I help you today?"]
    many = texts(2048)
    rows, reference = [], None
    configs = [("cpu", 32), ("cpu", 256), ("cuda", 32), ("cuda", 256)]
    for device, batch in configs[:2] if CPU_ONLY else configs:
        engine = OnnxEmbeddingEngine(
            "sentence-transformers/all-MiniLM-L6-v2", MINILM, batch_size=batch, device=device
        )
        started = time.perf_counter()
        engine.embed(short)
        load = time.perf_counter() - started
        for _ in range(20):  # warm-up: the CUDA provider tunes its kernels per shape on first runs
            engine.embed(short)
        engine.embed(many[:512])
        singles = []
        for _ in range(200):
            started = time.perf_counter()
            engine.embed(short)
            singles.append(time.perf_counter() - started)
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            vectors = engine.embed(many)
            times.append(time.perf_counter() - started)
        reference = vectors if reference is None else reference
        cosines = (vectors * reference).sum(axis=1)
        row = {
            "device": device,
            "batch_size": batch,
            "session_providers": engine._session.get_providers(),
            "load_and_first_seconds": round(load, 3),
            "single_text_ms_p50": round(float(np.median(singles)) * 1000, 3),
            "texts_2048_seconds_median": round(float(np.median(times)), 4),
            "texts_per_second": round(len(many) / float(np.median(times)), 1),
            "min_cosine_to_cpu_32": round(float(cosines.min()), 6),
        }
        rows.append(row)
        print(row, flush=True)
        del engine
    results["embeddings"] = rows


def embeddings_without_libraries() -> None:
    """`device=cuda` where onnxruntime-gpu finds no CUDA libraries beside it: refused with the reason, or run
    on the GPU where the system's library path has them."""
    from inferline.engines.onnx_embeddings import OnnxEmbeddingEngine
    from inferline.errors import EngineUnavailable

    engine = OnnxEmbeddingEngine("sentence-transformers/all-MiniLM-L6-v2", MINILM, device="cuda")
    try:
        engine.embed(["Thank you for calling."])
        results["without_libraries"] = {"outcome": "ran", "providers": engine._session.get_providers()}
    except EngineUnavailable as exc:
        results["without_libraries"] = {"outcome": "refused", "message": str(exc)}
    print(results["without_libraries"], flush=True)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    checks = {
        "speech": (machine, transcription, fine_tuning),
        "embeddings": (machine, embeddings),
        "embeddings-bare": (embeddings_without_libraries,),
    }[SET]
    for check in checks:
        section(check)
    for name in ("adapter-cuda.gguf", "adapter-cpu.gguf"):  # keep the JSON, not the adapters
        (OUT / name).unlink(missing_ok=True)
    (OUT / f"gpu-{SET}.json").write_text(json.dumps(results, indent=2))
    print("errors:", len(results["errors"]), flush=True)


if __name__ == "__main__":
    main()
