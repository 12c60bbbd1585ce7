"""Bucket storage per tenant: the `storage_bytes` quota on writes, and the `bucket_bytes_stored` usage metric.

The bytes a tenant stores are the sizes of the objects in all its buckets (multipart parts being uploaded
count for the upload that stages them). They are summed from the object store, and only for tenants that
have a quota (on each write) or when usage is snapshotted, so tenants without a quota pay nothing per write.

Metering: `bucket_bytes_stored` holds, per tenant and UTC day, the bytes stored at that day's last snapshot
(unit byte-days: summed over days it is byte-days). A snapshot is taken when a tenant's objects change (at
most once per `SNAPSHOT_SECONDS` per tenant and process, in a background thread) and for every tenant when
usage is reported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from sqlalchemy import select

from inferline.errors import NotFound, PayloadTooLarge
from inferline.keys import Principal
from inferline.ops.limits import LimitService
from inferline.ops.usage import UsageMeter
from inferline.stores.objects import ObjectStore

log = logging.getLogger("inferline")
SNAPSHOT_SECONDS = 600.0
METRIC = "bucket_bytes_stored"


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

    def check(self, tenant_id: str, bucket: str, key: str, size: int) -> None:
        """Refuse writing `size` bytes to `bucket/key` past the quota; an overwrite counts the difference.

        A write that does not grow the tenant's bytes always passes (even over a lowered quota)."""
        limit = self.quota(tenant_id)
        if limit is None:
            return
        try:
            replaced = self.objects.head(tenant_id, bucket, key).size
        except NotFound:
            replaced = 0
        growth = size - replaced
        if growth <= 0:
            return
        stored = self.stored(tenant_id)
        if stored + growth > limit:
            raise StorageQuotaExceeded(
                f"This write of {size} bytes would exceed the tenant's storage quota of {limit} bytes "
                f"({stored} bytes stored); delete objects or ask for a larger quota."
            )

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
