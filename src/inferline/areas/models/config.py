"""Per-model settings and the models file (`INFERLINE_MODELS_FILE`, YAML or TOML).

The file lists models, local and remote side by side::

    models:
      - id: acme/llama-3.2-3b            # registered at start-up from `source` when it is not yet
        source: /srv/models/Llama-3.2-3B-Instruct-Q4_K_M.gguf
        context: 8192                    # tokens per slot
        parallel: 4                      # slots decoded together
        threads: 8
        gpu_layers: 99                   # llama.cpp offload (needs a GPU build); 0 = CPU
        chat_template: "{% for m in messages %}…"
        sampling: {temperature: 0.6, top_p: 0.9}
        aliases: [gpt-4o-mini]
        tenants: [acme]                  # only these tenants see it (any kind); others: as if unknown
      - id: meta-llama/Llama-3.1-70B-Instruct
        kind: chat
        remote: {url: "http://vllm:8000/v1", timeout_seconds: 120}
      - id: sentence-transformers/all-MiniLM-L6-v2
        threads: 2

Every key is checked at start-up: a key that does not apply to the model's kind, or a device the installed
engine cannot use, is an error naming it (nothing is accepted and ignored).
"""

from __future__ import annotations

import contextlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferline.catalog import ModelKind
from inferline.config import RemoteModel

# What each kind of model honours (local, remote). Keys outside these sets are refused.
HONOURED: dict[tuple[str, bool], frozenset[str]] = {
    ("chat", False): frozenset(
        {"context", "parallel", "threads", "chat_template", "sampling", "device", "gpu_layers"}
    ),
    ("chat", True): frozenset({"sampling"}),
    ("embeddings", False): frozenset({"threads", "device"}),
    ("embeddings", True): frozenset(),
    ("stt", False): frozenset({"threads", "device"}),
    ("tts", False): frozenset(),
}
TENANT_KINDS = ("chat", "embeddings", "stt", "tts")  # kinds whose `tenants` every entry point honours
ALIAS_KINDS = ("chat", "embeddings", "stt")
SETTING_KEYS = ("context", "parallel", "threads", "chat_template", "sampling", "device", "gpu_layers")


class SettingsError(ValueError):
    """A model setting that cannot be honoured, or a models file that is not valid: one line naming it."""


class Sampling(BaseModel):
    """Default sampling parameters of a chat model; a request's own values win."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None


class ModelSettings(BaseModel):
    """Settings of one model; unset ones fall back to the process-wide `INFERLINE_CHAT_*` settings."""

    model_config = ConfigDict(extra="forbid")

    context: int | None = Field(default=None, ge=256, description="Context window (tokens) of each slot.")
    parallel: int | None = Field(default=None, ge=1, le=64, description="Requests decoded at once.")
    threads: int | None = Field(default=None, ge=1, le=1024, description="CPU threads of the engine.")
    chat_template: str | None = Field(default=None, min_length=1, description="Jinja chat template.")
    sampling: Sampling | None = None
    device: Literal["cpu", "cuda"] | None = Field(default=None, description="Where the engine runs.")
    gpu_layers: int | None = Field(default=None, ge=-1, description="llama.cpp layers on the GPU; -1: all.")

    def llama_gpu_layers(self) -> int | None:
        """llama.cpp's `n_gpu_layers`: as set, else 0 on `device: cpu`, all on `device: cuda`, else its
        default."""
        if self.gpu_layers is not None:
            return self.gpu_layers
        return {"cpu": 0, "cuda": -1}.get(self.device or "")

    def given(self) -> set[str]:
        """The settings that are set."""
        return {k for k in SETTING_KEYS if getattr(self, k) is not None}

    def over(self, base: ModelSettings) -> ModelSettings:
        """These settings with `base`'s where these are unset (sampling merged key by key)."""
        merged = base.model_dump(exclude_none=True)
        mine = self.model_dump(exclude_none=True)
        sampling = {**merged.get("sampling", {}), **mine.get("sampling", {})}
        merged.update(mine)
        if sampling:
            merged["sampling"] = sampling
        return ModelSettings.model_validate(merged)


