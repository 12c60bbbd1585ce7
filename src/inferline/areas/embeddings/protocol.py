"""Wire models of the OpenAI-compatible embeddings endpoint (spec `CreateEmbeddingsRequest`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from inferline.errors import UnsupportedParameter


class CreateEmbeddingsRequest(BaseModel):
    """`input` is a string or a list of strings; token-id arrays are refused (foreign tokenizer)."""

    model_config = ConfigDict(extra="forbid")

    input: str | list[str] | list[int] | list[list[int]]
    model: str
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = Field(default=None, description="Accepted for compatibility; not used for anything.")

    @field_validator("input")
    @classmethod
    def _no_token_arrays(cls, value: Any) -> Any:
        if isinstance(value, list) and any(not isinstance(item, str) for item in value):
            raise UnsupportedParameter(
                "input as token ids is not supported; send the text as a string or a list of strings.",
                pointer="/input",
            )
        return value


class EmbeddingModelsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
