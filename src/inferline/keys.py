"""API keys and tenants: create, list, revoke, and authenticate a bearer secret or an S3 access key id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from inferline.errors import AuthenticationFailed, NotFound, ValidationFailed
from inferline.stores.db import Database
from inferline.stores.tables import ApiKey, utcnow

KEY_PREFIX = "KEY"
S3_ACCESS_KEY_PREFIX = "IL"
# How long an accepted key is trusted without asking the database again: a key revoked by another replica
# stops working here within this many seconds (at once on the replica that revoked it).
AUTH_CACHE_SECONDS = 1.0
AUTH_CACHE_MAX = 10_000  # entries; past it the cache starts over (a bound, not an eviction policy)
# What a key may do: `admin` everything (keys, tenants, limits, usage of every tenant, and the API);
# `inference` the API as before scopes existed (the default); `read` only GET/HEAD requests.
SCOPES = ("admin", "inference", "read")
DEFAULT_SCOPE = "inference"


def _by_digest(digest: str) -> Select[tuple[ApiKey]]:
    """The key whose secret has SHA-256 `digest`."""
    return select(ApiKey).where(ApiKey.key_hash == digest)


@dataclass
class _Accepted:
    """A cache entry: when the key was last read from the database (monotonic), and last used."""

    read_at: float
    principal: Principal
    used_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant owning every resource the request touches."""

    tenant_id: str
    key_id: str
    scope: str = DEFAULT_SCOPE


@dataclass(frozen=True)
class KeyInfo:
    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    s3_access_key_id: str | None = None  # None for a key created before S3 credentials existed
    scope: str = DEFAULT_SCOPE


def s3_credentials(api_key: str) -> tuple[str, str]:
    """The S3 access key id and S3 secret of an API key: HMAC-SHA256 derivations that do not reveal it.

    The access key id ("IL" + 18 upper-case letters/digits) is public: it appears in presigned URLs. The
    secret signs requests (SigV4) and never travels. Neither can call the REST API.
    """
    secret = hmac.new(api_key.encode(), b"inferline-s3", hashlib.sha256).hexdigest()
    digest = hmac.new(api_key.encode(), b"inferline-s3-access-key-id", hashlib.sha256).digest()
    return S3_ACCESS_KEY_PREFIX + base64.b32encode(digest).decode()[:18], secret


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        row.id,
        row.tenant_id,
        row.name,
        row.prefix,
        row.created_at,
        row.revoked_at,
        row.s3_access_key_id,
        row.scope or DEFAULT_SCOPE,
    )


def _set_s3_credentials(row: ApiKey, secret: str) -> None:
    if row.s3_access_key_id is None:
        row.s3_access_key_id, row.s3_secret = s3_credentials(secret)


