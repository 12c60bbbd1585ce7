"""Usage metering: billable units per tenant, key, UTC day, metric and model, summed in `usage_daily`.

The API's meter is batched (`flush_seconds`): `record` only adds the units to a per-process tally, off the
request's latency path, and a background thread writes the tally every `flush_seconds` (one transaction, one
upsert per summed day/tenant/key/metric/model row), at `close` (a clean shutdown loses nothing), and before
any report read in the same process (`report` flushes every batched meter of the same database first). A
crash can lose up to the last `flush_seconds` of usage, and another replica's reports see a request's usage
up to `flush_seconds` late. A meter built without `flush_seconds` (CLI, background jobs) writes at once.
"""

from __future__ import annotations

import logging
import threading
import weakref
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
FLUSH_SECONDS = 0.5  # the API's batched meter writes its tally this often

log = logging.getLogger("inferline.usage")
Row = tuple[str, str, str, str, str]  # day, tenant_id, key_id, metric, model
_BATCHED: weakref.WeakSet[UsageMeter] = weakref.WeakSet()  # this process's running batched meters


class UsageMeter:
    """Records and reports usage; batched when `flush_seconds` is given (see the module docstring)."""

    def __init__(self, db: Database, flush_seconds: float | None = None) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self._pending: dict[Row, float] = {}
        self._lock = threading.Lock()  # guards _pending and _thread
        self._flushing = threading.Lock()  # one flush at a time: a reader's flush waits for the writer's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if flush_seconds is not None:
            self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
            self._thread.start()
            _BATCHED.add(self)

    @property
    def batched(self) -> bool:
        """True while `record` only tallies (no database write: safe on the event loop)."""
        return self._thread is not None

    def record(
        self, tenant_id: str, key_id: str, units: Iterable[tuple[str, str, float]], day: date | None = None
    ) -> None:
        """Add `(metric, model, quantity)` units for a tenant's key ("" for background jobs)."""
        today = (day or datetime.now(UTC).date()).isoformat()
        rows: dict[Row, float] = {}
        for metric, model, quantity in units:
            if metric in METRICS and quantity:
                row = (today, tenant_id, key_id, metric, model)
                rows[row] = rows.get(row, 0.0) + quantity
        if not rows:
            return
        with self._lock:
            if self._thread is not None:
                for row, quantity in rows.items():
                    self._pending[row] = self._pending.get(row, 0.0) + quantity
                return
        self._write(rows)

    def flush(self) -> None:
        """Write the tally now (kept for the next flush if the write fails)."""
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return
            try:
                self._write(pending)
            except BaseException:
                with self._lock:
                    for row, quantity in pending.items():
                        self._pending[row] = self._pending.get(row, 0.0) + quantity
                raise

    def close(self) -> None:
        """Stop the writer and flush the tally; later records are written at once."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()
        _BATCHED.discard(self)
        self.flush()

    def _run(self) -> None:
        assert self.flush_seconds is not None
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception as exc:  # the tally is kept; the next flush retries it
                log.warning("usage flush failed, retrying: %s", exc)

    def _write(self, rows: dict[Row, float]) -> None:
        """Add the rows' quantities in one transaction, in key order (no deadlock between replicas)."""
        with self.db.session() as s:
            insert = sqlite_insert if s.get_bind().dialect.name == "sqlite" else pg_insert
            for (day, tenant_id, key_id, metric, model), quantity in sorted(rows.items()):
                stmt = insert(UsageDaily).values(
                    day=day, tenant_id=tenant_id, key_id=key_id, metric=metric, model=model, quantity=quantity
                )
                s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["day", "tenant_id", "key_id", "metric", "model"],
                        set_={"quantity": UsageDaily.__table__.c["quantity"] + stmt.excluded["quantity"]},
                    )
                )

    def _flush_all(self) -> None:
        """Flush every batched meter of this process on the same database (a reader sees its own writes)."""
        for meter in list(_BATCHED):
            if meter.db.engine.url == self.db.engine.url:
                meter.flush()

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
        self._flush_all()
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
