"""`/ai/conversations…`: conversations, messages, insight templates and groups, insight runs.

Envelopes follow the SDKs: `POST /ai/conversations` is bare, other single objects are `{data}`, the paged
lists carry `meta`, deletes/assign/message answer an empty 200. The static paths are declared before
`/ai/conversations/{conversation_id}` so they are not taken for an id.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from inferline.areas.audio.transcription.protocol import read_form
from inferline.areas.conversations import postgrest
from inferline.areas.conversations.protocol import (
    ConversationCreate,
    ConversationUpdate,
    InsightCreate,
    InsightGroupCreate,
    InsightGroupUpdate,
    InsightRunCreate,
    InsightUpdate,
    MessageCreate,
)
from inferline.areas.conversations.recordings import MODES, RecordingRequest, parse_roles
from inferline.errors import BadRequest, ValidationFailed
from inferline.web.deps import ContainerDep, PageDep, TenantDep

router = APIRouter(tags=["conversations"])
BASE = "/ai/conversations"
Json = dict[str, Any]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


def _empty() -> Response:
    return Response(status_code=200)


# ---- webhook key ------------------------------------------------------------------------------------------
@router.get(f"{BASE}/webhook-public-key")
def webhook_public_key(container: ContainerDep) -> Json:
    """The Ed25519 public key (base64) that verifies `telnyx-signature-ed25519` on inferline's webhooks."""
    return {
        "data": {
            "public_key": container.webhooks.signer.public_key(),
            "algorithm": "ed25519",
            "signed_payload": "{telnyx-timestamp}|{raw body}",
        }
    }


@router.get(f"{BASE}/conversation-insights/aggregates")
def aggregate_conversation_insights(request: Request, container: ContainerDep, principal: TenantDep) -> Json:
    """Counts of completed insight results grouped by result fields and `metadata.<key>`."""
    params = postgrest.bounded(request.query_params.multi_items())
    return {"data": container.insight_runs.aggregate(principal.tenant_id, params)}


# ---- call recordings (inferline extension) ----------------------------------------------------------------
RECORDING_FIELDS = (
    "file",
    "file_url",
    "name",
    "metadata",
    "insight_group_id",
    "channel_roles",
    "speaker_roles",
    "mode",
    "model",
    "language",
    "redact",
)


@router.post(f"{BASE}/recordings")
async def create_from_recording(request: Request, container: ContainerDep, principal: TenantDep) -> Json:
    """A call recording (multipart `file` or `file_url`) transcribed into a new conversation with roles and
    timestamps; its insight group's run starts at once (see `recordings.py`)."""
    form = await read_form(request)
    fields: dict[str, str] = {}
    upload: UploadFile | None = None
    for key, value in form.multi_items():
        if key not in RECORDING_FIELDS:
            raise BadRequest(
                f"Unknown field {key!r} (accepted: {', '.join(RECORDING_FIELDS)}).", pointer=f"/{key}"
            )
        if isinstance(value, UploadFile) != (key == "file"):
            raise BadRequest(
                f"`{key}` must be {'a file part' if key == 'file' else 'text'}.", pointer=f"/{key}"
            )
        if isinstance(value, UploadFile):
            upload = value
        else:
            fields[key] = value
    if (upload is None) == (not fields.get("file_url")):
        raise BadRequest("Send exactly one of `file` and `file_url`.", pointer="/file")
    mode = fields.get("mode") or "auto"
    if mode not in MODES:
        raise ValidationFailed(f"mode must be one of {', '.join(MODES)}.", pointer="/mode")
    redact = (fields.get("redact") or "").lower()
    if redact not in ("true", "false", ""):
        raise ValidationFailed("redact must be true or false.", pointer="/redact")
    body = RecordingRequest(
        data=await upload.read() if upload is not None else None,
        file_url=fields.get("file_url") or None,
        filename=upload.filename if upload is not None else None,
        name=fields.get("name") or None,
        metadata=_string_object(fields.get("metadata"), "/metadata"),
        insight_group_id=fields.get("insight_group_id") or None,
        channel_roles=parse_roles(fields.get("channel_roles"), "/channel_roles"),
        speaker_roles=parse_roles(fields.get("speaker_roles"), "/speaker_roles"),
        mode=mode,
        model=fields.get("model") or None,
        language=fields.get("language") or None,
        redact={"true": True, "false": False}.get(redact),
    )
    return {"data": await run_in_threadpool(container.recordings.create, principal.tenant_id, body)}