class ModelSpec(ModelSettings):
    """One entry of the models file."""

    id: str = Field(min_length=1, max_length=200)
    kind: ModelKind | None = None
    source: str | None = Field(default=None, description="A path or hf:// URI registered at start-up.")
    link: bool = Field(default=False, description="Link the source's files instead of copying them.")
    remote: RemoteModel | None = None
    aliases: list[str] = Field(default_factory=list)
    tenants: list[str] | None = Field(default=None, min_length=1)

    def settings(self) -> ModelSettings:
        return ModelSettings.model_validate(self.model_dump(include=set(SETTING_KEYS), exclude_none=True))


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelSpec] = Field(default_factory=list)


def _location(errors: list[Any], data: Any) -> str:
    loc = list(errors[0]["loc"])
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        with contextlib.suppress(KeyError, IndexError, TypeError):
            where += f" (model {data['models'][loc[1]]['id']!r})"
    return where


def load_file(path: Path) -> ModelsFile:
    """Parse and validate the models file; `SettingsError` naming the file and the offending key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"models file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml", ".json"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise SettingsError(f"models file {path}: name it *.yaml, *.yml or *.toml")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"models file {path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SettingsError(f"models file {path}: not valid YAML: {first}") from None
    try:
        return ModelsFile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        raise SettingsError(f"models file {path}: {_location(errors, data)}: {errors[0]['msg']}") from None


def parse_set(pairs: list[str]) -> ModelSettings:
    """`--set key=value` pairs (`sampling.temperature=0.7`; values read as JSON, else as text)."""
    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SettingsError(f"--set {pair!r}: expected key=value")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if key.startswith("sampling."):
            data.setdefault("sampling", {})[key.removeprefix("sampling.")] = value
        else:
            data[key] = value
    try:
        return ModelSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise SettingsError(f"--set {where}: {first['msg']}") from None


def check(model_id: str, kind: ModelKind, remote: bool, settings: ModelSettings, where: str) -> None:
    """Refuse settings the model's engine does not honour, and devices the installed engine cannot use."""
    honoured = HONOURED.get((kind, remote))
    if honoured is None:
        raise SettingsError(f"{where}: {model_id}: {kind} models cannot be remote (only chat and embeddings)")
    for key in sorted(settings.given() - honoured):
        served = "remote " if remote else ""
        allowed = ", ".join(sorted(honoured)) or "none"
        raise SettingsError(
            f"{where}: {model_id}: `{key}` does not apply to {served}{kind} models (they honour: {allowed})"
        )
    if settings.chat_template is not None and (problem := template_problem(settings.chat_template)):
        raise SettingsError(f"{where}: {model_id}: `chat_template` is not a valid Jinja template: {problem}")
    if settings.device == "cpu" and (settings.gpu_layers or 0) != 0:
        raise SettingsError(f"{where}: {model_id}: gpu_layers={settings.gpu_layers} contradicts device=cpu")
    wants_gpu = settings.device == "cuda" or (settings.gpu_layers or 0) != 0
    if wants_gpu and (problem := gpu_problem(kind)):
        what = f"gpu_layers={settings.gpu_layers}" if settings.gpu_layers else "device=cuda"
        raise SettingsError(f"{where}: {model_id}: {what} cannot be honoured: {problem}")


def gpu_problem(kind: ModelKind) -> str | None:
    """Why the engine of `kind` cannot run on a CUDA GPU here, or None when it can."""
    try:
        if kind == "chat":
            import xllamacpp

            types = [getattr(d.get("type"), "name", "") for d in xllamacpp.get_device_info()]
            devices = [t for t in types if t.endswith("GPU")]  # GGML_BACKEND_DEVICE_TYPE_GPU / _IGPU
            return None if devices else "this llama.cpp build (xllamacpp) has no GPU backend or sees no GPU"
        if kind == "stt":
            import ctranslate2

            return None if ctranslate2.get_cuda_device_count() > 0 else "CTranslate2 sees no CUDA device"
        if kind == "embeddings":
            import onnxruntime

            if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                return None
            return "onnxruntime has no CUDAExecutionProvider (replace it with 'onnxruntime-gpu[cuda,cudnn]')"
    except ImportError as exc:
        return f"the engine is not installed ({exc})"
    return f"{kind} models run on the CPU only"


def template_problem(template: str) -> str | None:
    """Why `template` is not valid Jinja (checked with jinja2 where it is installed), or None."""
    try:
        import jinja2
    except ImportError:  # llama.cpp checks it when the model loads
        return None
    try:
        jinja2.Environment().parse(template)
    except jinja2.TemplateSyntaxError as exc:
        return f"{exc.message} (line {exc.lineno})"
    return None
