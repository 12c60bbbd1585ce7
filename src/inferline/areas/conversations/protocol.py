"""Wire models of the conversations area (request bodies; responses are the services' dicts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MetadataValue = str | int | bool | list[str | int | bool]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def changes(self, *, nullable: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fields the caller sent (a `null` only counts for `nullable` fields)."""
        sent = self.model_dump(exclude_unset=True)
        return {k: v for k, v in sent.items() if v is not None or k in nullable}


class ConversationCreate(_Body):
    name: str | None = Field(default=None, max_length=500)
    metadata: dict[str, str] | None = None


class ConversationUpdate(_Body):
    metadata: dict[str, str] | None = None


class ToolCallFunction(_Body):
    name: str
    arguments: str


class ToolCall(_Body):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class MessageCreate(_Body):
    """`POST /ai/conversations/{id}/message`."""

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    name: str | None = Field(default=None, max_length=200)
    sent_at: datetime | None = None
    metadata: dict[str, MetadataValue] | None = None
    tool_call_id: str | None = Field(default=None, max_length=200)
    tool_calls: list[ToolCall] | None = None
    tool_choice: str | dict[str, Any] | None = None
    # inferline extension (extra_body): personal data replaced before it is stored; unset: the tenant default
    redact: bool | None = None

    @field_validator("sent_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class InsightCreate(_Body):
    instructions: str = Field(min_length=1)
    name: str = Field(max_length=500)
    json_schema: str | dict[str, Any] | None = None
    webhook: str = ""
    evidence: bool = False  # inferline extension (extra_body): results carry supporting message quotes


class InsightUpdate(_Body):
    instructions: str | None = Field(default=None, min_length=1)
    name: str | None = Field(default=None, max_length=500)
    json_schema: str | dict[str, Any] | None = None
    webhook: str | None = None
    evidence: bool | None = None


class InsightGroupCreate(_Body):
    name: str = Field(min_length=1, max_length=500)
    description: str | None = None
    webhook: str = ""


class InsightGroupUpdate(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = None
    webhook: str | None = None


class InsightRunCreate(_Body):
    """Body of the trigger `POST /ai/conversations/{id}/conversations-insights` (inferline extension)."""

    insight_group_id: str | None = None