def _string_object(value: str | None, pointer: str) -> dict[str, str]:
    """A form field holding a JSON object of strings (conversation metadata)."""
    if not value:
        return {}
    try:
        raw = json.loads(value)
    except json.JSONDecodeError:
        raise BadRequest(f"{pointer[1:]} must be a JSON object.", pointer=pointer) from None
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ValidationFailed(f"{pointer[1:]} must be a JSON object of strings.", pointer=pointer)
    return raw


# ---- insight templates ------------------------------------------------------------------------------------
@router.get(f"{BASE}/insights")
def list_insights(container: ContainerDep, principal: TenantDep, page: PageDep) -> Json:
    items, total = container.insights.list_templates(principal.tenant_id, page.offset, page.size)
    return page.envelope(items, total)


@router.post(f"{BASE}/insights")
def create_insight(
    body: InsightCreate, container: ContainerDep, principal: TenantDep, key: IdempotencyKey = None
) -> Json:
    fields = body.model_dump()
    return {"data": container.insights.create_template(principal.tenant_id, **fields, idempotency_key=key)}


@router.get(f"{BASE}/insights/{{insight_id}}")
def get_insight(insight_id: str, container: ContainerDep, principal: TenantDep) -> Json:
    return {"data": container.insights.get_template(principal.tenant_id, insight_id)}


@router.put(f"{BASE}/insights/{{insight_id}}")
def update_insight(
    insight_id: str, container: ContainerDep, principal: TenantDep, body: InsightUpdate | None = None
) -> Json:
    changes = body.changes(nullable=("json_schema",)) if body else {}
    return {"data": container.insights.update_template(principal.tenant_id, insight_id, changes)}


@router.delete(f"{BASE}/insights/{{insight_id}}")
def delete_insight(insight_id: str, container: ContainerDep, principal: TenantDep) -> Response:
    container.insights.delete_template(principal.tenant_id, insight_id)
    return _empty()


# ---- insight groups ---------------------------------------------------------------------------------------
@router.get(f"{BASE}/insight-groups")
def list_insight_groups(container: ContainerDep, principal: TenantDep, page: PageDep) -> Json:
    items, total = container.insights.list_groups(principal.tenant_id, page.offset, page.size)
    return page.envelope(items, total)


@router.post(f"{BASE}/insight-groups")
def create_insight_group(
    body: InsightGroupCreate, container: ContainerDep, principal: TenantDep, key: IdempotencyKey = None
) -> Json:
    fields = body.model_dump()
    return {"data": container.insights.create_group(principal.tenant_id, **fields, idempotency_key=key)}


@router.get(f"{BASE}/insight-groups/{{group_id}}")
def get_insight_group(group_id: str, container: ContainerDep, principal: TenantDep) -> Json:
    return {"data": container.insights.get_group(principal.tenant_id, group_id)}


@router.put(f"{BASE}/insight-groups/{{group_id}}")
def update_insight_group(
    group_id: str, container: ContainerDep, principal: TenantDep, body: InsightGroupUpdate | None = None
) -> Json:
    changes = body.changes(nullable=("description",)) if body else {}
    return {"data": container.insights.update_group(principal.tenant_id, group_id, changes)}


@router.delete(f"{BASE}/insight-groups/{{group_id}}")
def delete_insight_group(group_id: str, container: ContainerDep, principal: TenantDep) -> Response:
    container.insights.delete_group(principal.tenant_id, group_id)
    return _empty()


@router.post(f"{BASE}/insight-groups/{{group_id}}/insights/{{insight_id}}/assign")
def assign_insight(group_id: str, insight_id: str, container: ContainerDep, principal: TenantDep) -> Response:
    container.insights.assign(principal.tenant_id, group_id, insight_id)
    return _empty()


