"""The model registry: models added from a path or a hub, persisted in the database beside the catalog.

`add` recognises the files (`inspect`), copies or links them into a staging folder beside
`<models_dir>/<slug>/`, verifies each copy against the source's sha256, writes the folder's `.verified.json`
marker, renames the folder into place and only then records the model; every API replica and worker then sees
it as a `ModelEntry`, installed like a packaged model.

Processes sharing a models directory (replicas and workers starting with one models file) take a file lock per
model (`<models_dir>/.<slug>.lock`) around adding and removing it, so a record always has its files: a process
that finds the model registered from the same source while it waited uses that record (`exist_ok`), and
staging folders left by a killed process are deleted by the next one holding the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError

from inferline import catalog
from inferline.areas.models import hub
from inferline.areas.models.config import ALIAS_KINDS, ModelSettings, check
from inferline.areas.models.inspect import Inspected, ModelRejected, inspect
from inferline.catalog import MARKER, ModelEntry, ModelFile, ModelKind
from inferline.stores.db import Database
from inferline.stores.models_tables import RegisteredModel

MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]*(/[A-Za-z0-9][A-Za-z0-9._:+-]*)?$")
TASKS = {
    "chat": "text-generation",
    "embeddings": "feature-extraction",
    "stt": "automatic-speech-recognition",
    "tts": "text-to-speech",
}


class RegistryError(ValueError):
    """A registration or removal that cannot be done (a name taken, no such model): one line."""


@dataclass(frozen=True)
class Registered:
    """One registry record."""

    id: str
    kind: ModelKind
    source: str
    slug: str
    linked: bool
    files: tuple[dict[str, Any], ...]
    size: int
    aliases: tuple[str, ...]
    settings: ModelSettings
    info: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: RegisteredModel) -> Registered:
        return cls(
            row.id,
            row.kind,  # type: ignore[arg-type]
            row.source,
            row.slug,
            row.linked,
            tuple(row.files),
            row.size,
            tuple(row.aliases),
            ModelSettings.model_validate(row.settings or {}),
            dict(row.info or {}),
            row.created_at,
        )

    def entry(self) -> ModelEntry:
        """The `ModelEntry` the rest of inferline serves it through."""
        info = self.info
        parameters = int(info.get("parameters") or 0)
        name = info.get("name") or self.id
        arch = info.get("architecture")
        return ModelEntry(
            id=self.id,
            kind=self.kind,
            packages=(),
            files=tuple(ModelFile(f["name"], (), f["sha256"]) for f in self.files),
            profiles=frozenset(),
            license=str(info.get("license") or "unknown"),
            parameters=parameters,
            context_length=int(info.get("context_length") or 0),
            description=f"{name}" + (f" ({arch})" if arch else "") + f", registered from {self.source}.",
            languages=tuple(info.get("languages") or ("en",)),
            tier="small" if parameters < 3e9 else "medium" if parameters < 30e9 else "large",
            task=TASKS[self.kind],
            created=self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            fine_tunable=_fine_tunable(arch) if self.kind == "chat" else False,
            options={
                k: info[k] for k in ("quantization", "dimensions", "pooling", "max_tokens") if info.get(k)
            },
        )


def _fine_tunable(architecture: str | None) -> bool:
    """The LoRA trainer's rule for packaged models applies to registered GGUFs too."""
    from inferline.engines.lora_trainer import SUPPORTED_ARCHS

    return architecture in SUPPORTED_ARCHS


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _copy(source: Path, target: Path, progress: Callable[[int], None]) -> str:
    """Copy `source` to `target`, hashing the bytes read; returns their sha256."""
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as out:
        while block := src.read(1 << 22):
            digest.update(block)
            out.write(block)
            progress(len(block))
    return digest.hexdigest()


