"""`inferline bundle`: one tarball that installs and starts inferline on a machine with no network.

Built on a connected machine from a checkout. The tarball holds, under one top folder:

- `wheels/`: every wheel the runtime needs for the target Python and platform (`pip wheel` of the project's
  pinned dependencies with the chosen extras at the versions installed here, or `pip download` for another
  target; pip itself; the project's own wheel); `requirements.txt` pins each by version and by the sha256
  computed from the downloaded file, so the installer's `pip install --no-index --require-hashes` refuses
  anything else;
- `models/<slug>/`: the profile's catalog models as `inferline models install` assembles them (copied from
  this machine's verified install, else downloaded and assembled), each file checked against the catalog's
  sha256 while it is written into the tarball, with its `.verified.json` marker;
- `added/<slug>/` and `models.toml.in`: models registered with `inferline models add` and named with
  `--model`; the installer writes the models file (`INFERLINE_MODELS_FILE`) that registers them at start-up;
- `install.sh`, `bundle.env`, `manifest.json`, `packaging/` (systemd units, container entry point and health
  check) and `SHA256SUMS`, which the installer checks before anything else.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from inferline import catalog
from inferline.config import Settings

DEFAULT_EXTRAS = "engines,audio,postgres,s3"
PACKAGING_FILES = (
    "install.sh",
    "container-entrypoint.sh",
    "healthcheck.py",
    "systemd/inferline-api.service",
    "systemd/inferline-worker.service",
)


class BundleError(RuntimeError):
    """The bundle cannot be built (no checkout, a non-wheel download, a checksum that does not match)."""


@dataclass(frozen=True)
class Target:
    """The Python and platform the wheels are for; empty fields mean this interpreter's."""

    python_version: str | None = None
    platforms: tuple[str, ...] = ()

    @property
    def python(self) -> str:
        return self.python_version or f"{sys.version_info.major}.{sys.version_info.minor}"

    @property
    def platform(self) -> str:
        return self.platforms[0] if self.platforms else sysconfig.get_platform().replace("-", "_")

    def pip_args(self) -> list[str]:
        """`pip download` options selecting the target's wheels (none: this interpreter's)."""
        if not self.python_version and not self.platforms:
            return []
        args = ["--implementation", "cp"]
        if self.python_version:
            args += ["--python-version", self.python_version]
        for platform in self.platforms:
            args += ["--platform", platform]
        return args


@dataclass
class Summary:
    """What went into a bundle (also written as its `manifest.json`)."""

    path: Path
    profile: str
    python: str
    platform: str
    extras: str
    version: str
    wheels: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def manifest(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "profile": self.profile,
            "python": self.python,
            "platform": self.platform,
            "extras": self.extras,
            "wheels": self.wheels,
            "models": self.models,
            "registered": self.registered,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def checkout(source: Path | None = None) -> Path:
    """The project checkout to bundle: `source`, else the one this module was imported from."""
    root = source or Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "packaging" / "install.sh").is_file():
        raise BundleError(f"{root} is not an inferline checkout (pyproject.toml and packaging/ are needed)")
    return root


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def installed_versions() -> str:
    """`name==version` of every distribution in this environment but inferline: the versions it was tested
    with, used as pip constraints so that the bundle holds those and not newer releases of unpinned
    transitive dependencies (or another build of one, e.g. torch's CUDA wheels instead of the CPU build)."""
    from importlib.metadata import distributions

    pins = {
        f"{d.metadata['Name'].lower()}=={d.version}\n"
        for d in distributions()
        if d.metadata["Name"] and d.metadata["Name"].lower() != "inferline"
    }
    return "".join(sorted(pins))


def download_wheels(root: Path, dest: Path, extras: str, target: Target) -> Path:
    """The project's wheel plus every dependency's wheel for `target` (and pip's own) into `dest`; returns
    the project's wheel. For this machine's Python and platform, the versions are those installed here (see
    `installed_versions`), and a dependency published only as source is built into a wheel here (so the target
    needs no compiler); for another target pip resolves afresh and every dependency needs a binary wheel."""
    import pip

    source = dest.parent / "source"  # a clean copy: no stale setuptools build/ of the checkout gets in
    shutil.copytree(root / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, source / name)
    _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), str(source))
    (project,) = dest.glob("inferline-*.whl")
    requirement = f"{project}[{extras}]" if extras else str(project)
    if target.pip_args():
        fetch = ["download", "--only-binary=:all:", "--dest", str(dest), *target.pip_args()]
    else:
        constraints = dest.parent / "constraints.txt"
        constraints.write_text(installed_versions())
        fetch = ["wheel", "--wheel-dir", str(dest), "--constraint", str(constraints)]
    _pip(*fetch, requirement, f"pip=={pip.__version__}")
    strays = sorted(p.name for p in dest.iterdir() if p.suffix != ".whl")
    if strays:
        raise BundleError(f"pip downloaded files that are not wheels: {', '.join(strays)}")
    return project


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def requirements(wheels: list[Path], project: Path, extras: str) -> str:
    """`name==version --hash=sha256:…` for every wheel (one line per distribution, each file's hash)."""
    hashes: dict[tuple[str, str], list[str]] = {}
    for wheel in sorted(wheels):
        name, version = wheel.name.split("-")[:2]
        hashes.setdefault((name.lower().replace("_", "-"), version), []).append(sha256_file(wheel))
    lines = []
    for (name, version), digests in sorted(hashes.items()):
        pinned = f"{name}[{extras}]" if wheel_name(project) == name and extras else name
        lines.append(f"{pinned}=={version} " + " ".join(f"--hash=sha256:{d}" for d in digests))
    return "\n".join(lines) + "\n"


