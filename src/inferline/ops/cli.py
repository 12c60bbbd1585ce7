"""`inferline usage [--tenant] [--since] [--by day|model|key|tenant]`: metered usage from the database."""

from __future__ import annotations

import argparse
import json
from datetime import date

from inferline.config import Settings
from inferline.ops.limits import LimitService
from inferline.ops.storage import StorageMeter
from inferline.ops.usage import GROUPINGS, UsageMeter
from inferline.stores.db import Database


def cmd_usage(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings.resolved_database_url)
    db.migrate()
    try:
        from inferline.container import build_object_store

        meter = UsageMeter(db)
        StorageMeter(build_object_store(settings), LimitService(db), meter).snapshot(
            [args.tenant] if args.tenant else None
        )  # today's bucket bytes
        rows = meter.report(args.tenant, args.since, args.by)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    group = "key_id" if args.by == "key" else args.by
    label = group.upper() if args.by != "tenant" else ""
    print(f"{'TENANT':20}  {label:36}  {'METRIC':28}  {'QUANTITY':>14}  UNIT")
    for row in rows:
        value = (str(row.get(group, "")) or "-") if args.by != "tenant" else ""
        quantity, unit = row["quantity"], row["unit"]
        print(f"{row['tenant_id']!s:20}  {value:36}  {row['metric']!s:28}  {quantity!s:>14}  {unit}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    usage = sub.add_parser(
        "usage", help="metered usage per tenant (tokens, audio seconds, characters, bytes)"
    )
    usage.add_argument("--tenant", default=None, help="one tenant (default: all)")
    usage.add_argument("--since", type=date.fromisoformat, default=None, help="first UTC day, YYYY-MM-DD")
    usage.add_argument("--by", choices=GROUPINGS, default="day")
    usage.add_argument("--json", action="store_true", help="print the rows as JSON")
    usage.set_defaults(func=cmd_usage)
