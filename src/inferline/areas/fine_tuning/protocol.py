"""Wire models of `/ai/fine_tuning/jobs` (spec `FineTuningJob` create body)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: int | Literal["auto"] | None = Field(
        default=None, description="Epochs over the training file (1-50); `auto` or none means 3."
    )


class FineTuningJobCreate(BaseModel):
    """`training_file` names an object in one of the caller's buckets: `bucket/path/to/file.jsonl`."""

    model_config = ConfigDict(extra="forbid")

    model: str
    training_file: str
    hyperparameters: Hyperparameters | None = None
    suffix: str | None = None
