"""Wire models of the model-list endpoints (spec `ModelsResponse` / `ModelMetadata`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class ModelsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
