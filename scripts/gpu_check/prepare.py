"""Packs what the GPU check needs into `.gpu/` (git-ignored), in parts that each travel with one device call.

The device machine reaches no network and takes at most 64 MiB per call, working tree included. Three sets,
each checked as soon as all its parts are there:

- `embeddings` (parts `.gpu/e1`...): onnxruntime-gpu (its wheel unpacked, without the TensorRT provider) and
  the MiniLM model, one xz tar split over the parts;
- `speech` (parts `.gpu/c1`...): the Python 3.12 wheels missing there (CTranslate2, faster-whisper and the
  PyAV it imports, gguf) and 60 s of Piper speech (16 kHz float32, `speech.npy`), packed whole into the first
  parts; then a tar of the test profile's Whisper tiny.en and SmolLM2-135M, split over the parts after them;
- `chat` (parts `.gpu/h1`...): PyPI's one CUDA build of llama.cpp, `xllamacpp-cuda12x` (CPython 3.11 only),
  this venv's Python 3.11 itself (`python.tar.xz`, unpacked there at the same absolute path: its `RUNPATH`
  is absolute), the pinned `xllamacpp` and SmolLM2-135M: one tar split over the parts (`chat.py` says why).

Each part holds a marker `part-<letter>K`, and the set's first one `parts-<letter>` (how many there are).

Run here with the project's venv: `.venv/bin/python scripts/gpu_check/prepare.py [embeddings] [speech]
[chat]` (the first two by default); then one device call per part, each carrying its part and running
`scripts/gpu_check/run.sh` (its header says how).
"""

from __future__ import annotations

