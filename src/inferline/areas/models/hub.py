"""`hf://owner/repo[@revision][/path]` sources, fetched with `huggingface_hub`.

The hub client does the transfer: it honours `HF_ENDPOINT` (a mirror or a private hub), `HF_TOKEN`, its cache
(`HF_HOME`, `HF_HUB_CACHE`), resumes interrupted downloads and shows a progress bar. Only the files the model
needs are fetched: the one GGUF (a repo with several must be narrowed to a file), the chosen ONNX with its
tokenizer and pooling config, the Whisper files, or the Piper voice and its config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from inferline.areas.models.inspect import EMBEDDING_EXTRAS, WHISPER_EXTRAS, ModelRejected
from inferline.catalog import ModelKind

PREFIX = "hf://"


class HubError(RuntimeError):
    """The hub could not be used (unreachable, unknown repository, no access, missing file): one line."""


@dataclass(frozen=True)
class HubSource:
    """A parsed `hf://` URI."""

    repo: str
    revision: str | None
    path: str  # a file or folder in the repository; "" for the whole repository

    @property
    def uri(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{PREFIX}{self.repo}{rev}" + (f"/{self.path}" if self.path else "")

    @property
    def default_id(self) -> str:
        """`owner/repo`, or `owner/repo-<file stem>` when one file of the repository was named."""
        if self.path and "." in PurePosixPath(self.path).name:
            return f"{self.repo}-{PurePosixPath(self.path).stem}"
        return self.repo


def is_hub(source: str) -> bool:
    return source.startswith(PREFIX)


def parse(uri: str) -> HubSource:
    """`hf://owner/repo[@rev][/path]` → its parts; a `ModelRejected` when it is not of that form."""
    parts = uri.removeprefix(PREFIX).strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise ModelRejected(f"{uri}: a hub source is hf://owner/repo[@revision][/file]")
    name, _, revision = parts[1].partition("@")
    return HubSource(f"{parts[0]}/{name}", revision or None, "/".join(parts[2:]))


def select(names: list[str], path: str, kind: ModelKind | None, uri: str) -> list[str]:
    """The repository files to fetch for `path` (a file, a folder or "") and `kind` (None: detect)."""
    if path and path in names:
        return _for_file(names, path, uri)
    scope = f"{path}/" if path else ""
    here = [n.removeprefix(scope) for n in names if n.startswith(scope)]
    if not here:
        raise HubError(f"{uri}: the repository has no file or folder {path!r}")
    chosen = _for_folder(here, kind, uri)
    return [scope + n for n in chosen]


def _for_file(names: list[str], path: str, uri: str) -> list[str]:
    folder = str(PurePosixPath(path).parent).removeprefix(".")
    if path.endswith(".gguf"):
        return [path]
    if path.endswith(".onnx"):
        if f"{path}.json" in names:
            return [path, f"{path}.json"]  # a Piper voice
        root = (
            str(PurePosixPath(folder).parent).removeprefix(".")
            if PurePosixPath(folder).name == "onnx"
            else folder
        )
        return [path, *_onnx_companions(names, path, folder, root)]
    if PurePosixPath(path).name == "model.bin":
        return _whisper(names, folder)
    raise ModelRejected(f"{uri}: name a .gguf or .onnx file, a Whisper model.bin, or a folder")


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _onnx_companions(names: list[str], model: str, folder: str, root: str) -> list[str]:
    extra = [n for n in (f"{model}_data", f"{model}.data") if n in names]
    tokenizer = next(
        (t for t in (_join(folder, "tokenizer.json"), _join(root, "tokenizer.json")) if t in names), None
    )
    if tokenizer is None:
        raise ModelRejected(f"{model} has no tokenizer: the repository has no tokenizer.json beside it")
    return [*extra, tokenizer, *(_join(root, e) for e in EMBEDDING_EXTRAS if _join(root, e) in names)]


def _whisper(names: list[str], folder: str) -> list[str]:
    wanted = [
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
        "vocabulary.json",
        *WHISPER_EXTRAS,
    ]
    return [_join(folder, n) for n in wanted if _join(folder, n) in names]


def _for_folder(here: list[str], kind: ModelKind | None, uri: str) -> list[str]:
    ggufs = sorted(n for n in here if n.endswith(".gguf") and "/" not in n)
    voices = sorted(n for n in here if n.endswith(".onnx") and f"{n}.json" in here)
    onnx = (
        ["model.onnx"]
        if "model.onnx" in here
        else ["onnx/model.onnx"]
        if "onnx/model.onnx" in here
        else sorted(
            n for n in here if n.startswith("onnx/model") and n.endswith(".onnx") and n.count("/") == 1
        )
    )
    if kind in (None, "stt") and "model.bin" in here:
        return _whisper(here, "")
    if kind in (None, "chat") and ggufs:
        if len(ggufs) > 1:
            raise ModelRejected(
                f"{uri} holds {len(ggufs)} GGUF files ({', '.join(ggufs[:6])}"
                f"{', …' if len(ggufs) > 6 else ''}); name one: {uri.rstrip('/')}/<file>.gguf"
            )
        return ggufs
    if kind in (None, "embeddings") and onnx and not voices:
        if len(onnx) > 1:
            raise ModelRejected(f"{uri} holds several ONNX models ({', '.join(onnx)}); name one of the files")
        folder = str(PurePosixPath(onnx[0]).parent).removeprefix(".")
        return [onnx[0], *_onnx_companions(here, onnx[0], folder, "")]
    if kind in (None, "tts") and voices:
        if len(voices) > 1:
            raise ModelRejected(
                f"{uri} holds several Piper voices ({', '.join(voices[:6])}); name one .onnx file"
            )
        return [voices[0], f"{voices[0]}.json"]
    what = f"{kind} model" if kind else "model inferline serves (GGUF, ONNX embeddings, Whisper, Piper)"
    raise ModelRejected(f"{uri} holds no {what}")


def fetch(uri: str, kind: ModelKind | None) -> tuple[HubSource, str]:
    """Download what `uri` names into the hub cache; returns the source and the local path of the model
    (the named file, or the folder that holds the fetched files)."""
    source = parse(uri)
    try:
        import httpx2
        from huggingface_hub import HfApi, constants, hf_hub_download
        from huggingface_hub import errors as hub_errors
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise HubError(
            f"hf:// sources need huggingface_hub ({exc}): pip install 'inferline[engines]'"
        ) from None
    endpoint = constants.ENDPOINT
    try:
        info = HfApi().model_info(source.repo, revision=source.revision)
        names = [s.rfilename for s in info.siblings or []]
        chosen = select(names, source.path, kind, source.uri)
        local = ""
        for name in chosen:
            local = hf_hub_download(source.repo, name, revision=info.sha)
    except (ModelRejected, HubError):
        raise
    except hub_errors.GatedRepoError:
        raise HubError(f"{source.repo} on {endpoint} is gated: accept its terms and set HF_TOKEN") from None
    except hub_errors.RepositoryNotFoundError:
        raise HubError(
            f"{source.repo} is not on {endpoint}, or it is private and HF_TOKEN does not grant access"
        ) from None
    except hub_errors.RevisionNotFoundError:
        raise HubError(f"{source.repo} on {endpoint} has no revision {source.revision!r}") from None
    except hub_errors.RemoteEntryNotFoundError as exc:
        raise HubError(f"{source.uri}: a file is missing on {endpoint} ({exc})") from None
    except hub_errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise HubError(f"{endpoint} answered HTTP {status} for {source.repo}") from None
    except (
        httpx2.TransportError,
        hub_errors.OfflineModeIsEnabled,
        hub_errors.LocalEntryNotFoundError,
    ) as exc:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HubError(
            f"cannot reach the Hugging Face hub at {endpoint} ({type(exc).__name__}: {cause})"
        ) from None
    snapshot = local.removesuffix(chosen[-1]).rstrip("/")
    return source, f"{snapshot}/{source.path}" if source.path else snapshot
