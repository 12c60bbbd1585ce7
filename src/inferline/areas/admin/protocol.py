"""Wire models of the admin endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)
    scope: Literal["admin", "inference", "read"] = "inference"


class LimitsUpdate(BaseModel):
    """Limits of a tenant (or, with `key_id`, of one key); `null` removes a limit. Rates are per window."""

    model_config = ConfigDict(extra="forbid")

    key_id: str = Field(default="", max_length=36)
    window_seconds: int | None = Field(default=None, ge=1, le=86_400)
    chat_requests: int | None = Field(default=None, ge=0)
    chat_tokens: int | None = Field(default=None, ge=0)
    embeddings_requests: int | None = Field(default=None, ge=0)
    embeddings_tokens: int | None = Field(default=None, ge=0)
    concurrent_transcriptions: int | None = Field(default=None, ge=0)
    storage_bytes: int | None = Field(default=None, ge=0)


class TenantSettingsUpdate(BaseModel):
    """A tenant's defaults; fields not sent keep their value."""

    model_config = ConfigDict(extra="forbid")

    redact: bool | None = None  # personal data redacted in everything the tenant stores (see README)
