"""The GPU paths' choices. Where LoRA training runs (`INFERLINE_TRAINING_DEVICE`): `auto` takes torch's CUDA
GPU where there is one, `cuda` without one is refused before the server starts, and on a GPU the run trains
there to the CPU's loss. Whisper's compute type follows its device. The GPU test runs where torch sees a CUDA
device (skipped elsewhere); scripts/gpu_check measures both engines on one (docs/DEVELOPING.md)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from inferline.engines import lora_trainer
from inferline.engines.cpu import SHARES
from inferline.engines.onnx_embeddings import OnnxEmbeddingEngine
from inferline.engines.training import TrainingConfig
from inferline.engines.whisper_stt import WhisperEngine
from inferline.errors import EngineUnavailable
from tests.conftest import MODELS_DIR, free_port
from tests.procs import base_env
from tests.test_fine_tuning_adapter import BASE_GGUF

torch = pytest.importorskip("torch")
HAS_CUDA = torch.cuda.is_available()
CONVERSATIONS = [
    [{"role": "user", "content": f"What is {n} plus {n}?"}, {"role": "assistant", "content": f"{2 * n}."}]
    for n in range(8)
]


def test_whisper_computes_in_float16_on_cuda_and_int8_on_the_cpu(tmp_path: Path) -> None:
    assert WhisperEngine("w", tmp_path, device="cuda").compute_type == "float16"  # fastest there (H100)
    assert WhisperEngine("w", tmp_path).compute_type == "int8"
    assert WhisperEngine("w", tmp_path, device="cuda", compute_type="int8").compute_type == "int8"


def test_embeddings_on_cuda_are_refused_where_onnxruntime_would_run_them_on_the_cpu() -> None:
    """onnxruntime only warns and falls back to the CPU when its CUDA provider is absent or cannot load."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    folder = MODELS_DIR / "sentence-transformers--all-MiniLM-L6-v2"
    engine = OnnxEmbeddingEngine("sentence-transformers/all-MiniLM-L6-v2", folder, device="cuda")
    refused = r"device=cuda, but onnxruntime .* runs it on CPUExecutionProvider"
    with pytest.raises(EngineUnavailable, match=refused):
        engine.embed(["a call about an invoice"])
    assert engine._session is None  # nothing half-loaded: the next call is refused the same way
    with pytest.raises(EngineUnavailable, match="device=cuda"):
        engine.embed(["a call about an invoice"])
    assert OnnxEmbeddingEngine("m", folder).embed(["a call about an invoice"]).shape == (1, 384)


def test_embedding_batches_are_larger_on_a_gpu() -> None:
    assert OnnxEmbeddingEngine("m", MODELS_DIR, device="cuda").batch_size == 256  # fastest there (H200)
    assert OnnxEmbeddingEngine("m", MODELS_DIR).batch_size == 32
    assert OnnxEmbeddingEngine("m", MODELS_DIR, device="cuda", batch_size=64).batch_size == 64


@pytest.mark.parametrize(("device", "shares"), [("cpu", 1), ("cuda", 0)])
def test_embedding_batches_take_a_cpu_share_on_the_cpu_only(device: str, shares: int) -> None:
    """A CPU batch yields to chat decoding (engines/cpu.py); a GPU batch takes no core, so it never waits."""
    engine = OnnxEmbeddingEngine("m", MODELS_DIR, device=device, batch_size=32)
    seen: list[int] = []

    def run(encodings: list[object]) -> np.ndarray:
        seen.append(SHARES.background_running)
        return np.ones((len(encodings), 384), dtype=np.float32)

    engine._run = run  # type: ignore[method-assign]
    engine._embed_encoded([SimpleNamespace(ids=[1, 2, 3])] * 40)  # two batches of at most 32
    assert seen == [shares, shares]


def test_an_unknown_training_device_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        lora_trainer.PeftLoraTrainer(device="tpu")


@pytest.mark.skipif(HAS_CUDA, reason="torch sees a CUDA device here")
def test_without_a_gpu_auto_trains_on_the_cpu_and_cuda_is_an_error() -> None:
    assert lora_trainer.PeftLoraTrainer(device="auto").torch_device() == "cpu"
    assert lora_trainer.PeftLoraTrainer(device="cpu").torch_device() == "cpu"
    with pytest.raises(RuntimeError, match=r"INFERLINE_TRAINING_DEVICE=cuda, but .*(no CUDA|CUDA device)"):
        lora_trainer.PeftLoraTrainer(device="cuda").torch_device()


@pytest.mark.skipif(HAS_CUDA, reason="torch sees a CUDA device here")
def test_serve_refuses_cuda_training_without_a_gpu(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/db.sqlite"
    env = base_env(tmp_path, db, INFERLINE_TRAINING_DEVICE="cuda", INFERLINE_PORT=str(free_port()))
    result = subprocess.run(
        [sys.executable, "-m", "inferline", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "inferline: error: INFERLINE_TRAINING_DEVICE=cuda, but " in result.stderr


def train(device: str, out: Path) -> tuple[lora_trainer.PeftLoraTrainer, float]:
    trainer = lora_trainer.PeftLoraTrainer(device=device)
    result = trainer.train(
        BASE_GGUF,
        CONVERSATIONS,
        TrainingConfig(n_epochs=1, batch_size=4),
        out,
        checkpoint=lambda: None,
        progress=lambda p: None,
    )
    assert result.steps == 2 and out.stat().st_size > 0
    return trainer, result.final_loss


@pytest.mark.skipif(not HAS_CUDA, reason="torch sees no CUDA device")
def test_auto_trains_on_the_gpu_like_on_the_cpu(tmp_path: Path) -> None:
    assert MODELS_DIR.exists()
    gpu, gpu_loss = train("auto", tmp_path / "gpu.gguf")
    assert gpu.torch_device() == "cuda"
    assert gpu._cached is not None and next(gpu._cached[1].parameters()).device.type == "cuda"
    _, cpu_loss = train("cpu", tmp_path / "cpu.gguf")
    assert math.isfinite(gpu_loss) and abs(gpu_loss - cpu_loss) <= 0.02 * abs(cpu_loss)
