"""Insight templates (instructions, optionally a JSON schema for the answer) and insight groups (ordered sets
of templates with a webhook): CRUD, and assigning templates to groups."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from sqlalchemy import select
from sqlalchemy.orm import Session

from inferline.areas.conversations.idempotency import Idempotency
from inferline.areas.conversations.webhooks import WebhookService
from inferline.errors import NotFound, ValidationFailed
from inferline.stores.conversations_tables import InsightGroup, InsightGroupMember, InsightTemplate
from inferline.stores.db import Database, get_owned, page_rows


def schema_object(value: Any, pointer: str = "/json_schema") -> dict[str, Any] | None:
    """A template's JSON schema given as an object or a JSON string; a 422 if it is not a valid schema."""
    if value is None or value == "":
        return None
    schema = value
    if isinstance(value, str):
        try:
            schema = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"json_schema is not valid JSON: {exc}.", pointer=pointer) from None
    if not isinstance(schema, dict):
        raise ValidationFailed("json_schema must be a JSON object (a JSON Schema).", pointer=pointer)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValidationFailed(
            f"json_schema is not a valid JSON Schema: {exc.message}.", pointer=pointer
        ) from None
    return schema


def owned_template(s: Session, tenant_id: str, insight_id: str) -> InsightTemplate:
    return get_owned(s, InsightTemplate, insight_id, tenant_id, f"Insight template {insight_id} not found.")


def owned_group(s: Session, tenant_id: str, group_id: str) -> InsightGroup:
    return get_owned(s, InsightGroup, group_id, tenant_id, f"Insight group {group_id} not found.")


def group_members(s: Session, group_id: str) -> list[InsightTemplate]:
    """The templates of a group in assignment order."""
    return list(
        s.scalars(
            select(InsightTemplate)
            .join(InsightGroupMember, InsightGroupMember.insight_id == InsightTemplate.id)
            .where(InsightGroupMember.group_id == group_id)
            .order_by(InsightGroupMember.created_at, InsightTemplate.id)
        ).all()
    )


def _template_view(row: InsightTemplate) -> dict[str, Any]:
    view = {
        "id": row.id,
        "created_at": row.created_at,
        "instructions": row.instructions,
        "insight_type": row.insight_type,
        "json_schema": row.json_schema,
        "name": row.name,
        "webhook": row.webhook,
    }
    if row.evidence:  # inferline extension, shown only when asked for (the Telnyx shape is unchanged)
        view["evidence"] = True
    return view


def _group_view(s: Session, row: InsightGroup) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at,
        "name": row.name,
        "description": row.description,
        "webhook": row.webhook,
        "insights": [_template_view(t) for t in group_members(s, row.id)],
    }


class InsightTemplateService:
    """CRUD of insight templates and groups, and group membership."""

    def __init__(self, db: Database, webhooks: WebhookService) -> None:
        self.db = db
        self.webhooks = webhooks
        self.idempotency = Idempotency(db)

    # ---- templates -------------------------------------------------------------------------------------
    def create_template(
        self,
        tenant_id: str,
        *,
        name: str,
        instructions: str,
        json_schema: Any = None,
        webhook: str = "",
        evidence: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        schema_object(json_schema)
        if webhook:
            self.webhooks.check_url(webhook)

        def create(s: Session) -> dict[str, Any]:
            row = InsightTemplate(
                tenant_id=tenant_id,
                name=name,
                instructions=instructions,
                json_schema=json_schema if json_schema != "" else None,
                webhook=webhook,
                insight_type="custom",
                evidence=evidence,
            )
            s.add(row)
            s.flush()
            return _template_view(row)

        request = {"name": name, "instructions": instructions, "json_schema": json_schema, "webhook": webhook}
        if evidence:
            request["evidence"] = True
        return self.idempotency.run(tenant_id, "insights.create", idempotency_key, request, create)

    def get_template(self, tenant_id: str, insight_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            return _template_view(owned_template(s, tenant_id, insight_id))

    def update_template(self, tenant_id: str, insight_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        if "json_schema" in changes:
            schema_object(changes["json_schema"])
            if changes["json_schema"] == "":
                changes["json_schema"] = None
        if changes.get("webhook"):
            self.webhooks.check_url(changes["webhook"])
        with self.db.session() as s:
            row = owned_template(s, tenant_id, insight_id)
            for key, value in changes.items():
                setattr(row, key, value)
            s.flush()
            return _template_view(row)

    def delete_template(self, tenant_id: str, insight_id: str) -> None:
        with self.db.session() as s:
            s.delete(owned_template(s, tenant_id, insight_id))

    def list_templates(self, tenant_id: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        with self.db.session() as s:
            where = InsightTemplate.tenant_id == tenant_id
            rows, total = page_rows(
                s,
                InsightTemplate,
                where,
                InsightTemplate.created_at,
                InsightTemplate.id,
                offset=offset,
                limit=limit,
            )
            return [_template_view(r) for r in rows], total

    # ---- groups ----------------------------------------------------------------------------------------
    def create_group(
        self,
        tenant_id: str,
        *,
        name: str,
        description: str | None = None,
        webhook: str = "",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        if webhook:
            self.webhooks.check_url(webhook)

        def create(s: Session) -> dict[str, Any]:
            row = InsightGroup(tenant_id=tenant_id, name=name, description=description, webhook=webhook)
            s.add(row)
            s.flush()
            return _group_view(s, row)

        request = {"name": name, "description": description, "webhook": webhook}
        return self.idempotency.run(tenant_id, "insight_groups.create", idempotency_key, request, create)

    def get_group(self, tenant_id: str, group_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            return _group_view(s, owned_group(s, tenant_id, group_id))

    def update_group(self, tenant_id: str, group_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        if changes.get("webhook"):
            self.webhooks.check_url(changes["webhook"])
        with self.db.session() as s:
            row = owned_group(s, tenant_id, group_id)
            for key, value in changes.items():
                setattr(row, key, value)
            s.flush()
            return _group_view(s, row)

    def delete_group(self, tenant_id: str, group_id: str) -> None:
        with self.db.session() as s:
            s.delete(owned_group(s, tenant_id, group_id))

    def list_groups(self, tenant_id: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        with self.db.session() as s:
            where = InsightGroup.tenant_id == tenant_id
            rows, total = page_rows(
                s, InsightGroup, where, InsightGroup.created_at, InsightGroup.id, offset=offset, limit=limit
            )
            return [_group_view(s, r) for r in rows], total

    def assign(self, tenant_id: str, group_id: str, insight_id: str) -> None:
        """Add a template to a group (assigning twice is harmless)."""
        with self.db.session() as s:
            owned_group(s, tenant_id, group_id)
            owned_template(s, tenant_id, insight_id)
            if s.get(InsightGroupMember, (group_id, insight_id)) is None:
                s.add(InsightGroupMember(group_id=group_id, insight_id=insight_id))

    def unassign(self, tenant_id: str, group_id: str, insight_id: str) -> None:
        with self.db.session() as s:
            owned_group(s, tenant_id, group_id)
            member = s.get(InsightGroupMember, (group_id, insight_id))
            if member is None:
                raise NotFound(f"Insight {insight_id} is not assigned to group {group_id}.")
            s.delete(member)
