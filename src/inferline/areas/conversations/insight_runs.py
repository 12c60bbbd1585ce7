"""Insight runs: each template of a group applied to a conversation's transcript with the chat engine, as a
durable job, with the results POSTed to the group's (and templates') signed webhooks; and the aggregate
counts of completed results.

A run is created `pending` with a snapshot of its group's templates, moves to `in_progress` when a worker
starts it, records each template's result as it finishes (a run taken over after a crash skips those), and
ends `completed` or `failed` with a reason. Templates with a `json_schema` are decoded under that schema and
the output is checked against it. Templates with `evidence` (inferline extension) are grounded: their result
carries `evidence` (the supporting messages and quotes, see `insight_evidence`) and `evidence_verified`; an
answer whose quotes do not check out is asked again (`EVIDENCE_ATTEMPTS` in all), then kept and marked
`evidence_verified: false`.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any, Protocol

import jsonschema
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inferline.areas.conversations import insight_evidence, postgrest
from inferline.areas.conversations.insight_events import EVENT_TYPE, insight_event, webhook_targets
from inferline.areas.conversations.insight_templates import group_members, owned_group, schema_object
from inferline.areas.conversations.webhooks import WebhookService
from inferline.errors import (
    BadRequest,
    InferlineError,
    NotFound,
    RateLimited,
    UpstreamTimeout,
    ValidationFailed,
)
from inferline.jobs import JobContext, JobFailed, JobQueue, JobView
from inferline.privacy.redaction import redact
from inferline.privacy.tenant_settings import tenant_redacts
from inferline.stores.conversations_tables import Conversation, ConversationMessage, InsightRun
from inferline.stores.db import Database, get_owned, page_rows
from inferline.stores.tables import new_id, utcnow

RUN_KIND = "run_conversation_insights"
PENDING, IN_PROGRESS, COMPLETED, FAILED = "pending", "in_progress", "completed", "failed"
TRANSCRIPT_CHARS = 6000
EVIDENCE_ATTEMPTS = 3  # a grounded answer whose quotes do not check out is asked again, then marked
EVIDENCE_TEMPERATURES = (0.2, 0.6, 0.9)
# The longest answer the evidence schema admits (MAX_ANSWER_CHARS, MAX_EVIDENCE quotes of MAX_QUOTE_CHARS,
# their ids, indented) fits even at one token per character: a smaller budget cut off answers it allows.
EVIDENCE_MAX_TOKENS = 1280

_FIELD = re.compile(r"^[A-Za-z0-9_\-.]+$")
_META_PARAM = re.compile(r"metadata(?:\.|\[|->>?)([A-Za-z0-9_\-]+)\]?")


class ChatCompleter(Protocol):
    """What insight runs need from the chat engine (`container.chat`)."""

    def complete_text(
        self,
        tenant_id: str,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.2,
    ) -> str: ...


def _field_value(field: str, result: Any, meta: dict[str, Any]) -> Any:
    """A grouping value: `metadata.<key>` of the conversation, else that key of a JSON object result."""
    if field.startswith("metadata."):
        return meta.get(field.removeprefix("metadata."))
    value = result.get(field) if isinstance(result, dict) else None
    return json.dumps(value) if isinstance(value, dict | list) else value


def _run_view(row: InsightRun) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "created_at": row.created_at,
        "status": row.status,
        "conversation_insights": [result_view(r) for r in row.results],
        "conversation_id": row.conversation_id,
        "insight_group_id": row.group_id,
        "updated_at": row.updated_at,
        "finished_at": row.finished_at,
    }
    if row.error:
        view["error"] = row.error
    return view


def result_view(result: dict[str, Any]) -> dict[str, Any]:
    """A stored template result as returned: `insight_id`, `result`, and for grounded templates `evidence`
    and `evidence_verified`."""
    view = {"insight_id": result["insight_id"], "result": result["result"]}
    for key in ("evidence", "evidence_verified"):
        if key in result:
            view[key] = result[key]
    return view


def _conversation(s: Session, tenant_id: str, conversation_id: str) -> Conversation:
    return get_owned(
        s, Conversation, conversation_id, tenant_id, f"Conversation {conversation_id} not found."
    )


def _run(s: Session, tenant_id: str, run_id: str, conversation_id: str | None = None) -> InsightRun:
    """The tenant's run (of `conversation_id` when given)."""
    detail = f"Insight run {run_id} not found."
    row = get_owned(s, InsightRun, run_id, tenant_id, detail)
    if conversation_id is not None and row.conversation_id != conversation_id:
        raise NotFound(detail)
    return row


