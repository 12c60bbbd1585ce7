"""The `call.conversation_insights.generated` webhook event of a completed insight run: who receives which
results, and the event body."""

from __future__ import annotations

import json
from typing import Any

from inferline.stores.conversations_tables import InsightRun
from inferline.stores.tables import new_id, utcnow

EVENT_TYPE = "call.conversation_insights.generated"
CALL_FIELDS = ("call_control_id", "connection_id", "call_leg_id", "call_session_id", "client_state")


def webhook_targets(run: InsightRun) -> dict[str, set[str]]:
    """Webhook URL -> the results it receives: all of them for the group's webhook, and each template's own
    result for a template `webhook` (one event per URL)."""
    targets: dict[str, set[str]] = {}
    if run.webhook:
        targets[run.webhook] = {t["insight_id"] for t in run.templates}
    for template in run.templates:
        if template.get("webhook"):
            targets.setdefault(template["webhook"], set()).add(template["insight_id"])
    return targets


def insight_event(
    run: InsightRun, conversation_meta: dict[str, Any], insight_ids: set[str]
) -> dict[str, Any]:
    """The event body with the results of `insight_ids` (structured results as JSON values) and the call
    fields found in the conversation's metadata."""
    schemas = {t["insight_id"]: t.get("json_schema") for t in run.templates}
    results = [
        {
            "insight_id": r["insight_id"],
            "result": json.loads(r["result"]) if schemas.get(r["insight_id"]) is not None else r["result"],
            **{k: r[k] for k in ("evidence", "evidence_verified") if k in r},  # grounded templates only
        }
        for r in run.results
        if r["insight_id"] in insight_ids
    ]
    payload: dict[str, Any] = {k: conversation_meta[k] for k in CALL_FIELDS if k in (conversation_meta or {})}
    payload |= {
        "insight_group_id": run.group_id,
        "conversation_id": run.conversation_id,
        "results": results,
    }
    return {
        "data": {
            "record_type": "event",
            "event_type": EVENT_TYPE,
            "id": new_id(),
            "occurred_at": utcnow().isoformat().replace("+00:00", "Z"),
            "payload": payload,
        }
    }
