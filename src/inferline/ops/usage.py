"""Usage metering: billable units per tenant, key, UTC day, metric and model, summed in `usage_daily`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from inferline.errors import ValidationFailed
from inferline.stores.db import Database
from inferline.stores.ops_tables import UsageDaily

# Every billable unit, and what it counts.
METRICS = {
    "chat_prompt_tokens": "tokens",
    "chat_completion_tokens": "tokens",
    "embedding_tokens": "tokens",
    "transcription_seconds": "seconds",
    "tts_characters": "characters",
    "fine_tuning_trained_tokens": "tokens",
    # A level, not a sum: each day's row is the bytes stored at that day's last snapshot (ops.storage), so
    # summed over days it is byte-days.
    "bucket_bytes_stored": "byte-days",
}
GROUPINGS = ("day", "model", "key", "tenant")


class UsageMeter:
    """Records and reports usage. `record` is one upsert per (metric, model); callers batch per request."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self, tenant_id: str, key_id: str, units: Iterable[tuple[str, str, float]], day: date | None = None
    ) -> None:
        """Add `(metric, model, quantity)` units for a tenant's key ("" for background jobs)."""
        rows = [(m, model, q) for m, model, q in units if m in METRICS and q]
        if not rows:
            return
        today = (day or datetime.now(UTC).date()).isoformat()
        with self.db.session() as s:
            insert = sqlite_insert if s.get_bind().dialect.name == "sqlite" else pg_insert
            for metric, model, quantity in rows:
                stmt = insert(UsageDaily).values(
                    day=today,
                    tenant_id=tenant_id,
                    key_id=key_id,
                    metric=metric,
                    model=model,
                    quantity=quantity,
                )
                s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["day", "tenant_id", "key_id", "metric", "model"],
                        set_={"quantity": UsageDaily.__table__.c["quantity"] + stmt.excluded["quantity"]},
                    )
                )

    def set_level(self, tenant_id: str, metric: str, quantity: float, day: date | None = None) -> None:
        """Set (not add) a level metric of a tenant for a day, key "" and no model; a zero level is only
        written over an existing row."""
        today = (day or datetime.now(UTC).date()).isoformat()
        with self.db.session() as s:
            if not quantity:
                s.execute(
                    update(UsageDaily)
                    .where(
                        UsageDaily.day == today,
                        UsageDaily.tenant_id == tenant_id,
                        UsageDaily.key_id == "",
                        UsageDaily.metric == metric,
                        UsageDaily.model == "",
                    )
                    .values(quantity=0.0)
                )
                return
            insert = sqlite_insert if s.get_bind().dialect.name == "sqlite" else pg_insert
            stmt = insert(UsageDaily).values(
                day=today, tenant_id=tenant_id, key_id="", metric=metric, model="", quantity=quantity
            )
            s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["day", "tenant_id", "key_id", "metric", "model"],
                    set_={"quantity": stmt.excluded["quantity"]},
                )
            )

    def report(
        self, tenant_id: str | None = None, since: date | None = None, by: str = "day"
    ) -> list[dict[str, object]]:
        """Sums per tenant, metric and the `by` grouping (day, model, key or tenant), newest day first."""
        if by not in GROUPINGS:
            raise ValidationFailed(f"by must be one of {', '.join(GROUPINGS)}.", parameter="by")
        group = {"day": UsageDaily.day, "model": UsageDaily.model, "key": UsageDaily.key_id, "tenant": None}[
            by
        ]
        columns = [UsageDaily.tenant_id, UsageDaily.metric] + ([group] if group is not None else [])
        query = select(*columns, func.sum(UsageDaily.quantity)).group_by(*columns)
        if tenant_id is not None:
            query = query.where(UsageDaily.tenant_id == tenant_id)
        if since is not None:
            query = query.where(UsageDaily.day >= since.isoformat())
        order = [UsageDaily.tenant_id] + (
            [group.desc() if by == "day" else group] if group is not None else []
        )
        with self.db.session() as s:
            rows = s.execute(query.order_by(*order, UsageDaily.metric)).all()
        out: list[dict[str, object]] = []
        for row in rows:
            item: dict[str, object] = {"tenant_id": row[0], "metric": row[1], "unit": METRICS.get(row[1], "")}
            if group is not None:
                item[by if by != "key" else "key_id"] = row[2]
            quantity = float(row[-1] or 0)
            item["quantity"] = int(quantity) if quantity.is_integer() else round(quantity, 3)
            out.append(item)
        return out