import io
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".gpu"
PART_BYTES = 58 * 2**20  # plus the working tree (~4 MiB): under the 64 MiB a call carries
WHEELS = ("ctranslate2==4.8.5", "faster-whisper==1.2.1", "av==18.1.0", "gguf==0.19.0")
PLATFORMS = (
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_28_x86_64",
)
MODELS = ("openai--whisper-tiny.en", "HuggingFaceTB--SmolLM2-135M-Instruct")
CUDA_CHAT = "xllamacpp-cuda12x==0.1.6"  # PyPI's only CUDA build of llama.cpp: cp311, manylinux_2_35
CUDA_RUNTIME = "nvidia-cuda-runtime-cu12==12.9.79"  # which it needs loaded (it does not declare it)
CHAT_MODEL = "HuggingFaceTB--SmolLM2-135M-Instruct"
PYTHON_LEFT_OUT = {"test", "site-packages", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip"}
ONNXRUNTIME_GPU = "onnxruntime-gpu==1.31.1"  # built for CUDA 13 and cuDNN 9, as the image's torch
EMBEDDINGS_MODEL = "sentence-transformers--all-MiniLM-L6-v2"
SENTENCES = (
    "Thank you for calling, how can I help you today?",
    "I would like to book a table for dinner on Friday evening.",
    "The weather is sunny and warm today, so we can sit outside.",
    "Please send the invoice to our office before the end of the month.",
    "My flight was delayed by two hours because of the storm.",
    "Could you repeat the confirmation number one more time?",
)


def models_dir() -> Path:
    return Path(os.environ.get("INFERLINE_MODELS_DIR", ROOT / "data" / "models"))


def wheels(into: Path, *names: str, python: str = "3.12") -> None:
    platforms = [arg for p in (*PLATFORMS, "manylinux_2_35_x86_64") for arg in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", python, "--implementation", "cp", *platforms, "-d", str(into), *names],
        check=True,
    )  # fmt: skip


def speech(into: Path, seconds: float = 60.0) -> None:
    """Piper (the test profile's voice, its random noise off: the same samples every run) reading SENTENCES
    until `seconds`, resampled to 16 kHz float32."""
    from piper import PiperVoice, SynthesisConfig

    from inferline.areas.audio.codec import resample

    voice = PiperVoice.load(models_dir() / "rhasspy--piper-en_US-joe-medium" / "voice.onnx")
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    rate = voice.config.sample_rate
    chunks: list[np.ndarray] = []
    total = 0
    while total < seconds * rate:
        for sentence in SENTENCES:
            for chunk in voice.synthesize(sentence, syn_config=config):
                chunks.append(chunk.audio_float_array)
                total += len(chunk.audio_float_array)
    samples = resample(np.concatenate(chunks), rate, 16_000).astype(np.float32)
    np.save(into / "speech.npy", samples[: int(seconds * 16_000)])


def models_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in MODELS:
            folder = models_dir() / name
            for path in sorted(folder.iterdir()):
                if not path.name.startswith("."):
                    tar.add(path.resolve(), arcname=f"models/{name}/{path.name}")
    return buffer.getvalue()


def split(data: bytes, name: str, letter: str, first: int) -> int:
    """`data` in parts `.gpu/<letter>K` from K = `first`, as `<name>.KK`; returns how many."""
    chunks = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    for n, chunk in enumerate(chunks, start=first):
        (OUT / f"{letter}{n}").mkdir(exist_ok=True)
        (OUT / f"{letter}{n}" / f"{name}.{n:02d}").write_bytes(chunk)
    return len(chunks)


def mark(letter: str, total: int) -> None:
    for n in range(1, total + 1):
        (OUT / f"{letter}{n}" / f"part-{letter}{n}").touch()
    (OUT / f"{letter}1" / f"parts-{letter}").write_text(f"{total}\n")


def embeddings_set() -> None:
    """onnxruntime-gpu, unpacked into `ort-site/`, and the MiniLM model under `models/`: one xz tar."""
    loose = OUT / "loose-e"
    loose.mkdir(parents=True)
    wheels(loose, ONNXRUNTIME_GPU)
    buffer = io.BytesIO()
    with lzma.open(buffer, "wb", preset=9) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        (wheel,) = loose.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                if member.is_dir() or "providers_tensorrt" in member.filename:
                    continue  # TensorRT is not used
                info = tarfile.TarInfo(f"ort-site/{member.filename}")
                info.size, info.mode = member.file_size, 0o755 if member.filename.endswith(".so") else 0o644
                tar.addfile(info, archive.open(member))
        folder = models_dir() / EMBEDDINGS_MODEL
        for name in ("model.onnx", "tokenizer.json"):
            tar.add(folder / name, arcname=f"models/{EMBEDDINGS_MODEL}/{name}")
    shutil.rmtree(loose)
    mark("e", split(buffer.getvalue(), "embeddings.tar.xz", "e", 1))


def speech_set() -> None:
    loose = OUT / "loose"
    loose.mkdir(parents=True)
    wheels(loose, *WHEELS)
    speech(loose)
    parts: list[list[Path]] = []
    for path in sorted(loose.iterdir(), key=lambda p: -p.stat().st_size):  # whole files, first fit
        size = path.stat().st_size
        fit = next((p for p in parts if sum(f.stat().st_size for f in p) + size <= PART_BYTES), None)
        if fit is None:
            parts.append([path])
        else:
            fit.append(path)
    for n, files in enumerate(parts, start=1):
        folder = OUT / f"c{n}"
        folder.mkdir()
        for path in files:
            path.rename(folder / path.name)
    mark("c", len(parts) + split(models_tar(), "models.tar", "c", len(parts) + 1))
    loose.rmdir()


def pinned(package: str) -> str:
    """`package==version` as pyproject.toml pins it."""
    line = next(x for x in (ROOT / "pyproject.toml").read_text().splitlines() if f'"{package}==' in x)
    return line.strip().strip('",')


def python_runtime() -> bytes:
    """This interpreter's installation (a CPython 3.11 built with a shared libpython) less its tests, GUI
    and packages, as an xz tar of absolute paths."""
    prefix = Path(sys.base_prefix)
    library = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        inside = parts[len(library.parts) - 1 :]
        if "__pycache__" in parts or (inside and inside[0] in PYTHON_LEFT_OUT) or info.name.endswith(".a"):
            return None
        return info

    buffer = io.BytesIO()
    with lzma.open(buffer, "wb", preset=6) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        executable = prefix / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        for path in (executable, *prefix.glob("lib/libpython3*.so.1.0"), library):
            tar.add(path, arcname=str(path).lstrip("/"), filter=keep)
    return buffer.getvalue()


def chat_set() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"the chat set packs this Python, which must be 3.11 ({CUDA_CHAT} is built for it only)")
    loose = OUT / "loose-h"
    loose.mkdir(parents=True)
    wheels(loose / "legacy", CUDA_CHAT, python="3.11")
    wheels(loose / "pypi", pinned("xllamacpp"), python="3.11")
    wheels(loose / "cudart", CUDA_RUNTIME, python="3.11")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        runtime = python_runtime()
        info = tarfile.TarInfo("python.tar.xz")
        info.size = len(runtime)
        tar.addfile(info, io.BytesIO(runtime))
        info = tarfile.TarInfo("python-prefix")
        info.size = len(prefix := f"{sys.base_prefix}\n".encode())
        tar.addfile(info, io.BytesIO(prefix))
        for build in ("legacy", "pypi", "cudart"):
            (wheel,) = (loose / build).glob("*.whl")
            tar.add(wheel, arcname=f"wheels-{build}/{wheel.name}")
        model = (models_dir() / CHAT_MODEL / "model.gguf").resolve()
        tar.add(model, arcname=f"models/{CHAT_MODEL}/model.gguf")
    shutil.rmtree(loose)
    mark("h", split(buffer.getvalue(), "chat.tar", "h", 1))


def main() -> None:
    sets = sys.argv[1:] or ["embeddings", "speech"]
    if unknown := set(sets) - {"embeddings", "speech", "chat"}:
        sys.exit(f"unknown sets: {', '.join(sorted(unknown))} (embeddings, speech, chat)")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    if "embeddings" in sets:
        embeddings_set()
    if "speech" in sets:
        speech_set()
    if "chat" in sets:
        chat_set()
    for folder in sorted(OUT.iterdir()):
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(f"{folder.relative_to(ROOT)}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
