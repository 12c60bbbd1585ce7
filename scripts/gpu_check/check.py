"""The GPU paths on a CUDA machine, each beside the same work on that machine's CPU (all its cores).

- Transcription: inferline's WhisperEngine (faster-whisper / CTranslate2) on 60 s of speech, on `cuda` with
  each compute type and on the CPU (int8, the CPU default); the words each produces, compared to the CPU's.
- Fine-tuning: inferline's PeftLoraTrainer (torch + peft) on SmolLM2-135M, `device=auto` (which must pick
  the GPU) and `device=cpu`: trained tokens per second and the final loss of the same seeded run.

Usage: `python3 scripts/gpu_check/check.py STASH OUT` (run.sh calls it); writes OUT/gpu.json.
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

STASH, OUT = Path(sys.argv[1]), Path(sys.argv[2])
WHISPER = STASH / "models" / "openai--whisper-tiny.en"
SMOLLM2 = STASH / "models" / "HuggingFaceTB--SmolLM2-135M-Instruct" / "model.gguf"
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
    import torch

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
        "torch": torch.__version__,
    }
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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for check in (machine, transcription, fine_tuning):
        section(check)
    for name in ("adapter-cuda.gguf", "adapter-cpu.gguf"):  # keep the JSON, not the adapters
        (OUT / name).unlink(missing_ok=True)
    (OUT / "gpu.json").write_text(json.dumps(results, indent=2))
    print("errors:", len(results["errors"]), flush=True)


if __name__ == "__main__":
    main()