@router.delete(f"{BASE}/insight-groups/{{group_id}}/insights/{{insight_id}}/unassign")
def unassign_insight(
    group_id: str, insight_id: str, container: ContainerDep, principal: TenantDep
) -> Response:
    container.insights.unassign(principal.tenant_id, group_id, insight_id)
    return _empty()


# ---- conversations ----------------------------------------------------------------------------------------
@router.get(BASE)
def list_conversations(request: Request, container: ContainerDep, principal: TenantDep) -> Response:
    """PostgREST-style filters, `order`, `limit`, `offset` (see `postgrest.py`). Encoded directly: FastAPI's
    generic encoder walked every row and cost more than the query at 20 rows."""
    params = list(request.query_params.multi_items())
    body = {"data": container.conversations.list(principal.tenant_id, params)}
    text = json.dumps(body, default=_isoformat, ensure_ascii=False, separators=(",", ":"))
    return Response(text.encode(), media_type="application/json")


def _isoformat(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@router.post(BASE)
def create_conversation(
    body: ConversationCreate, container: ContainerDep, principal: TenantDep, key: IdempotencyKey = None
) -> Json:
    return container.conversations.create(
        principal.tenant_id, name=body.name, metadata=body.metadata, idempotency_key=key
    )


@router.get(f"{BASE}/{{conversation_id}}")
def get_conversation(conversation_id: str, container: ContainerDep, principal: TenantDep) -> Json:
    return {"data": container.conversations.get(principal.tenant_id, conversation_id)}


@router.put(f"{BASE}/{{conversation_id}}")
def update_conversation(
    conversation_id: str,
    container: ContainerDep,
    principal: TenantDep,
    body: ConversationUpdate | None = None,
) -> Json:
    metadata = body.metadata if body else None
    return {"data": container.conversations.update(principal.tenant_id, conversation_id, metadata)}


@router.delete(f"{BASE}/{{conversation_id}}")
def delete_conversation(conversation_id: str, container: ContainerDep, principal: TenantDep) -> Response:
    container.conversations.delete(principal.tenant_id, conversation_id)
    return _empty()


@router.post(f"{BASE}/{{conversation_id}}/message")
def add_message(
    conversation_id: str,
    body: MessageCreate,
    container: ContainerDep,
    principal: TenantDep,
    key: IdempotencyKey = None,
) -> Response:
    fields = body.model_dump(exclude={"tool_calls"})
    tool_calls = [c.model_dump() for c in body.tool_calls] if body.tool_calls is not None else None
    container.conversations.add_message(
        principal.tenant_id, conversation_id, **fields, tool_calls=tool_calls, idempotency_key=key
    )
    return _empty()


@router.get(f"{BASE}/{{conversation_id}}/messages")
def list_messages(conversation_id: str, container: ContainerDep, principal: TenantDep, page: PageDep) -> Json:
    items, total = container.conversations.list_messages(
        principal.tenant_id, conversation_id, page.offset, page.size
    )
    return page.envelope(items, total)


@router.get(f"{BASE}/{{conversation_id}}/conversations-insights")
def list_conversation_insights(
    conversation_id: str, container: ContainerDep, principal: TenantDep, page: PageDep
) -> Json:
    items, total = container.insight_runs.list_runs(
        principal.tenant_id, conversation_id, page.offset, page.size
    )
    return page.envelope(items, total)


@router.post(f"{BASE}/{{conversation_id}}/conversations-insights")
def run_conversation_insights(
    conversation_id: str, container: ContainerDep, principal: TenantDep, body: InsightRunCreate | None = None
) -> Json:
    """inferline extension: mark the conversation ready and run its insight group now (answers `pending`)."""
    group_id = body.insight_group_id if body else None
    return {"data": container.insight_runs.trigger_run(principal.tenant_id, conversation_id, group_id)}


@router.get(f"{BASE}/{{conversation_id}}/conversations-insights/{{run_id}}/deliveries")
def list_insight_deliveries(
    conversation_id: str, run_id: str, container: ContainerDep, principal: TenantDep
) -> Json:
    """inferline extension: the run's webhook deliveries and every attempt."""
    return {"data": container.insight_runs.deliveries(principal.tenant_id, conversation_id, run_id)}
