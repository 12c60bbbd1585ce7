"""The `inferline` command: serve, manage API keys, install and list models."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence

from inferline import catalog
from inferline.areas.fine_tuning.cli import add_commands as add_fine_tuning_commands
from inferline.config import Settings
from inferline.keys import ApiKeyService, s3_credentials
from inferline.stores.db import Database


def _keys(settings: Settings) -> ApiKeyService:
    db = Database(settings.resolved_database_url)
    db.migrate()
    return ApiKeyService(db)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from inferline.app import create_app

    if args.install_models:
        catalog.install(settings.models_dir, catalog.for_profile(settings.profile))
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from inferline.container import build_container

    container = build_container(settings)
    worker = container.start_worker()
    kinds = container.job_registry.kinds + container.training_registry.kinds
    print(f"worker {worker.worker_id} running job kinds: {', '.join(kinds) or 'none'}")
    # SIGTERM (orchestrators, systemd) stops like Ctrl-C: running jobs get the stop timeout to finish; a job
    # still running after it is re-run by another worker once its lease expires.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        worker.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        container.close()
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    info, secret = _keys(settings).create(args.tenant, name=args.name)
    access_key_id, s3_secret = s3_credentials(secret)
    print(f"id:     {info.id}\ntenant: {info.tenant_id}\nkey:    {secret}")
    print(f"s3 access key id: {access_key_id}\ns3 secret:        {s3_secret}")
    print("Keep the key now: only its hash is stored.", file=sys.stderr)
    return 0


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    print(f"{'ID':36}  {'TENANT':16}  {'PREFIX':8}  {'S3 ACCESS KEY ID':20}  {'CREATED':25}  STATUS")
    for k in _keys(settings).list(args.tenant):
        status = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        s3 = k.s3_access_key_id or "- (s3-credentials)"
        created = f"{k.created_at:%Y-%m-%dT%H:%M:%S%z}"
        print(f"{k.id:36}  {k.tenant_id:16}  {k.prefix:8}  {s3:20}  {created:25}  {status}")
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


def cmd_models_list(settings: Settings, args: argparse.Namespace) -> int:
    print(f"{'MODEL':40}  {'KIND':10}  {'PROFILES':14}  STATUS")
    for entry in catalog.CATALOG:
        status = "installed" if catalog.is_installed(settings.models_dir, entry) else "-"
        if args.installed and status != "installed":
            continue
        print(f"{entry.id:40}  {entry.kind:10}  {','.join(sorted(entry.profiles)):14}  {status}")
    return 0


def cmd_models_install(settings: Settings, args: argparse.Namespace) -> int:
    entries = [catalog.find(m) for m in args.models] if args.models else catalog.for_profile(args.profile)
    for entry in entries:
        print(f"installing {entry.id} ...", flush=True)
        catalog.install(settings.models_dir, [entry])
        print(f"  verified in {catalog.model_dir(settings.models_dir, entry)}")
    return 0


def cmd_bucket_upload(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from inferline.container import build_container

    container = build_container(settings)
    try:
        tenant = container.keys.authenticate(args.key).tenant_id if args.key else args.tenant
        uploaded = container.buckets.upload_paths(
            tenant, args.bucket, [Path(p) for p in args.paths], args.prefix
        )
    finally:
        container.close()
    for info in uploaded:
        print(f"{info.size:>12}  {info.etag}  {args.bucket}/{info.key}")
    print(f"uploaded {len(uploaded)} file(s) to {args.bucket} (tenant {tenant})", file=sys.stderr)
    return 0


def cmd_webhooks_public_key(settings: Settings, args: argparse.Namespace) -> int:
    from inferline.areas.conversations.webhooks import WebhookSigner

    db = Database(settings.resolved_database_url)
    db.migrate()
    print(WebhookSigner(db).public_key())
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
    mlist = models.add_parser("list", help="catalog models and whether they are installed")
    mlist.add_argument("--installed", action="store_true", help="only installed models")
    mlist.set_defaults(func=cmd_models_list)
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
    upload.set_defaults(func=cmd_bucket_upload)
    add_fine_tuning_commands(sub)
    webhooks = sub.add_parser("webhooks", help="signed webhooks").add_subparsers(
        dest="webhooks_command", required=True
    )
    webhooks.add_parser(
        "public-key", help="print the Ed25519 public key (base64) that verifies inferline's webhooks"
    ).set_defaults(func=cmd_webhooks_public_key)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = Settings()
    if getattr(args, "profile", None) is None and hasattr(args, "profile"):
        args.profile = settings.profile
    func: Callable[[Settings, argparse.Namespace], int] = args.func
    sys.exit(func(settings, args))