def wheel_name(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower().replace("_", "-")


class _Hashing(io.RawIOBase):
    """Reads a file while hashing what was read."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        block = self.fh.read(size)
        self.digest.update(block)
        return block


class Writer:
    """The tarball being written, and the sha256 of every file in it (for `SHA256SUMS`)."""

    def __init__(self, tar: tarfile.TarFile, top: str) -> None:
        self.tar = tar
        self.top = top
        self.sums: dict[str, str] = {}

    def add_file(self, path: Path, name: str, mode: int = 0o644, expected: str | None = None) -> int:
        """Add `path` (links followed) as `name`, its sha256 checked against `expected` while it is read;
        returns its size."""
        info = tarfile.TarInfo(f"{self.top}/{name}")
        with path.open("rb") as fh:
            info.size = os.fstat(fh.fileno()).st_size
            info.mode, info.mtime = mode, int(time.time())
            reader = _Hashing(fh)
            self.tar.addfile(info, reader)
        actual = reader.digest.hexdigest()
        if expected is not None and actual != expected:
            raise BundleError(f"{path}: sha256 {actual} != {expected} (reinstall the model)")
        self.sums[name] = actual
        return info.size

    def add_bytes(self, data: bytes, name: str, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(f"{self.top}/{name}")
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))
        self.sums[name] = hashlib.sha256(data).hexdigest()


def add_catalog_model(writer: Writer, entry: catalog.ModelEntry, models_dir: Path, staging: Path) -> None:
    """`models/<slug>/`: the model's files from this machine's verified install, else downloaded and
    assembled (verified) into `staging`; every file with a catalog sha256 is checked as it is written."""
    if catalog.is_installed(models_dir, entry):
        directory = catalog.model_dir(models_dir, entry)
        print(f"{entry.id}: from {directory}", flush=True)
    else:
        print(f"{entry.id}: not installed in {models_dir}; downloading its packages ...", flush=True)
        catalog.install(staging, [entry])
        directory = catalog.model_dir(staging, entry)
    sizes = {
        f.name: writer.add_file(directory / f.name, f"models/{entry.slug}/{f.name}", expected=f.sha256)
        for f in entry.files
    }
    marker = {"id": entry.id, "sha256": {f.name: f.sha256 for f in entry.files}, "bytes": sizes}
    writer.add_bytes(json.dumps(marker, indent=1).encode(), f"models/{entry.slug}/{catalog.MARKER}")


def toml_value(value: object) -> str:
    """A TOML value for the models file: strings, numbers, booleans, lists and (inline) tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise BundleError(f"cannot write {value!r} into the models file")


def add_registered_models(writer: Writer, settings: Settings, model_ids: list[str]) -> list[str]:
    """`added/<slug>/` (each file checked against the registry's sha256) and `models.toml.in`: one models
    file entry per model, linking its installed files (`@PREFIX@` is replaced by the installer)."""
    from inferline.areas.models.registry import ModelRegistry
    from inferline.stores.db import Database

    db = Database(settings.resolved_database_url)
    try:
        db.migrate()
        registry = ModelRegistry(db, settings.models_dir)
        records = []
        for model_id in model_ids:
            record = registry.get(model_id)
            if record is None:
                raise BundleError(
                    f"{model_id!r} is neither a catalog model nor registered in "
                    f"{settings.resolved_database_url} (`inferline models list`)"
                )
            records.append(record)
    finally:
        db.dispose()
    entries = []
    for record in records:
        print(f"{record.id}: registered, from {registry.directory(record)}", flush=True)
        for f in record.files:
            path = registry.directory(record) / f["name"]
            writer.add_file(path, f"added/{record.slug}/{f['name']}", expected=f["sha256"])
        names = [f["name"] for f in record.files]
        source = f"@PREFIX@/added/{record.slug}"
        if record.kind == "chat":
            source += "/" + next(n for n in names if n.endswith(".gguf"))
        lines = ["[[models]]", f"id = {toml_value(record.id)}", f"kind = {toml_value(record.kind)}"]
        lines += [f"source = {toml_value(source)}", "link = true"]
        if record.aliases:
            lines.append(f"aliases = {toml_value(list(record.aliases))}")
        for key, value in record.settings.model_dump(exclude_none=True).items():
            lines.append(f"{key} = {toml_value(value)}")
        entries.append("\n".join(lines))
    header = "# Models registered with `inferline models add` on the machine that built this bundle.\n\n"
    writer.add_bytes((header + "\n\n".join(entries) + "\n").encode(), "models.toml.in")
    return [r.id for r in records]


def build(
    settings: Settings,
    profile: str,
    output: Path,
    *,
    models: Sequence[str] = (),
    extras: str = DEFAULT_EXTRAS,
    target: Target = Target(),
    source: Path | None = None,
) -> Summary:
    """Write the bundle into `output` (see the module docstring); returns what it holds."""
    started = time.monotonic()
    root = checkout(source)
    entries = catalog.for_profile(profile)
    if not entries:
        raise BundleError(f"no catalog model is in profile {profile!r}")
    registered: list[str] = []
    for model_id in models:
        try:
            entry = catalog.find(model_id)
        except catalog.UnknownModel:
            registered.append(model_id)
            continue
        if entry not in entries:
            entries.append(entry)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=output) as tmp:
        wheels_dir = Path(tmp) / "wheels"
        project = download_wheels(root, wheels_dir, extras, target)
        version = project.name.split("-")[1]
        name = f"inferline-{version}-{profile}-py{target.python}-{target.platform}"
        path = output / f"{name}.tar"
        summary = Summary(path, profile, target.python, target.platform, extras, version)
        wheels = sorted(wheels_dir.glob("*.whl"))
        summary.wheels = [w.name for w in wheels]
        (pip_wheel,) = [w.name for w in wheels if wheel_name(w) == "pip"]
        partial = path.with_name(path.name + ".partial")
        try:
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                writer = Writer(tar, name)
                packaging = root / "packaging"
                writer.add_file(packaging / "install.sh", "install.sh", mode=0o755)
                for rel in PACKAGING_FILES:
                    writer.add_file(
                        packaging / rel, f"packaging/{rel}", mode=0o755 if rel.endswith(".sh") else 0o644
                    )
                for wheel in wheels:
                    writer.add_file(wheel, f"wheels/{wheel.name}")
                writer.add_bytes(requirements(wheels, project, extras).encode(), "requirements.txt")
                for entry in entries:
                    add_catalog_model(writer, entry, settings.models_dir, Path(tmp) / "models")
                summary.models = [e.id for e in entries]
                if registered:
                    summary.registered = add_registered_models(writer, settings, registered)
                env = {
                    "BUNDLE_VERSION": version,
                    "BUNDLE_PROFILE": profile,
                    "BUNDLE_PYTHON": target.python,
                    "BUNDLE_PLATFORM": target.platform,
                    "BUNDLE_PIP_WHEEL": pip_wheel,
                }
                text = "".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items())
                writer.add_bytes(text.encode(), "bundle.env")
                writer.add_bytes(json.dumps(summary.manifest(), indent=1).encode(), "manifest.json")
                sums = "".join(f"{digest}  {n}\n" for n, digest in sorted(writer.sums.items()))
                writer.add_bytes(sums.encode(), "SHA256SUMS")
            partial.rename(path)
        finally:
            partial.unlink(missing_ok=True)
    summary.seconds = time.monotonic() - started
    return summary


