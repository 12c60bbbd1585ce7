"""`/v2/admin/…`: keys (the secret shown once), tenants, limits per tenant or key, tenant settings (the
redaction default), usage of every tenant.

Only `admin`-scoped keys reach these routes (`ops.guard.check_scope`); others get 403 code 10010.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from inferline.areas.admin.protocol import KeyCreate, LimitsUpdate, TenantSettingsUpdate
from inferline.errors import NotFound
from inferline.keys import KeyInfo, s3_credentials
from inferline.privacy.tenant_settings import TenantSettingsService
from inferline.stores.ops_tables import TenantLimit
from inferline.stores.tables import ApiKey
from inferline.web.deps import ContainerDep

router = APIRouter(prefix="/admin", tags=["Admin"])


def _key(info: KeyInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "record_type": "api_key",
        "tenant_id": info.tenant_id,
        "name": info.name,
        "scope": info.scope,
        "prefix": info.prefix,
        "s3_access_key_id": info.s3_access_key_id,
        "created_at": info.created_at.isoformat(),
        "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
    }


@router.post("/keys", status_code=201)
def create_key(body: KeyCreate, container: ContainerDep) -> dict[str, Any]:
    """Create a key; the response is the only time its secret (`key`) and S3 secret are shown."""
    info, secret = container.keys.create(body.tenant_id, name=body.name, scope=body.scope)
    _, s3_secret = s3_credentials(secret)
    return {"data": _key(info) | {"key": secret, "s3_secret": s3_secret}}


@router.get("/keys")
def list_keys(
    container: ContainerDep, tenant_id: Annotated[str | None, Query(max_length=64)] = None
) -> dict[str, Any]:
    return {"data": [_key(k) for k in container.keys.list(tenant_id)]}


@router.delete("/keys/{key_id}")
def revoke_key(key_id: str, container: ContainerDep) -> dict[str, Any]:
    return {"data": _key(container.keys.revoke(key_id))}


@router.get("/tenants")
def list_tenants(container: ContainerDep) -> dict[str, Any]:
    """Every tenant that has a key or limits, with its active key count and limits."""
    keys = container.keys.list(None)
    with container.db.session() as s:
        tenants = set(s.scalars(select(ApiKey.tenant_id).distinct()))
        tenants |= set(s.scalars(select(TenantLimit.tenant_id).distinct()))
    limits = {(lim.tenant_id, lim.key_id): lim for lim in container.limits.list()}
    data = []
    for tenant in sorted(tenants):
        own = [k for k in keys if k.tenant_id == tenant]
        tenant_limits = limits.get((tenant, ""))
        data.append(
            {
                "id": tenant,
                "record_type": "tenant",
                "active_keys": sum(1 for k in own if k.revoked_at is None),
                "revoked_keys": sum(1 for k in own if k.revoked_at is not None),
                "limits": tenant_limits.to_dict() if tenant_limits else None,
            }
        )
    return {"data": data}


@router.get("/limits")
def list_limits(
    container: ContainerDep, tenant_id: Annotated[str | None, Query(max_length=64)] = None
) -> dict[str, Any]:
    return {"data": [lim.to_dict() for lim in container.limits.list(tenant_id)]}


@router.get("/tenants/{tenant_id}/limits")
def get_limits(
    tenant_id: str, container: ContainerDep, key_id: Annotated[str, Query(max_length=36)] = ""
) -> dict[str, Any]:
    limits = container.limits.get(tenant_id, key_id)
    if limits is None:
        raise NotFound(f"No limits are set for tenant {tenant_id}" + (f" key {key_id}." if key_id else "."))
    return {"data": limits.to_dict()}


@router.put("/tenants/{tenant_id}/limits")
def set_limits(tenant_id: str, body: LimitsUpdate, container: ContainerDep) -> dict[str, Any]:
    """Set the fields sent (null removes a limit); fields not sent keep their value."""
    values = body.model_dump(exclude_unset=True, exclude={"key_id"})
    return {"data": container.limits.set(tenant_id, body.key_id, **values).to_dict()}


@router.delete("/tenants/{tenant_id}/limits")
def delete_limits(
    tenant_id: str, container: ContainerDep, key_id: Annotated[str, Query(max_length=36)] = ""
) -> dict[str, Any]:
    if not container.limits.delete(tenant_id, key_id):
        raise NotFound(f"No limits are set for tenant {tenant_id}" + (f" key {key_id}." if key_id else "."))
    return {"data": {"tenant_id": tenant_id, "key_id": key_id, "deleted": True}}


TenantPath = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/tenants/{tenant_id}/settings")
def get_tenant_settings(tenant_id: TenantPath, container: ContainerDep) -> dict[str, Any]:
    """A tenant's defaults (every tenant has them; unset ones are off)."""
    return {"data": TenantSettingsService(container.db).get(tenant_id)}


@router.put("/tenants/{tenant_id}/settings")
def set_tenant_settings(
    tenant_id: TenantPath, body: TenantSettingsUpdate, container: ContainerDep
) -> dict[str, Any]:
    """Change the fields sent; `redact: true` redacts personal data in everything the tenant stores."""
    return {"data": TenantSettingsService(container.db).set(tenant_id, redact=body.redact)}


@router.get("/usage")
def usage(
    container: ContainerDep,
    tenant_id: Annotated[str | None, Query(max_length=64)] = None,
    since: date | None = None,
    by: Annotated[str, Query(pattern="^(day|model|key|tenant)$")] = "day",
) -> dict[str, Any]:
    """Usage of every tenant (or one), summed per metric and `by` (day, model, key or tenant); today's bucket
    bytes are snapshotted first."""
    container.storage.snapshot([tenant_id] if tenant_id is not None else None)
    return {"data": container.usage.report(tenant_id, since, by)}
