"""Builds the conversations area: conversations, insight templates/groups, insight runs, signed webhooks."""

from __future__ import annotations

from dataclasses import dataclass

from inferline.areas.conversations.insight_runs import RUN_KIND, ChatCompleter, InsightRunService
from inferline.areas.conversations.insight_templates import InsightTemplateService
from inferline.areas.conversations.recordings import RecordingService, Transcriber
from inferline.areas.conversations.service import ConversationService
from inferline.areas.conversations.webhooks import DELIVER_KIND, WebhookService, WebhookSigner
from inferline.config import Settings
from inferline.jobs import JobQueue, JobRegistry
from inferline.stores.db import Database


@dataclass(frozen=True)
class ConversationsArea:
    webhooks: WebhookService
    insights: InsightTemplateService
    insight_runs: InsightRunService
    conversations: ConversationService
    recordings: RecordingService


def build_conversations(
    settings: Settings,
    db: Database,
    jobs: JobQueue,
    registry: JobRegistry,
    chat: ChatCompleter,
    webhooks: WebhookService | None = None,
    *,
    transcription: Transcriber,
) -> ConversationsArea:
    """Insight runs and webhook deliveries are jobs registered here; runs ask `chat` for each insight.
    `webhooks` is the container's signed-webhook service (shared with audio); one is built when not given.
    Call recordings become conversations through `transcription`."""
    webhooks = webhooks or WebhookService(db, jobs, WebhookSigner(db), allowed_hosts=settings.webhook_allow)
    runs = InsightRunService(db, jobs, webhooks, chat)
    registry.register(DELIVER_KIND, webhooks.deliver, on_failure=webhooks.on_failure)
    registry.register(RUN_KIND, runs.run_job, on_failure=runs.on_run_failure)
    return ConversationsArea(
        webhooks=webhooks,
        insights=InsightTemplateService(db, webhooks),
        insight_runs=runs,
        conversations=ConversationService(db, runs),
        recordings=RecordingService(db, transcription, runs),
    )
