"""Conversations and their messages, with PostgREST-style listing.

`last_message_at` is the latest message time (`sent_at`, else arrival); before any message it equals
`created_at`. A message whose metadata carries `end_of_conversation: true` marks the conversation ready: it
starts an insight run for `metadata.insight_group_id` of the message, else of the conversation, in the same
transaction as the message.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inferline.areas.conversations import postgrest
from inferline.areas.conversations.idempotency import Idempotency
from inferline.areas.conversations.insight_runs import InsightRunService
from inferline.privacy import redaction, tenant_settings
from inferline.stores.conversations_tables import Conversation, ConversationMessage
from inferline.stores.db import Database, get_owned, page_rows
from inferline.stores.tables import utcnow

END_MARKER = "end_of_conversation"


def _conversation_view(row: Conversation) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "created_at": row.created_at,
        "last_message_at": row.last_message_at or row.created_at,
        "metadata": dict(row.meta or {}),
    }


def _message_view(row: ConversationMessage) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(row.seq),  # inferline extension: what grounded insights' evidence cites
        "role": row.role,
        "text": row.text,
        "created_at": row.created_at,
        "sent_at": row.sent_at,
        "metadata": row.meta,
        "tool_calls": row.tool_calls,
    }
    for key, value in (
        ("name", row.name),
        ("tool_call_id", row.tool_call_id),
        ("tool_choice", row.tool_choice),
    ):
        if value is not None:
            view[key] = value
    return view


def _is_marker(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class ConversationService:
    """CRUD of conversations, PostgREST listing, messages, and the end-of-conversation marker."""

    def __init__(self, db: Database, insight_runs: InsightRunService) -> None:
        self.db = db
        self.insight_runs = insight_runs
        self.idempotency = Idempotency(db)
        self._dialect = db.engine.dialect.name
        self._schema = postgrest.Schema(
            columns={
                "id": postgrest.Column(Conversation.id),
                "name": postgrest.Column(Conversation.name),
                "created_at": postgrest.Column(Conversation.created_at, "datetime"),
                "last_message_at": postgrest.Column(
                    func.coalesce(Conversation.last_message_at, Conversation.created_at), "datetime"
                ),
            },
            json_name="metadata",
            json_column=Conversation.meta,
        )

    def create(
        self,
        tenant_id: str,
        *,
        name: str | None,
        metadata: dict[str, str] | None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        def create(s: Session) -> dict[str, Any]:
            row = Conversation(tenant_id=tenant_id, name=name, meta=dict(metadata or {}))
            s.add(row)
            s.flush()
            return _conversation_view(row)

        request = {"name": name, "metadata": metadata}
        return self.idempotency.run(tenant_id, "conversations.create", idempotency_key, request, create)

    def get(self, tenant_id: str, conversation_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            return _conversation_view(self._get(s, tenant_id, conversation_id))

    def update(self, tenant_id: str, conversation_id: str, metadata: dict[str, str] | None) -> dict[str, Any]:
        """Replace the metadata (omitted: unchanged)."""
        with self.db.session() as s:
            row = self._get(s, tenant_id, conversation_id)
            if metadata is not None:
                row.meta = dict(metadata)
            s.flush()
            return _conversation_view(row)

    def delete(self, tenant_id: str, conversation_id: str) -> None:
        with self.db.session() as s:
            s.delete(self._get(s, tenant_id, conversation_id))

    def list(self, tenant_id: str, params: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        """Conversations matching PostgREST filters (`order` defaults to newest first)."""
        query = postgrest.parse(params, self._schema, self._dialect)
        c = Conversation
        # Columns, not ORM objects: building a mapped instance per row was a third of the request's time.
        stmt = select(c.id, c.name, c.created_at, c.last_message_at, c.meta)
        stmt = stmt.where(c.tenant_id == tenant_id, *query.where)
        order = query.order_by or [c.created_at.desc()]
        stmt = stmt.order_by(*order, c.id).offset(query.offset)
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        with self.db.session() as s:
            rows = s.execute(stmt).all()
        return [
            {"id": i, "name": n, "created_at": t, "last_message_at": last or t, "metadata": dict(meta or {})}
            for i, n, t, last, meta in rows
        ]

    def add_message(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        role: str,
        content: str,
        name: str | None = None,
        sent_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        tool_choice: Any = None,
        redact: bool | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Append a message; with the end-of-conversation marker, also start the insight run. With `redact`
        or the tenant's redaction default, personal data in the content is replaced (`redaction.redact`)
        before it is stored."""
        if tenant_settings.redacts(self.db, tenant_id, redact):
            content = redaction.redact(content).text

        def create(s: Session) -> bool:
            conversation = self._get(s, tenant_id, conversation_id)
            now = utcnow()
            s.add(
                ConversationMessage(
                    tenant_id=tenant_id,
                    conversation_id=conversation.id,
                    role=role,
                    text=content,
                    name=name,
                    sent_at=sent_at,
                    meta=metadata,
                    tool_calls=tool_calls,
                    tool_call_id=tool_call_id,
                    tool_choice=tool_choice,
                    created_at=now,
                )
            )
            at = sent_at or now
            if conversation.last_message_at is None or at > conversation.last_message_at:
                conversation.last_message_at = at
            s.flush()
            if metadata and _is_marker(metadata.get(END_MARKER)):
                group_id = metadata.get("insight_group_id")
                self.insight_runs.trigger(s, tenant_id, conversation, str(group_id) if group_id else None)
                return True
            return False

        request = {
            "conversation_id": conversation_id,
            "role": role,
            "content": content,
            "name": name,
            "sent_at": sent_at,
            "metadata": metadata,
            "tool_calls": tool_calls,
            "tool_call_id": tool_call_id,
            "tool_choice": tool_choice,
        }
        self.idempotency.run(tenant_id, "conversations.add_message", idempotency_key, request, create)

    def list_messages(
        self, tenant_id: str, conversation_id: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Messages in conversation order (oldest first)."""
        with self.db.session() as s:
            self._get(s, tenant_id, conversation_id)
            where = ConversationMessage.conversation_id == conversation_id
            rows, total = page_rows(
                s,
                ConversationMessage,
                where,
                ConversationMessage.created_at,
                ConversationMessage.seq,
                offset=offset,
                limit=limit,
            )
            return [_message_view(r) for r in rows], total

    @staticmethod
    def _get(s: Session, tenant_id: str, conversation_id: str) -> Conversation:
        return get_owned(
            s, Conversation, conversation_id, tenant_id, f"Conversation {conversation_id} not found."
        )
