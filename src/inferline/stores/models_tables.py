"""Tables of the models area: the registry of models added by `inferline models add` (beside the catalog)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inferline.stores.tables import Base, UTCDateTime, utcnow


class RegisteredModel(Base):
    """A model registered from a file, a directory or a hub repository. Its files live, verified, in
    `<models_dir>/<slug>/`; `files` lists them (`name`, `sha256`, `size`), `info` holds what the files say
    about themselves (architecture, parameters, quantization, context length, dimensions, languages, ...),
    `settings` the per-model settings given at registration (`--set`)."""

    __tablename__ = "registered_models"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)
    slug: Mapped[str] = mapped_column(String(250), unique=True)
    linked: Mapped[bool] = mapped_column(Boolean, default=False)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
