"""`Idempotency-Key` for creating endpoints: a retried request with the same key gets the first answer.

The key's record is written in the same transaction as what the request created, so a crash cannot leave one
without the other; a concurrent duplicate loses the insert race and replays the winner's answer. Reusing a key
with a different request is a 400.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inferline.errors import BadRequest
from inferline.stores.conversations_tables import IdempotencyRecord
from inferline.stores.db import Database

T = TypeVar("T")


def _jsonable(value: Any) -> Any:
    return json.loads(
        json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
    )


def fingerprint(request: Any) -> str:
    return hashlib.sha256(json.dumps(_jsonable(request), sort_keys=True).encode()).hexdigest()


class Idempotency:
    """Runs a create once per (tenant, operation, key)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def run(
        self,
        tenant_id: str,
        operation: str,
        key: str | None,
        request: Any,
        create: Callable[[Session], T],
    ) -> T | Any:
        """`create(session)` in a new transaction, or the stored answer of an earlier request with `key`."""
        if not key:
            with self.db.session() as s:
                return create(s)
        digest = fingerprint(request)
        stored = self._lookup(tenant_id, operation, key, digest)
        if stored is not None:
            return stored[0]
        try:
            with self.db.session() as s:
                result = create(s)
                s.add(
                    IdempotencyRecord(
                        tenant_id=tenant_id,
                        operation=operation,
                        key=key[:255],
                        request_hash=digest,
                        response=_jsonable(result),
                    )
                )
                s.flush()
                return result
        except IntegrityError:
            stored = self._lookup(tenant_id, operation, key, digest)
            if stored is None:
                raise
            return stored[0]

    def _lookup(self, tenant_id: str, operation: str, key: str, digest: str) -> tuple[Any] | None:
        with self.db.session() as s:
            row = s.get(IdempotencyRecord, (tenant_id, operation, key[:255]))
            if row is None:
                return None
            if row.request_hash != digest:
                raise BadRequest(
                    "This Idempotency-Key was already used with a different request.",
                    pointer="/Idempotency-Key",
                )
            return (row.response,)