def _messages(s: Session, conversation_id: str) -> list[insight_evidence.SourceMessage]:
    """The conversation's messages in order (tool calls inlined into the text), with their ids."""
    rows = s.scalars(
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conversation_id)
        .order_by(ConversationMessage.created_at, ConversationMessage.seq)
    ).all()
    out = []
    for m in rows:
        text = m.text or ""
        if m.tool_calls:
            calls = ", ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in m.tool_calls)
            text = f"{text} [tool calls: {calls}]".strip()
        out.append(insight_evidence.SourceMessage(str(m.seq), m.role, text, m.meta))
    return out


def _transcript(messages: list[insight_evidence.SourceMessage]) -> str:
    """The conversation as `role: text` lines, its last `TRANSCRIPT_CHARS` characters."""
    return "\n".join(f"{m.role}: {m.text}" for m in messages)[-TRANSCRIPT_CHARS:]


class InsightRunService:
    """Triggering insight runs, the run job and its failure hook, reading runs and aggregating results."""

    def __init__(
        self,
        db: Database,
        jobs: JobQueue,
        webhooks: WebhookService,
        chat: ChatCompleter,
        *,
        max_tokens: int = 128,
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.webhooks = webhooks
        self.chat = chat
        self.max_tokens = max_tokens

    # ---- triggering and reading runs -------------------------------------------------------------------
    def trigger(
        self, s: Session, tenant_id: str, conversation: Conversation, group_id: str | None
    ) -> InsightRun:
        """Create a pending run of `group_id` (default: the conversation's `metadata.insight_group_id`) and
        its job in session `s`; the queue wakes the workers after the commit."""
        group_id = group_id or (conversation.meta or {}).get("insight_group_id")
        if not group_id:
            raise ValidationFailed(
                "Name the insight group: insight_group_id in the body, or metadata.insight_group_id on the "
                "conversation.",
                pointer="/insight_group_id",
            )
        group = owned_group(s, tenant_id, group_id)
        templates = group_members(s, group.id)
        if not templates:
            raise BadRequest(
                f"Insight group {group.id} has no insight templates assigned.", pointer="/insight_group_id"
            )
        has_messages = s.scalar(
            select(func.count())
            .select_from(ConversationMessage)
            .where(ConversationMessage.conversation_id == conversation.id)
        )
        if not has_messages:
            raise BadRequest(f"Conversation {conversation.id} has no messages to analyse.")
        run = InsightRun(
            id=new_id(),
            tenant_id=tenant_id,
            conversation_id=conversation.id,
            group_id=group.id,
            status=PENDING,
            templates=[
                {
                    "insight_id": t.id,
                    "instructions": t.instructions,
                    "json_schema": schema_object(t.json_schema),
                    "webhook": t.webhook or "",
                    "evidence": bool(t.evidence),
                }
                for t in templates
            ],
            results=[],
            webhook=group.webhook or "",
        )
        s.add(run)
        s.flush()
        run.job_id = self.jobs.enqueue(RUN_KIND, {"run_id": run.id}, tenant_id, session=s)
        return run

    def trigger_run(self, tenant_id: str, conversation_id: str, group_id: str | None) -> dict[str, Any]:
        """Start insights for a conversation now (the explicit trigger endpoint)."""
        with self.db.session() as s:
            conversation = _conversation(s, tenant_id, conversation_id)
            view = _run_view(self.trigger(s, tenant_id, conversation, group_id))
        return view

    def list_runs(
        self, tenant_id: str, conversation_id: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Runs of a conversation, newest first."""
        with self.db.session() as s:
            _conversation(s, tenant_id, conversation_id)
            where = InsightRun.conversation_id == conversation_id
            rows, total = page_rows(
                s, InsightRun, where, InsightRun.created_at.desc(), InsightRun.id, offset=offset, limit=limit
            )
            return [_run_view(r) for r in rows], total

    def get_run(self, tenant_id: str, run_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            return _run_view(_run(s, tenant_id, run_id))

    def deliveries(self, tenant_id: str, conversation_id: str, run_id: str) -> list[dict[str, Any]]:
        """The webhook deliveries of a run, each with its attempts."""
        with self.db.session() as s:
            _run(s, tenant_id, run_id, conversation_id)
        return self.webhooks.deliveries(tenant_id, run_id)

    def aggregate(self, tenant_id: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Counts of completed insight results grouped by result fields and `metadata.<key>` of conversations.

        Params: `group_by`/`show` (comma-joined or repeated), `insight_id`, `created_at=<op>.<value>`
        (repeatable), `metadata.<key>=<op>.<value>` (also `metadata[<key>]`, `metadata-><key>`).
        """
        fields: list[str] = []
        insight_ids: set[str] = set()
        where = []
        schema = postgrest.Schema(
            columns={"created_at": postgrest.Column(InsightRun.created_at, "datetime")},
            json_name="metadata",
            json_column=Conversation.meta,
        )
        dialect = self.db.engine.dialect.name
        for key, value in params:
            if key in ("group_by", "group_by[]", "show", "show[]"):
                for name in (part.strip() for part in value.split(",")):
                    if not _FIELD.match(name):
                        raise postgrest.FilterError(f"Invalid field name {name!r}.", parameter=key)
                    if name not in fields:
                        fields.append(name)
            elif key == "insight_id":
                insight_ids.add(value)
            elif key == "created_at":
                where.append(postgrest.condition(schema, "created_at", value, dialect, key))
            elif match := _META_PARAM.fullmatch(key):
                where.append(postgrest.condition(schema, f"metadata->{match[1]}", value, dialect, key))
            else:
                raise postgrest.FilterError(f"Unknown parameter {key!r}.", parameter=key)
        stmt = (
            select(InsightRun.templates, InsightRun.results, Conversation.meta)
            .join(Conversation, Conversation.id == InsightRun.conversation_id)
            .where(InsightRun.tenant_id == tenant_id, InsightRun.status == COMPLETED, *where)
        )
        counts: dict[tuple[Any, ...], int] = {}
        with self.db.session() as s:
            for templates, results, meta in s.execute(stmt):
                structured = {t["insight_id"] for t in templates if t.get("json_schema") is not None}
                for result in results:
                    if insight_ids and result["insight_id"] not in insight_ids:
                        continue
                    value = json.loads(result["result"]) if result["insight_id"] in structured else None
                    row = tuple(_field_value(f, value, meta or {}) for f in fields)
                    counts[row] = counts.get(row, 0) + 1
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], json.dumps(kv[0], default=str)))
        return [{**dict(zip(fields, row, strict=True)), "record_count": n} for row, n in ordered]

    # ---- the run job -----------------------------------------------------------------------------------
    def run_job(self, ctx: JobContext) -> None:
        """Job handler: run every template not yet done, then complete the run and queue its webhooks."""
        run_id = ctx.payload["run_id"]
        with self.db.session() as s:
            run = s.get(InsightRun, run_id)
            if run is None or run.status in (COMPLETED, FAILED):
                return
            run.status = IN_PROGRESS
            tenant_id, templates = run.tenant_id, list(run.templates)
            done = {r["insight_id"] for r in run.results}
            messages = _messages(s, run.conversation_id)
            if tenant_redacts(s, tenant_id):  # messages stored before the tenant turned redaction on
                messages = [replace(m, text=redact(m.text).text) for m in messages]
        transcript = _transcript(messages)
        for template in templates:
            if template["insight_id"] in done:
                continue
            ctx.raise_if_cancelled()
            if template.get("evidence"):
                entry = self._apply_grounded(tenant_id, template, messages)
            else:
                entry = {"result": self._apply(tenant_id, template, transcript)}
            with self.db.session() as s:
                run = s.get(InsightRun, run_id)
                if run is None:
                    return  # the conversation was deleted meanwhile
                if all(r["insight_id"] != template["insight_id"] for r in run.results):
                    run.results = [*run.results, {"insight_id": template["insight_id"], **entry}]
        with self.db.session() as s:
            run = s.get(InsightRun, run_id, with_for_update=not self.db.is_sqlite)
            if run is None or run.status == COMPLETED:
                return  # deleted, or finished by a worker that took this run over
            run.status = COMPLETED
            run.error = None
            run.finished_at = utcnow()
            conversation = s.get(Conversation, run.conversation_id)
            for url, insight_ids in webhook_targets(run).items():
                self.webhooks.enqueue(
                    s,
                    tenant_id=run.tenant_id,
                    url=url,
                    event_type=EVENT_TYPE,
                    body=insight_event(run, conversation.meta if conversation else {}, insight_ids),
                    run_id=run.id,
                )

    def on_run_failure(self, job: JobView, reason: str) -> None:
        """Failure hook: the run is marked failed with the reason (also when its workers kept dying)."""
        with self.db.session() as s:
            run = s.get(InsightRun, job.payload.get("run_id"))
            if run is not None and run.status != COMPLETED:
                run.status = FAILED
                run.error = reason
                run.finished_at = utcnow()

    def _apply(self, tenant_id: str, template: dict[str, Any], transcript: str) -> str:
        """One template's answer about the transcript; a structured answer is checked against its schema."""
        schema = template.get("json_schema")
        system = (
            "You analyse a conversation between a user and an assistant and answer the instruction below "
            "about it, briefly.\n\nInstruction: " + template["instructions"]
        )
        if schema is not None:
            system += "\n\nAnswer only with a JSON object that follows this JSON schema:\n" + json.dumps(
                schema
            )
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": "Conversation transcript:\n" + transcript},
        ]
        try:
            text = self.chat.complete_text(
                tenant_id, messages, json_schema=schema, max_tokens=self.max_tokens
            )
        except (RateLimited, UpstreamTimeout):
            raise  # transient: the queue retries the run with backoff
        except InferlineError as exc:
            raise JobFailed(f"insight {template['insight_id']}: {exc.detail}") from None
        if schema is None:
            return text.strip()
        try:
            value = json.loads(text)
            jsonschema.validate(value, schema)
        except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
            message = exc.message if isinstance(exc, jsonschema.ValidationError) else str(exc)
            raise JobFailed(
                f"insight {template['insight_id']}: the model output does not satisfy its JSON schema: "
                f"{message}"
            ) from None
        return json.dumps(value, separators=(",", ":"))

    def _apply_grounded(
        self, tenant_id: str, template: dict[str, Any], messages: list[insight_evidence.SourceMessage]
    ) -> dict[str, Any]:
        """A grounded answer: the result, its evidence (each quote checked against the message it cites) and
        `evidence_verified`; asked up to `EVIDENCE_ATTEMPTS` times until the evidence checks out."""
        answer = template.get("json_schema")
        by_id = {m.id: m for m in messages}
        shown = insight_evidence.transcript(messages, TRANSCRIPT_CHARS)
        ids = [m.id for m in messages if f"[{m.id}] " in shown]
        fields = insight_evidence.result_fields(answer)
        schema = insight_evidence.evidence_schema(answer, ids)
        system = (
            "You analyse a conversation between a user and an assistant and answer the instruction below "
            "about it, briefly. Each transcript line starts with its message id in brackets. Give the answer "
            "and, as evidence, the ids of the messages that support it with a short exact quote copied from "
            "each.\n\nInstruction: " + template["instructions"]
        )
        if answer is not None:
            system += "\n\nThe answer is a JSON object that follows this JSON schema:\n" + json.dumps(answer)
        prompt = [
            {"role": "system", "content": system},
            {"role": "user", "content": "Conversation transcript:\n" + shown},
        ]
        best: dict[str, Any] | None = None
        problem = "no answer"
        for temperature in EVIDENCE_TEMPERATURES[:EVIDENCE_ATTEMPTS]:
            try:
                text = self.chat.complete_text(
                    tenant_id,
                    prompt,
                    json_schema=schema,
                    max_tokens=EVIDENCE_MAX_TOKENS,
                    temperature=temperature,
                )
                value = json.loads(text)
                jsonschema.validate(value, schema)
            except (RateLimited, UpstreamTimeout):
                raise
            except InferlineError as exc:
                problem = exc.detail
                continue
            except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
                problem = exc.message if isinstance(exc, jsonschema.ValidationError) else str(exc)
                continue
            items, verified = insight_evidence.check_evidence(value["evidence"], by_id, fields)
            result = value["answer"]
            best = {
                "result": result.strip() if answer is None else json.dumps(result, separators=(",", ":")),
                "evidence": items,
                "evidence_verified": verified,
            }
            if verified:
                break
        if best is None:
            raise JobFailed(f"insight {template['insight_id']}: no grounded answer: {problem}")
        return best
