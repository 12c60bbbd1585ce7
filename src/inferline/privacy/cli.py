"""`inferline tenants settings TENANT [--redact on|off]`: a tenant's defaults, read or changed in the
configured database (as `PUT /v2/admin/tenants/{tenant_id}/settings` does)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from inferline.config import Settings
from inferline.privacy.tenant_settings import TenantSettingsService
from inferline.stores.db import Database


def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    if not 1 <= len(args.tenant) <= 64:
        print("inferline: a tenant id has 1 to 64 characters")
        return 2
    db = Database(settings.resolved_database_url)
    db.migrate()
    try:
        service = TenantSettingsService(db)
        if args.redact is None:
            view = service.get(args.tenant)
        else:
            view = service.set(args.tenant, redact=args.redact == "on")
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(view, indent=2))
    else:
        print(f"tenant {view['tenant_id']}: redact {'on' if view['redact'] else 'off'}")
    return 0


def add_commands(sub: Any) -> None:
    """Register `tenants settings` on the top-level subparsers."""
    tenants = sub.add_parser("tenants", help="per-tenant defaults").add_subparsers(
        dest="tenants_command", required=True
    )
    command = tenants.add_parser("settings", help="show a tenant's defaults, or change them")
    command.add_argument("tenant")
    command.add_argument(
        "--redact",
        choices=("on", "off"),
        default=None,
        help="redact e-mails, phone, card and SSN numbers in everything the tenant stores",
    )
    command.add_argument("--json", action="store_true", help="print the settings as JSON")
    command.set_defaults(func=cmd_settings)
