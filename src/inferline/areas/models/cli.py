"""`inferline models add|remove|list|show`: the model registry from the command line (an admin action; over
HTTP only for `admin`-scoped keys, `/v2/admin/models` in `admin_routes`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from inferline import catalog
from inferline.areas.models.config import SettingsError, parse_set
from inferline.areas.models.hub import HubError
from inferline.areas.models.inspect import KINDS, ModelRejected
from inferline.areas.models.registry import ModelRegistry, Registered, RegistryError
from inferline.areas.models.service import ModelService
from inferline.config import Settings
from inferline.stores.db import Database

EXPECTED = (ModelRejected, RegistryError, HubError, SettingsError)


def _fail(message: str) -> int:
    print(f"inferline: error: {message}", file=sys.stderr)
    return 1


def _database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    return db


def _service(settings: Settings) -> ModelService:
    """The models as the server sees them: the models file applied and every setting checked."""
    from inferline.areas.models.wiring import build_models

    return build_models(settings, _database(settings))


def _registry(settings: Settings) -> ModelRegistry:
    """The registry alone (adding and removing do not depend on the models file)."""
    return ModelRegistry(_database(settings), settings.models_dir)


def human(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n:.1f} GB"


def _loaded(settings: Settings, server: str | None) -> set[str]:
    """Models the running server has loaded (its `GET /ready`); empty when no server answers."""
    base = server or f"http://{settings.host}:{settings.port}"
    try:
        response = httpx.get(base.rstrip("/") + "/ready", timeout=2.0)
        return set(response.json().get("loaded") or [])
    except (httpx.HTTPError, ValueError, AttributeError):
        return set()


def cmd_add(settings: Settings, args: argparse.Namespace) -> int:
    try:
        model_settings = parse_set(args.set)
        registry = _registry(settings)
        record = registry.add(
            args.source,
            model_id=args.id,
            kind=args.kind,
            aliases=tuple(args.alias),
            settings=model_settings,
            link=args.link,
            say=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except EXPECTED as exc:
        return _fail(str(exc))
    print(f"registered {record.id} ({record.kind}, {human(record.size)}) in {registry.directory(record)}")
    _print_record(record)
    return 0


def cmd_remove(settings: Settings, args: argparse.Namespace) -> int:
    try:
        record = _registry(settings).remove(args.model_id)
    except EXPECTED as exc:
        return _fail(str(exc))
    print(f"removed {record.id}" + (" (its linked source files are left in place)" if record.linked else ""))
    return 0


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    try:
        models = _service(settings)
    except EXPECTED as exc:
        return _fail(str(exc))
    rows = models.rows(_loaded(settings, args.server))
    if args.installed:
        rows = [r for r in rows if r.state in ("installed", "loaded", "remote")]
    width = max([len(r.id) for r in rows] + [5])
    print(f"{'MODEL':{width}}  {'KIND':10}  {'SIZE':>9}  {'QUANT':8}  {'STATE':9}  SOURCE")
    for r in rows:
        quant = r.quantization or "-"
        print(f"{r.id:{width}}  {r.kind:10}  {human(r.size):>9}  {quant:8}  {r.state:9}  {r.source}")
    return 0


def _print_record(record: Registered) -> None:
    fields: list[tuple[str, Any]] = [
        ("id", record.id),
        ("kind", record.kind),
        ("source", record.source),
        ("files", "linked" if record.linked else "copied"),
        ("size", human(record.size)),
        ("aliases", ", ".join(record.aliases) or "-"),
        ("settings", record.settings.model_dump(exclude_none=True) or "-"),
    ]
    for key, value in record.info.items():
        if key == "chat_template" and isinstance(value, str):
            value = f"{len(value)} characters" if value else "-"
        fields.append((key, value))
    for key, value in fields:
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        print(f"{key + ':':16}{shown}")
    for f in record.files:
        print(f"{'file:':16}{f['name']}  {human(f['size'])}  sha256 {f['sha256']}")


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    try:
        models = _service(settings)
    except EXPECTED as exc:
        return _fail(str(exc))
    record = models.registry.get(args.model_id)
    if record is not None:
        _print_record(record)
        return 0
    entry = next((e for e in catalog.CATALOG if e.id == args.model_id), None)
    if entry is not None:
        state = "installed" if catalog.is_installed(settings.models_dir, entry) else "not installed"
        print(f"{'id:':16}{entry.id}\n{'kind:':16}{entry.kind}\n{'source:':16}catalog ({state})")
        print(f"{'parameters:':16}{entry.parameters}\n{'context_length:':16}{entry.context_length}")
        for key, value in entry.options.items():
            print(f"{key + ':':16}{value}")
        return 0
    for kind in ("chat", "embeddings"):
        remote = models.remote(kind)  # type: ignore[arg-type]
        if args.model_id in remote:
            cfg = remote[args.model_id]
            print(f"{'id:':16}{args.model_id}\n{'kind:':16}{kind}\n{'source:':16}remote {cfg.url}")
            return 0
    return _fail(f"no model is named {args.model_id!r} (see `inferline models list`)")


def add_commands(models: Any) -> None:
    """Add `add`, `remove`, `list` and `show` to the `inferline models` sub-commands."""
    add = models.add_parser(
        "add",
        help="register a model: a GGUF file, an ONNX embeddings / Whisper / Piper directory, or hf://owner/repo",
    )
    add.add_argument("source", metavar="PATH_OR_URI", help="a path, or hf://owner/repo[@revision][/file]")
    add.add_argument("--id", default=None, help="the model id (default: local/<name> or owner/repo)")
    add.add_argument("--kind", choices=KINDS, default=None, help="chat, embeddings, stt or tts (detected)")
    add.add_argument("--alias", action="append", default=[], metavar="NAME", help="another name (repeatable)")
    add.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a per-model setting, e.g. context=8192, threads=4, sampling.temperature=0.7 (repeatable)",
    )
    add.add_argument("--link", action="store_true", help="link the files instead of copying them")
    add.set_defaults(func=cmd_add)
    remove = models.add_parser("remove", help="forget a registered model and delete its copied files")
    remove.add_argument("model_id")
    remove.set_defaults(func=cmd_remove)
    listing = models.add_parser("list", help="packaged, registered and remote models and their state")
    listing.add_argument("--installed", action="store_true", help="only installed, loaded and remote models")
    listing.add_argument(
        "--server", default=None, help="server asked which models are loaded (default: INFERLINE_HOST:PORT)"
    )
    listing.set_defaults(func=cmd_list)
    show = models.add_parser("show", help="everything known about one model")
    show.add_argument("model_id")
    show.set_defaults(func=cmd_show)


def preflight(settings: Settings) -> int:
    """0 when the models file and the registered models' settings can be honoured; else 1 after one line
    naming the problem (run before `serve` and `worker` start, so they fail without a traceback)."""
    try:
        _service(settings)
    except EXPECTED as exc:
        return _fail(str(exc))
    return 0
