"""What a model file or directory is, and what it says about itself.

`inspect(path, kind)` recognises the four layouts inferline serves, checks that the files are complete and
of the kind asked for, and reads their metadata:

- chat: one GGUF file (read with the `gguf` package: architecture, parameter count, quantization, context
  length, chat template); copied as `model.gguf`.
- embeddings: a sentence-transformers ONNX directory (`model.onnx` or `onnx/model*.onnx`, `tokenizer.json`,
  `1_Pooling/config.json`): dimensions from the ONNX output shape (or `config.json`), pooling, token limit.
- stt: a CTranslate2 Whisper directory (`model.bin` with a `WhisperSpec`, `config.json`, `tokenizer.json`,
  `vocabulary.*`): its languages (English-only models have the 51864-token vocabulary).
- tts: a Piper voice (`voice.onnx` + `voice.onnx.json`): sample rate, language, quality.

Anything else is a `ModelRejected` naming what is wrong.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferline.catalog import ModelKind

KINDS: tuple[ModelKind, ...] = ("chat", "embeddings", "stt", "tts")
GGUF_MAGIC = b"GGUF"
WHISPER_MULTILINGUAL_VOCAB = 51865  # CTranslate2/faster-whisper: smaller vocabularies are English-only
POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}
UNSUPPORTED_POOLING = (
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)
EMBEDDING_EXTRAS = ("config.json", "1_Pooling/config.json", "sentence_bert_config.json", "modules.json")
WHISPER_EXTRAS = ("preprocessor_config.json",)


class ModelRejected(ValueError):
    """The files are not a usable model of the kind asked for; the message says why, in one line."""


@dataclass(frozen=True)
class Inspected:
    """A recognised model: its kind, the files to install (name in the model folder, source path) and the
    metadata read from them."""

    kind: ModelKind
    files: tuple[tuple[str, Path], ...]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for _, p in self.files)


def inspect(path: Path, kind: ModelKind | None = None) -> Inspected:
    """Recognise `path` (a file or a directory) as a model of `kind` (detected when None)."""
    if not path.exists():
        raise ModelRejected(f"{path} does not exist")
    detected = kind or detect(path)
    if detected == "chat":
        return inspect_gguf(_single(path, ".gguf", "a GGUF file"))
    if detected == "embeddings":
        return inspect_embeddings(path)
    if detected == "stt":
        return inspect_whisper(path)
    return inspect_piper(path)


def detect(path: Path) -> ModelKind:
    """The kind of model at `path`, from its layout; `ModelRejected` when it is none of them."""
    if path.is_file():
        if path.suffix == ".gguf" or _magic(path) == GGUF_MAGIC:
            return "chat"
        if path.suffix == ".onnx":
            return "tts" if Path(f"{path}.json").is_file() else "embeddings"
        if path.name == "model.bin":
            return "stt"
    elif path.is_dir():
        if (path / "model.bin").is_file():
            return "stt"
        if _onnx_candidates(path):
            return "embeddings"
        if [p for p in path.glob("*.onnx") if Path(f"{p}.json").is_file()]:
            return "tts"
        if list(path.glob("*.gguf")):
            return "chat"
    raise ModelRejected(
        f"{path} is not a model inferline recognises: expected a GGUF file (chat), a sentence-transformers "
        "ONNX directory (embeddings), a CTranslate2 Whisper directory (stt) or a Piper voice .onnx + "
        ".onnx.json (tts)"
    )


# ---- chat: GGUF -------------------------------------------------------------------------------------------
def _magic(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(4)


def _single(path: Path, suffix: str, what: str) -> Path:
    """`path` itself, or the one `*suffix` file of the directory `path`."""
    if path.is_file():
        return path
    found = sorted(path.glob(f"*{suffix}"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise ModelRejected(f"{path} must hold exactly one {what} (found: {names}); name the file instead")
    return found[0]


def _field(reader: Any, key: str) -> Any:
    item = reader.fields.get(key)
    if item is None:
        return None
    try:
        return item.contents()
    except Exception:  # an odd value type: leave it out
        return None


def inspect_gguf(path: Path) -> Inspected:
    """A GGUF chat model: complete, with its architecture, size, quantization, context and chat template."""
    if _magic(path) != GGUF_MAGIC:
        raise ModelRejected(f"{path} is not a GGUF file (it does not start with the GGUF magic)")
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
        tensors = list(reader.tensors)
    except Exception as exc:
        raise ModelRejected(f"{path} is not a complete GGUF file (truncated or corrupt: {exc})") from None
    size = path.stat().st_size
    end = max((int(t.data_offset) + int(t.n_bytes) for t in tensors), default=0)
    if not tensors or end > size:
        raise ModelRejected(f"{path} is truncated: its tensors need {end} bytes, the file has {size}")
    arch = _field(reader, "general.architecture")
    if not arch:
        raise ModelRejected(f"{path} is a GGUF file without general.architecture")
    file_type = _field(reader, "general.file_type")
    try:
        quantization = gguf.LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
    except (TypeError, ValueError):
        quantization = None
    languages = _field(reader, "general.languages")
    info = {
        "format": "gguf",
        "architecture": str(arch),
        "name": _field(reader, "general.name"),
        "parameters": sum(int(t.n_elements) for t in tensors),
        "quantization": quantization,
        "context_length": _field(reader, f"{arch}.context_length"),
        "chat_template": _field(reader, "tokenizer.chat_template"),
        "license": _field(reader, "general.license"),
        "languages": [str(x) for x in languages] if isinstance(languages, list) else None,
    }
    return Inspected("chat", (("model.gguf", path),), info)


# ---- embeddings: sentence-transformers ONNX ----------------------------------------------------------------
def _onnx_candidates(directory: Path) -> list[Path]:
    if (directory / "model.onnx").is_file():
        return [directory / "model.onnx"]
    if (directory / "onnx" / "model.onnx").is_file():
        return [directory / "onnx" / "model.onnx"]
    return sorted((directory / "onnx").glob("model*.onnx")) if (directory / "onnx").is_dir() else []


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelRejected(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelRejected(f"{path} is not a JSON object")
    return data


def inspect_embeddings(path: Path) -> Inspected:
    """An ONNX embedding model with its tokenizer and pooling config (`path`: its directory or .onnx file)."""
    if path.is_file():
        if path.suffix != ".onnx":
            raise ModelRejected(f"{path} is not an ONNX file")
        model = path
        root = path.parent.parent if path.parent.name == "onnx" else path.parent
    else:
        candidates = _onnx_candidates(path)
        if not candidates:
            raise ModelRejected(f"{path} holds no model.onnx or onnx/model*.onnx")
        if len(candidates) > 1:
            names = ", ".join(str(c.relative_to(path)) for c in candidates)
            raise ModelRejected(f"{path} holds several ONNX models ({names}); name one of the files instead")
        model, root = candidates[0], path
    tokenizer = next(
        (d / "tokenizer.json" for d in (model.parent, root) if (d / "tokenizer.json").is_file()), None
    )
    if tokenizer is None:
        raise ModelRejected(f"{model} has no tokenizer: tokenizer.json is missing from {root}")
    pooling = "mean"
    pooling_file = root / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        config = _json(pooling_file)
        if used := [m for m in UNSUPPORTED_POOLING if config.get(m)]:
            raise ModelRejected(
                f"{pooling_file}: {used[0]} is not supported (inferline pools by mean or CLS)"
            )
        modes = [name for key, name in POOLING_MODES.items() if config.get(key)]
        pooling = modes[0] if modes else "mean"
    hidden = _json(root / "config.json") if (root / "config.json").is_file() else {}
    try:
        import onnxruntime as ort

        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelRejected(f"{model} is not a loadable ONNX model ({exc})") from None
    inputs = {i.name for i in session.get_inputs()}
    output = session.get_outputs()[0]
    if "input_ids" not in inputs:
        raise ModelRejected(f"{model} takes no input_ids; it is not a text embedding model")
    if len(output.shape) != 3:
        raise ModelRejected(
            f"{model}: its first output {output.name} has shape {output.shape}; inferline pools per-token "
            "states [batch, sequence, dimensions]"
        )
    dims = output.shape[-1] if isinstance(output.shape[-1], int) else hidden.get("hidden_size")
    if not isinstance(dims, int) or dims <= 0:
        raise ModelRejected(
            f"{model}: the embedding dimensions are neither in its output shape nor config.json"
        )
    tokens = _json(tokenizer).get("truncation") or {}
    st_config = root / "sentence_bert_config.json"
    max_tokens = (
        (_json(st_config).get("max_seq_length") if st_config.is_file() else None)
        or tokens.get("max_length")
        or hidden.get("max_position_embeddings")
        or 512
    )
    files: list[tuple[str, Path]] = [("model.onnx", model), ("tokenizer.json", tokenizer)]
    files += [
        (p.name, p)
        for p in sorted(model.parent.glob(f"{model.name}_data")) + sorted(model.parent.glob("*.onnx.data"))
    ]
    files += [(name, root / name) for name in EMBEDDING_EXTRAS if (root / name).is_file()]
    info = {
        "format": "onnx",
        "dimensions": dims,
        "pooling": pooling,
        "max_tokens": int(max_tokens),
        "context_length": int(max_tokens),
        "architecture": (hidden.get("architectures") or [hidden.get("model_type")])[0],
        "quantization": _onnx_quantization(model.name),
    }
    return Inspected("embeddings", tuple(files), info)


def _onnx_quantization(name: str) -> str | None:
    lowered = name.lower()
    for marker, label in (("quint8", "uint8"), ("int8", "int8"), ("q4", "q4"), ("fp16", "fp16")):
        if marker in lowered:
            return label
    return "int8" if "quantized" in lowered else None


# ---- stt: CTranslate2 Whisper ------------------------------------------------------------------------------
def _ct2_spec(model_bin: Path) -> str | None:
    """The spec name in a CTranslate2 `model.bin` header (`WhisperSpec` for Whisper), or None."""
    with model_bin.open("rb") as fh:
        head = fh.read(6)
        if len(head) < 6:
            return None
        _version, length = struct.unpack("<IH", head)
        if not 0 < length < 128:
            return None
        return fh.read(length).rstrip(b"\0").decode("ascii", "replace")


def inspect_whisper(path: Path) -> Inspected:
    """A faster-whisper (CTranslate2) Whisper directory and its languages."""
    root = path.parent if path.is_file() else path
    model_bin = root / "model.bin"
    if not model_bin.is_file():
        raise ModelRejected(f"{root} is not a Whisper model: it has no CTranslate2 model.bin")
    spec = _ct2_spec(model_bin)
    if spec != "WhisperSpec":
        what = f"a CTranslate2 {spec} model" if spec else "not a CTranslate2 model"
        raise ModelRejected(f"{root} is not a Whisper model: its model.bin is {what}")
    missing = [n for n in ("config.json", "tokenizer.json") if not (root / n).is_file()]
    vocab = next((root / n for n in ("vocabulary.txt", "vocabulary.json") if (root / n).is_file()), None)
    if missing or vocab is None:
        names = ", ".join([*missing, *([] if vocab else ["vocabulary.txt"])])
        raise ModelRejected(f"{root} is an incomplete Whisper model: {names} missing")
    config = _json(root / "config.json")
    vocab_size = (
        len(vocab.read_text(encoding="utf-8").splitlines())
        if vocab.suffix == ".txt"
        else len(json.loads(vocab.read_text(encoding="utf-8")))
    )
    languages = ["en"]
    if vocab_size >= WHISPER_MULTILINGUAL_VOCAB:
        lang_ids = set(config.get("lang_ids") or [])
        added = _json(root / "tokenizer.json").get("added_tokens") or []
        found = [
            m.group(1)
            for t in added
            if t.get("id") in lang_ids and (m := re.fullmatch(r"<\|(\w+)\|>", t["content"]))
        ]
        languages = found or ["en"]
    files = [(n, root / n) for n in ("model.bin", "config.json", "tokenizer.json")] + [(vocab.name, vocab)]
    files += [(n, root / n) for n in WHISPER_EXTRAS if (root / n).is_file()]
    info = {
        "format": "ctranslate2",
        "architecture": "whisper",
        "languages": languages,
        "english_only": languages == ["en"],
        "context_length": 448,
        "quantization": None,
    }
    return Inspected("stt", tuple(files), info)


# ---- tts: Piper --------------------------------------------------------------------------------------------
def inspect_piper(path: Path) -> Inspected:
    """A Piper voice: the .onnx and its .onnx.json (sample rate, language, quality)."""
    voice = path
    if path.is_dir():
        voices = [p for p in sorted(path.glob("*.onnx")) if Path(f"{p}.json").is_file()]
        if len(voices) != 1:
            raise ModelRejected(f"{path} must hold exactly one Piper voice (.onnx with its .onnx.json)")
        voice = voices[0]
    if voice.suffix != ".onnx":
        raise ModelRejected(f"{voice} is not a Piper voice (.onnx)")
    config_file = Path(f"{voice}.json")
    if not config_file.is_file():
        raise ModelRejected(f"{voice} is not a Piper voice: {config_file.name} is missing beside it")
    config = _json(config_file)
    rate = (config.get("audio") or {}).get("sample_rate")
    if not isinstance(rate, int) or "phoneme_id_map" not in config:
        raise ModelRejected(
            f"{config_file} is not a Piper voice config (no audio.sample_rate or phoneme_id_map)"
        )
    language = (config.get("language") or {}).get("code") or (config.get("espeak") or {}).get("voice")
    info = {
        "format": "piper",
        "sample_rate": rate,
        "language": language,
        "languages": [str(language).replace("_", "-").split("-")[0]] if language else ["en"],
        "quality": (config.get("audio") or {}).get("quality"),
        "dataset": config.get("dataset") or voice.stem,
        "speakers": config.get("num_speakers", 1),
        "context_length": 0,
        "quantization": None,
    }
    return Inspected("tts", (("voice.onnx", voice), ("voice.onnx.json", config_file)), info)
