"""API keys and tenants: create, list, revoke, and authenticate a bearer secret."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from inferline.errors import AuthenticationFailed, NotFound
from inferline.stores.db import Database
from inferline.stores.tables import ApiKey, utcnow

KEY_PREFIX = "KEY"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant owning every resource the request touches."""

    tenant_id: str
    key_id: str


@dataclass(frozen=True)
class KeyInfo:
    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.tenant_id, row.name, row.prefix, row.created_at, row.revoked_at)


class ApiKeyService:
    """Stores only SHA-256 digests of secrets; the secret is shown once, at creation."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, tenant_id: str, name: str = "", secret: str | None = None) -> tuple[KeyInfo, str]:
        secret = secret or f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"
        with self.db.session() as s:
            existing = s.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(secret)))
            if existing is not None:
                return _info(existing), secret
            row = ApiKey(tenant_id=tenant_id, name=name, prefix=secret[:8], key_hash=_hash(secret))
            s.add(row)
            s.flush()
            return _info(row), secret

    def ensure(self, secret: str, tenant_id: str = "default") -> KeyInfo:
        """Seed `secret` for `tenant_id` unless it is already known (revoked keys stay revoked)."""
        try:
            info, _ = self.create(tenant_id, name="seeded", secret=secret)
        except IntegrityError:  # a replica starting at the same moment seeded it first
            info, _ = self.create(tenant_id, name="seeded", secret=secret)
        return info

    def list(self, tenant_id: str | None = None) -> list[KeyInfo]:
        with self.db.session() as s:
            query = select(ApiKey).order_by(ApiKey.created_at)
            if tenant_id is not None:
                query = query.where(ApiKey.tenant_id == tenant_id)
            return [_info(r) for r in s.scalars(query)]

    def revoke(self, key_id: str) -> KeyInfo:
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"API key {key_id} does not exist.")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _info(row)

    def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise AuthenticationFailed("Missing API key. Send `Authorization: Bearer <key>`.")
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(secret)))
            if row is None or row.revoked_at is not None:
                raise AuthenticationFailed("The API key is unknown or revoked.")
            return Principal(tenant_id=row.tenant_id, key_id=row.id)