def cmd_bundle(settings: Settings, args: argparse.Namespace) -> int:
    target = Target(args.python_version, tuple(args.platform))
    try:
        summary = build(
            settings,
            args.profile,
            Path(args.output),
            models=args.model,
            extras=args.extras,
            target=target,
            source=Path(args.source) if args.source else None,
        )
    except BundleError as exc:
        print(f"inferline: error: {exc}", file=sys.stderr)
        return 1
    size = catalog.human_bytes(summary.path.stat().st_size)
    print(
        f"wrote {summary.path} ({size}, {len(summary.wheels)} wheels, "
        f"{len(summary.models) + len(summary.registered)} models) in {summary.seconds:.0f} s"
    )
    print(
        f"on the target: tar -xf {summary.path.name} && {summary.path.name.removesuffix('.tar')}/install.sh"
    )
    return 0


def add_commands(sub: Any) -> None:
    """Add `inferline bundle` to the top-level sub-commands."""
    bundle = sub.add_parser(
        "bundle", help="build an offline install bundle: wheels, models and an installer in one tarball"
    )
    bundle.add_argument("--profile", default=None, help="the model profile (default: INFERLINE_PROFILE)")
    bundle.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID",
        help="also bundle this catalog model or model registered with `inferline models add` (repeatable)",
    )
    bundle.add_argument(
        "--extras", default=DEFAULT_EXTRAS, help=f"the project's extras (default {DEFAULT_EXTRAS})"
    )
    bundle.add_argument(
        "--python-version", default=None, help="the target's Python, e.g. 3.12 (default: this one's)"
    )
    bundle.add_argument(
        "--platform",
        action="append",
        default=[],
        help="a wheel platform tag of the target, e.g. manylinux_2_28_aarch64 (repeatable; default: "
        "this machine's)",
    )
    bundle.add_argument("--output", default="dist", help="the folder the tarball goes to (default: dist)")
    bundle.add_argument("--source", default=None, help="the checkout to bundle (default: this one)")
    bundle.set_defaults(func=cmd_bundle)
