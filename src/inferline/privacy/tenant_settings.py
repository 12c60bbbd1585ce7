"""Per-tenant defaults an admin sets (`PUT /v2/admin/tenants/{tenant_id}/settings`, `inferline tenants`).

`redact`: personal data (see `redaction.py`) is replaced in everything the tenant stores or sends to a model,
whatever the request says: transcripts (synchronous, asynchronous, recordings, audio ingested into buckets,
media summarised), conversation messages, and the messages an insight run sends to the model. Precedence:
redaction happens when the tenant default is on OR the request asks (`redact: true`); a request cannot turn
a tenant's default off (`redact: false` is then a 400 naming `/redact`, never silently overruled).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inferline.errors import BadRequest
from inferline.stores.conversations_tables import TenantSetting
from inferline.stores.db import Database


def redacts(db: Database, tenant_id: str, requested: bool | None = None) -> bool:
    """Whether a text stored for `tenant_id` is redacted: asked by the request (`True`), or the tenant default
    when the request does not say (`None`). An explicit `False` under a tenant default that redacts is a 400
    naming `/redact`: a request cannot turn the default off, and is not silently overruled either."""
    if requested:
        return True
    with db.session() as s:
        default = tenant_redacts(s, tenant_id)
    if default and requested is False:
        raise BadRequest(
            "redact: false is refused: this tenant's personal data is redacted by an admin setting "
            "(PUT /v2/admin/tenants/{tenant_id}/settings), which a request cannot turn off.",
            pointer="/redact",
        )
    return default


def tenant_redacts(s: Session, tenant_id: str) -> bool:
    row = s.get(TenantSetting, tenant_id)
    return bool(row and row.redact)


def _view(tenant_id: str, row: TenantSetting | None) -> dict[str, Any]:
    return {
        "record_type": "tenant_settings",
        "tenant_id": tenant_id,
        "redact": bool(row and row.redact),
        "updated_at": row.updated_at.isoformat() if row else None,
    }


class TenantSettingsService:
    """Read and change a tenant's defaults (an unknown tenant has every default off)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, tenant_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            return _view(tenant_id, s.get(TenantSetting, tenant_id))

    def set(self, tenant_id: str, *, redact: bool | None = None) -> dict[str, Any]:
        """Change the fields given (None: unchanged); a first setting made meanwhile by another request is
        updated instead of inserted again."""
        try:
            return self._set(tenant_id, redact)
        except IntegrityError:
            return self._set(tenant_id, redact)

    def _set(self, tenant_id: str, redact: bool | None) -> dict[str, Any]:
        with self.db.session() as s:
            row = s.get(TenantSetting, tenant_id)
            if row is None:
                row = TenantSetting(tenant_id=tenant_id, redact=False)
                s.add(row)
            if redact is not None:
                row.redact = redact
            s.flush()
            return _view(tenant_id, row)