class ApiKeyService:
    """Stores only SHA-256 digests of secrets; the secret is shown once, at creation.

    The S3 secret (derived from the key) is stored as is: SigV4 verification needs it. It only opens the S3
    endpoint, for the key's tenant, and stops working when the key is revoked.
    """

    def __init__(self, db: Database, cache_seconds: float = AUTH_CACHE_SECONDS) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        # sha256 of an accepted secret -> its entry; unknown keys are never kept
        self._accepted: dict[str, _Accepted] = {}
        self._lock = threading.Lock()  # a refresh never puts back a key this process has just revoked

    def create(
        self, tenant_id: str, name: str = "", secret: str | None = None, scope: str = DEFAULT_SCOPE
    ) -> tuple[KeyInfo, str]:
        if scope not in SCOPES:
            raise ValidationFailed(f"scope must be one of {', '.join(SCOPES)}.", pointer="/scope")
        secret = secret or f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"
        with self.db.session() as s:
            existing = s.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(secret)))
            if existing is not None:
                _set_s3_credentials(existing, secret)
                return _info(existing), secret
            row = ApiKey(
                tenant_id=tenant_id, name=name, prefix=secret[:8], key_hash=_hash(secret), scope=scope
            )
            _set_s3_credentials(row, secret)
            s.add(row)
            s.flush()
            return _info(row), secret

    def ensure(self, secret: str, tenant_id: str = "default") -> KeyInfo:
        """Seed `secret` for `tenant_id` unless it is already known (revoked keys stay revoked).

        A key seeded before S3 credentials existed gets them now.
        """
        try:
            info, _ = self.create(tenant_id, name="seeded", secret=secret)
        except IntegrityError:  # a replica starting at the same moment seeded it first
            info, _ = self.create(tenant_id, name="seeded", secret=secret)
        return info

    def s3_credentials(self, secret: str) -> tuple[KeyInfo, str, str]:
        """The key, S3 access key id and S3 secret of an active API key (stored if the key lacks them)."""
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(secret)))
            if row is None or row.revoked_at is not None:
                raise AuthenticationFailed("The API key is unknown or revoked.")
            _set_s3_credentials(row, secret)
            s.flush()
            return _info(row), row.s3_access_key_id or "", row.s3_secret or ""

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
            with self._lock:
                self._accepted.pop(row.key_hash, None)
            return _info(row)

    def cached(self, secret: str) -> Principal | None:
        """The principal of `secret` if it was accepted less than `cache_seconds` ago (no database read)."""
        hit, now = self._accepted.get(_hash(secret)), time.monotonic()
        if hit is None or now - hit.read_at >= self.cache_seconds:
            return None
        hit.used_at = now
        return hit.principal

    def refresh(self, idle_seconds: float) -> None:
        """Re-read the cached keys used in the last `idle_seconds`, in one query (`ops.cache_refresh`): the
        active ones are trusted for another `cache_seconds` from the query's start, the revoked or deleted
        ones and the idle ones are dropped."""
        started = time.monotonic()
        entries = list(self._accepted.items())
        for digest, entry in entries:
            if started - entry.used_at >= idle_seconds and self._accepted.get(digest) is entry:
                self._accepted.pop(digest, None)
        wanted = [digest for digest, entry in entries if started - entry.used_at < idle_seconds]
        if not wanted:
            return
        rows: dict[str, ApiKey] = {}
        with self.db.session() as s:
            for start in range(0, len(wanted), 500):
                query = select(ApiKey).where(ApiKey.key_hash.in_(wanted[start : start + 500]))
                rows.update((row.key_hash, row) for row in s.scalars(query))
            fresh = {
                digest: Principal(tenant_id=row.tenant_id, key_id=row.id, scope=row.scope or DEFAULT_SCOPE)
                for digest, row in rows.items()
                if row.revoked_at is None
            }
        with self._lock:
            for digest in wanted:
                entry = self._accepted.get(digest)
                if entry is None:  # revoked in this process meanwhile
                    continue
                if digest not in fresh:
                    self._accepted.pop(digest, None)
                elif entry.read_at < started:
                    self._accepted[digest] = _Accepted(started, fresh[digest], entry.used_at)

    def authenticate(self, secret: str | None) -> Principal:
        """The principal of an active key; an accepted key is cached for `cache_seconds` (see above)."""
        if not secret:
            raise AuthenticationFailed("Missing API key. Send `Authorization: Bearer <key>`.")
        cached = self.cached(secret)
        if cached is not None:
            return cached
        digest, now = _hash(secret), time.monotonic()
        with self.db.session() as s:
            row = s.scalar(_by_digest(digest))
            if row is None or row.revoked_at is not None:
                self._accepted.pop(digest, None)
                raise AuthenticationFailed(
                    "The API key is unknown or revoked. Keys live in the server's database: create one with "
                    "`inferline keys create` on the server's data (its INFERLINE_DATA_DIR or "
                    "INFERLINE_DATABASE_URL), or list them with `inferline keys list`."
                )
            principal = Principal(tenant_id=row.tenant_id, key_id=row.id, scope=row.scope or DEFAULT_SCOPE)
        if len(self._accepted) >= AUTH_CACHE_MAX:
            self._accepted.clear()
        self._accepted[digest] = _Accepted(now, principal)
        return principal

    def prepare(self) -> None:
        """Runs the key lookup once, for a digest no key has, so that SQLAlchemy builds and caches its
        statement now and not in the first request after a start (`web.first_request`)."""
        with self.db.session() as s:
            s.scalar(_by_digest(""))

    def authenticate_s3(self, access_key_id: str) -> tuple[Principal, str]:
        """The principal and S3 secret of an S3 access key id; `AuthenticationFailed` if unknown/revoked."""
        with self.db.session() as s:
            row = (
                s.scalar(select(ApiKey).where(ApiKey.s3_access_key_id == access_key_id))
                if access_key_id.startswith(S3_ACCESS_KEY_PREFIX)
                else None
            )
            if row is None or row.revoked_at is not None or not row.s3_secret:
                raise AuthenticationFailed(
                    "The AWS access key id you provided does not exist in our records or is revoked. S3 "
                    "clients sign with the API key's S3 access key id and S3 secret, never the API key "
                    "itself: see `inferline keys list` and `inferline keys s3-credentials --key KEY`."
                )
            return Principal(row.tenant_id, row.id, row.scope or DEFAULT_SCOPE), row.s3_secret
