"""Bucket storage per tenant: the `storage_bytes` quota on writes, and the `bucket_bytes_stored` usage metric.

The bytes a tenant stores are the sizes of the objects in all its buckets (multipart parts being uploaded
count for the upload that stages them). They are summed from the object store, and only for tenants that
have a quota (on each write) or when usage is snapshotted, so tenants without a quota pay nothing per write.

Concurrent writes cannot overshoot the quota together: a write that grows the tenant's bytes reserves that
growth (a `storage_reservations` row) in the same transaction as its check, which runs under a per-tenant
lock (PostgreSQL: an advisory transaction lock; SQLite: the database write lock, taken by the insert), and
counts the stored bytes plus every other write's reservation; the reservation goes once the object is
stored or the write failed (and expires after `RESERVATION_SECONDS` if its process died). A write that
finishes while another checks may be counted twice for that moment: the check errs on refusing.

Metering: `bucket_bytes_stored` holds, per tenant and UTC day, the bytes stored at that day's last snapshot
(unit byte-days: summed over days it is byte-days). A snapshot is taken when a tenant's objects change (at
most once per `SNAPSHOT_SECONDS` per tenant and process, in a background thread) and for every tenant when
usage is reported.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from inferline.errors import NotFound, PayloadTooLarge
from inferline.keys import Principal
from inferline.ops.limits import LimitService
from inferline.ops.usage import UsageMeter
from inferline.stores.objects import ObjectStore
from inferline.stores.ops_tables import StorageReservation

log = logging.getLogger("inferline")
SNAPSHOT_SECONDS = 600.0
METRIC = "bucket_bytes_stored"
RESERVATION_SECONDS = 3600.0  # a write's reservation outlives its process by at most this


class StorageQuotaExceeded(PayloadTooLarge):
    """A write would take the tenant past its `storage_bytes` quota (S3: 403 `QuotaExceeded`)."""

    title = "Storage quota exceeded"


class StorageMeter:
    """Enforces the tenants' storage quotas and snapshots their stored bytes into usage."""

    def __init__(self, objects: ObjectStore, limits: LimitService, usage: UsageMeter) -> None:
        self.objects = objects
        self.limits = limits
        self.usage = usage
        self._snapshots: dict[str, float] = {}
        self._lock = threading.Lock()

    def stored(self, tenant_id: str) -> int:
        """Bytes in every bucket of the tenant."""
        total = 0
        for bucket in self.objects.list_buckets(tenant_id):
            try:
                total += sum(o.size for o in self.objects.list_objects(tenant_id, bucket.name))
            except NotFound:  # deleted meanwhile
                continue
        return total

    def quota(self, tenant_id: str) -> int | None:
        """The tightest `storage_bytes` of the tenant's limits (None: unlimited)."""
        found = [
            lim.storage_bytes
            for lim in self.limits.applicable(Principal(tenant_id, ""))
            if lim.storage_bytes is not None
        ]
        return min(found) if found else None

    @contextmanager
    def reserved(self, tenant_id: str, bucket: str, key: str, size: int) -> Iterator[None]:
        """Around writing `size` bytes to `bucket/key`: refuse it past the quota (an overwrite counts the
        difference), else hold its growth reserved until the block ends (see the module docstring).

        A write that does not grow the tenant's bytes always passes (even over a lowered quota)."""
        limit = self.quota(tenant_id)
        growth = 0
        if limit is not None:
            try:
                replaced = self.objects.head(tenant_id, bucket, key).size
            except NotFound:
                replaced = 0
            growth = size - replaced
        if limit is None or growth <= 0:
            yield
            return
        reservation, now = uuid.uuid4().hex, time.time()
        with self.usage.db.session() as s:
            self._lock_tenant(s, tenant_id)
            s.add(
                StorageReservation(
                    id=reservation, tenant_id=tenant_id, bytes=growth, expires_at=now + RESERVATION_SECONDS
                )
            )
            s.flush()  # SQLite: this write takes the database's write lock until the commit
            pending = s.scalar(
                select(func.coalesce(func.sum(StorageReservation.bytes), 0)).where(
                    StorageReservation.tenant_id == tenant_id,
                    StorageReservation.id != reservation,
                    StorageReservation.expires_at >= now,
                )
            )
            stored = self.stored(tenant_id) + int(pending or 0)
            if stored + growth > limit:  # the session rolls the reservation back
                raise StorageQuotaExceeded(
                    f"This write of {size} bytes would exceed the tenant's storage quota of {limit} bytes "
                    f"({stored} bytes stored or being written); delete objects or ask for a larger quota."
                )
        try:
            yield
        finally:
            with self.usage.db.session() as s:
                s.execute(
                    delete(StorageReservation).where(
                        (StorageReservation.id == reservation) | (StorageReservation.expires_at < now)
                    )
                )

    def check(self, tenant_id: str, bucket: str, key: str, size: int) -> None:
        """Refuse writing `size` bytes to `bucket/key` past the quota, without reserving them."""
        with self.reserved(tenant_id, bucket, key, size):
            pass

    @staticmethod
    def _lock_tenant(s: Session, tenant_id: str) -> None:
        """PostgreSQL: serialise the quota checks of one tenant until the transaction ends."""
        if s.get_bind().dialect.name == "postgresql":
            digest = hashlib.sha256(f"storage-quota:{tenant_id}".encode()).digest()
            key = int.from_bytes(digest[:8], "big", signed=True)
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def require_room(self, tenant_id: str) -> None:
        """Refuse (413) work that would write to buckets while the tenant's quota is already spent."""
        limit = self.quota(tenant_id)
        if limit is not None and (stored := self.stored(tenant_id)) >= limit:
            raise StorageQuotaExceeded(
                f"The tenant's storage quota of {limit} bytes is spent ({stored} bytes stored)."
            )

    # --- metering ------------------------------------------------------------------------------------
    def changed(self, tenant_id: str, bucket: str) -> None:
        """Object-change listener: snapshot the tenant in the background unless this process did so recently
        (summing a large tenant's objects stays out of the write that changed them)."""
        now = time.monotonic()
        with self._lock:
            last = self._snapshots.get(tenant_id)
            if last is not None and now - last < SNAPSHOT_SECONDS:
                return
            self._snapshots[tenant_id] = now
        threading.Thread(
            target=self.snapshot, args=([tenant_id],), name="storage-snapshot", daemon=True
        ).start()

    def snapshot(self, tenant_ids: Iterable[str] | None = None) -> None:
        """Record today's `bucket_bytes_stored` of these tenants (default: every tenant with a key)."""
        if tenant_ids is None:
            from inferline.stores.tables import ApiKey

            with self.usage.db.session() as s:
                tenant_ids = list(s.scalars(select(ApiKey.tenant_id).distinct()))
        for tenant_id in tenant_ids:
            try:
                self.usage.set_level(tenant_id, METRIC, self.stored(tenant_id))
            except Exception as exc:  # metering must never break a write or a report
                log.warning("bucket bytes of tenant %s not metered: %s", tenant_id, exc)