class ModelRegistry:
    """Registered models in the database; their files under `models_dir`."""

    def __init__(self, db: Database, models_dir: Path) -> None:
        self.db = db
        self.models_dir = models_dir

    def all(self) -> list[Registered]:
        with self.db.session() as s:
            return [Registered.of(r) for r in s.scalars(select(RegisteredModel).order_by(RegisteredModel.id))]

    def get(self, model_id: str) -> Registered | None:
        with self.db.session() as s:
            row = s.get(RegisteredModel, model_id)
            return Registered.of(row) if row is not None else None

    def directory(self, record: Registered) -> Path:
        return self.models_dir / record.slug

    # ---- add ---------------------------------------------------------------------------------------------
    def add(
        self,
        source: str,
        *,
        model_id: str | None = None,
        kind: ModelKind | None = None,
        aliases: tuple[str, ...] = (),
        settings: ModelSettings | None = None,
        link: bool = False,
        say: Callable[[str], None] = lambda _: None,
        exist_ok: bool = False,
    ) -> Registered:
        """Register the model at `source` (a path or an `hf://` URI); see the module docstring. With
        `exist_ok`, a model already registered under this id from the same source and of the same kind, its
        files in place, is returned as it is (another process registered it first)."""
        settings = settings or ModelSettings()
        if hub.is_hub(source):
            say(f"fetching {source} through the Hugging Face hub ...")
            parsed, local = hub.fetch(source, kind)
            path, default_id, source = Path(local), parsed.default_id, parsed.uri
        else:
            path = Path(source).expanduser().absolute()
            default_id, source = f"local/{path.stem if path.is_file() else path.name}", str(path)
        found = inspect(path, kind)
        model_id = model_id or default_id
        check(model_id, found.kind, False, settings, "--set")
        slug = model_id.replace("/", "--")
        with self._locked(slug):  # one registration of a name at a time, across processes on this host
            existing = self.get(model_id)
            if exist_ok and existing is not None and self._same(existing, found.kind, source):
                return existing
            self._check_names(model_id, found.kind, aliases)
            return self._register(found, model_id, slug, source, link, aliases, settings, say)

    def _same(self, record: Registered, kind: ModelKind, source: str) -> bool:
        """The record is of `kind`, from `source`, and its verified files are in place."""
        installed = catalog.is_installed(self.models_dir, record.entry())
        return record.kind == kind and record.source == source and installed

    @contextlib.contextmanager
    def _locked(self, slug: str) -> Iterator[None]:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with (self.models_dir / f".{slug}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _register(
        self,
        found: Inspected,
        model_id: str,
        slug: str,
        source: str,
        link: bool,
        aliases: tuple[str, ...],
        settings: ModelSettings,
        say: Callable[[str], None],
    ) -> Registered:
        directory = self.models_dir / slug
        self._clear_staging(slug)
        staging = Path(tempfile.mkdtemp(prefix=f".{slug}.adding-", dir=self.models_dir))
        staging.chmod(0o755)  # as a folder made by mkdir (mkdtemp's is private to this user)
        say(f"{'linking' if link else 'copying'} {found.kind} model {model_id} into {directory} ...")
        try:
            files = self._install(found, staging, link, model_id)
            _delete(directory)  # leftovers no record owns (`_check_names` found none with this slug)
            staging.rename(directory)  # the files appear complete and verified, or not at all
            row = RegisteredModel(
                id=model_id,
                kind=found.kind,
                source=source,
                slug=slug,
                linked=link,
                files=files,
                size=sum(f["size"] for f in files),
                aliases=list(aliases),
                settings=settings.model_dump(exclude_none=True),
                info={k: v for k, v in found.info.items() if v is not None},
            )
            with self.db.session() as s:
                s.add(row)
        except IntegrityError:
            _delete(directory)
            raise RegistryError(f"a model named {model_id!r} was registered meanwhile") from None
        except DataError as exc:  # e.g. metadata the database's encoding cannot hold
            _delete(directory)
            cause = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
            raise RegistryError(f"the database cannot store {model_id!r}: {cause}") from None
        except BaseException:
            _delete(directory)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        record = self.get(model_id)
        assert record is not None
        return record

    def _check_names(self, model_id: str, kind: ModelKind, aliases: tuple[str, ...]) -> None:
        for name in (model_id, *aliases):
            if len(name) > 200 or not MODEL_ID.match(name) or ".." in name:
                raise RegistryError(
                    f"{name!r} is not a valid model name (letters, digits, . _ - : +, at most one '/')"
                )
        if aliases and kind not in ALIAS_KINDS:
            raise RegistryError(f"aliases are supported for {', '.join(ALIAS_KINDS)} models, not {kind}")
        taken = {e.id: "a packaged model" for e in catalog.CATALOG}
        folders = {e.slug: e.id for e in catalog.CATALOG}
        for other in self.all():
            taken[other.id] = "a registered model"
            taken.update(dict.fromkeys(other.aliases, f"an alias of {other.id}"))
            folders[other.slug] = other.id
        for name in (model_id, *aliases):
            if name in taken:
                raise RegistryError(f"{name!r} is already {taken[name]}")
        if (owner := folders.get(model_id.replace("/", "--"))) is not None:
            raise RegistryError(f"{model_id!r} would share the models folder of {owner!r}; choose another id")
        if len(set(aliases)) != len(aliases) or model_id in aliases:
            raise RegistryError("the aliases must differ from each other and from the id")

    def _clear_staging(self, slug: str) -> None:
        """Delete the staging folders of adds and removes of `slug` that died (the caller holds its lock)."""
        for leftover in self.models_dir.glob(f".{glob.escape(slug)}.*-*"):
            prefix, _, suffix = leftover.name.rpartition(".")
            if prefix == f".{slug}" and suffix.startswith(("adding-", "removing-")) and leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)

    def _install(self, found: Inspected, directory: Path, link: bool, model_id: str) -> list[dict[str, Any]]:
        """Copy (or link) every file into the empty `directory`, verify it against the source's sha256, then
        write the marker."""
        total, done = found.size, [0]
        tty = sys.stderr.isatty()

        def progress(n: int) -> None:
            done[0] += n
            if tty:
                print(
                    f"\r  {done[0] / 1e6:,.1f} / {total / 1e6:,.1f} MB", end="", file=sys.stderr, flush=True
                )

        files = []
        for name, source in found.files:
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if link:
                expected = sha256_of(source)
                progress(source.stat().st_size)
                target.symlink_to(source.resolve())
            else:
                expected = _copy(source, target, progress)
            actual = sha256_of(target)
            if actual != expected:
                raise ModelRejected(
                    f"{name}: the copy's sha256 {actual} differs from the source's {expected}"
                )
            files.append({"name": name, "sha256": actual, "size": target.stat().st_size})
        if tty:
            print(file=sys.stderr)
        marker = {"id": model_id, "sha256": {f["name"]: f["sha256"] for f in files}}
        (directory / MARKER).write_text(json.dumps(marker, indent=1))
        return files

    # ---- remove ------------------------------------------------------------------------------------------
    def remove(self, model_id: str) -> Registered:
        """Forget a registered model and delete its folder (linked sources are left alone)."""
        record = self.get(model_id)
        if record is None:
            if any(e.id == model_id for e in catalog.CATALOG):
                raise RegistryError(
                    f"{model_id!r} is a packaged model; only registered models can be removed"
                )
            raise RegistryError(f"no registered model is named {model_id!r} (`inferline models list`)")
        with self._locked(record.slug):  # not while another process adds it
            with self.db.session() as s:
                row = s.get(RegisteredModel, model_id)
                if row is None:
                    raise RegistryError(f"{model_id!r} was removed meanwhile")
                s.delete(row)
            # The record is gone first: a crash now leaves only files no record owns (the next add of the
            # name deletes them), never a record without its files.
            directory = self.directory(record)
            if directory.is_dir() and not directory.is_symlink():
                trash = Path(tempfile.mkdtemp(prefix=f".{record.slug}.removing-", dir=self.models_dir))
                directory.rename(trash / "files")
                shutil.rmtree(trash)
            else:
                _delete(directory)
        return record


def _delete(path: Path) -> None:
    """Delete a folder, file or link at `path` if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        os.unlink(path)
