"""Wire model of `POST /ai/summarize` (spec `SummaryRequest`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SummaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str
    filename: str
    system_prompt: str | None = None
