"""Wire models of `/ai/clusters` (spec `PublicTextClusteringRequest`; responses are built by the service)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_FILES = 1000
MAX_SIZE = 100_000
MAX_TOP_N_NODES = 1000


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_no_nul)]


class PublicTextClusteringRequest(BaseModel):
    """Cluster the chunks of an embedded bucket, optionally only of `files` and/or names under `prefix`."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=1, max_length=63)
    files: list[Name] | None = Field(default=None, min_length=1, max_length=MAX_FILES)
    min_cluster_size: int = Field(default=25, ge=2, le=MAX_SIZE)
    min_subcluster_size: int = Field(default=5, ge=2, le=MAX_SIZE)
    prefix: Annotated[str, Field(max_length=1024), AfterValidator(_no_nul)] | None = None
