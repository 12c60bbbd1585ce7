"""The composition root: the one place that picks implementations. Shared by the API and worker processes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from inferline.config import Settings
from inferline.services.keys import ApiKeyService
from inferline.services.models import ModelService
from inferline.stores.db import Database

log = logging.getLogger("inferline")


@dataclass
class Container:
    """Everything a request or a job needs, built once per process."""

    settings: Settings
    db: Database
    keys: ApiKeyService
    models: ModelService

    def close(self) -> None:
        self.db.dispose()


def build_container(settings: Settings) -> Container:
    """Create stores and services from `settings`, migrate the database and seed the configured key."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    keys = ApiKeyService(db)
    if settings.api_key:
        keys.ensure(settings.api_key)
    models = ModelService(settings.models_dir, settings.profile, default_chat=settings.chat_model)
    return Container(settings=settings, db=db, keys=keys, models=models)
