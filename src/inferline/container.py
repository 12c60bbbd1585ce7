"""The composition root: the one place that picks implementations. Shared by the API and worker processes.

`build_container` builds the shared core (database, keys, models, job queue, object store), then each area in
dependency order, handing every area what it needs as plain constructor arguments:

    embeddings → webhooks → audio (webhooks) → buckets (embeddings, transcription) → fine-tuning
    → chat (bucket search, fine-tunes) → conversations (chat, webhooks, transcription)
    → summarize (chat, transcription) → clusters (chat)

The HTTP-only areas (responses, anthropic, admin, console) build nothing: their routes use these services.

Each area's `wiring.py` builds its services and registers its job handlers; the queue wakes this process's
workers after every commit that enqueued a job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from inferline.areas.audio.reports.service import SttReportService
from inferline.areas.audio.speech.service import SpeechService
from inferline.areas.audio.speech.stored import StoredSpeechService
from inferline.areas.audio.transcription.async_jobs import AsyncTranscriptionService
from inferline.areas.audio.transcription.service import TranscriptionService
from inferline.areas.audio.wiring import build_audio
from inferline.areas.buckets.crawler import Crawler
from inferline.areas.buckets.ingest import IngestService
from inferline.areas.buckets.objects import BucketService
from inferline.areas.buckets.search import SimilaritySearch
from inferline.areas.buckets.wiring import build_buckets
from inferline.areas.chat.service import ChatService
from inferline.areas.chat.wiring import build_chat
from inferline.areas.clusters.service import ClusterService
from inferline.areas.clusters.wiring import build_clusters
from inferline.areas.conversations.insight_runs import InsightRunService
from inferline.areas.conversations.insight_templates import InsightTemplateService
from inferline.areas.conversations.recordings import RecordingService
from inferline.areas.conversations.service import ConversationService
from inferline.areas.conversations.webhooks import WebhookService, WebhookSigner
from inferline.areas.conversations.wiring import build_conversations
from inferline.areas.embeddings.service import EmbeddingsService
from inferline.areas.embeddings.wiring import build_embeddings
from inferline.areas.fine_tuning.service import FineTuningService
from inferline.areas.fine_tuning.wiring import build_fine_tuning
from inferline.areas.models.service import REGISTRY_TTL_SECONDS, ModelService
from inferline.areas.models.wiring import build_models
from inferline.areas.summarize.service import SummarizeService
from inferline.areas.summarize.wiring import build_summarize
from inferline.config import Settings, warmup_kinds
from inferline.engines import openmp
from inferline.jobs import JobQueue, JobRegistry, Worker
from inferline.keys import ApiKeyService
from inferline.ops.cache_refresh import IDLE_SECONDS, CacheRefresher
from inferline.ops.limits import LimitService
from inferline.ops.storage import StorageMeter
from inferline.ops.usage import FLUSH_SECONDS as USAGE_FLUSH_SECONDS
from inferline.ops.usage import UsageMeter
from inferline.ops.warmup import Warmup, warmup_steps
from inferline.stores.db import Database
from inferline.stores.objects import LocalObjectStore, ObjectStore, ObservedObjectStore, S3ObjectStore
from inferline.stores.vectors import VectorIndex

log = logging.getLogger("inferline")


@dataclass
class Container:
    """Everything a request or a job needs, built once per process by `build_container`."""

    settings: Settings
    db: Database
    keys: ApiKeyService
    models: ModelService
    jobs: JobQueue
    job_registry: JobRegistry
    # Fine-tuning jobs run for minutes: they get their own worker lane so other jobs never wait behind them.
    training_registry: JobRegistry
    objects: ObservedObjectStore
    embeddings: EmbeddingsService
    transcription: TranscriptionService
    speech: SpeechService
    stored_speech: StoredSpeechService  # `output_type: audio_id`
    stt_reports: SttReportService
    async_transcriptions: AsyncTranscriptionService
    buckets: BucketService
    vectors: VectorIndex
    crawler: Crawler
    ingest: IngestService
    embeddings_search: SimilaritySearch
    fine_tuning: FineTuningService
    chat: ChatService
    webhooks: WebhookService
    insights: InsightTemplateService
    insight_runs: InsightRunService
    conversations: ConversationService
    recordings: RecordingService
    summarize: SummarizeService
    clusters: ClusterService
    limits: LimitService  # per-tenant/per-key limits (ops)
    usage: UsageMeter  # usage metering (ops)
    storage: StorageMeter  # bucket storage quotas and bytes-stored metering (ops)
    worker: Worker | None = None  # started by `start_worker` (embedded in the API, or `inferline worker`)
    cache_refresher: CacheRefresher | None = None  # started by `start_cache_refresh` (API processes)
    training_worker: Worker | None = None
    warmup: Warmup | None = None  # started by `start_warmup` (API processes)

    def start_worker(self) -> Worker:
        """Start the job worker and the training lane over this container's registries."""
        if self.worker is None:
            self.worker = Worker(self.jobs, self.job_registry, concurrency=self.settings.worker_concurrency)
            self.worker.start()
            self.training_worker = Worker(self.jobs, self.training_registry, concurrency=1)
            self.training_worker.start()
        return self.worker

    def start_cache_refresh(self) -> None:
        """Keep the key and limit caches (for the keys in use) and the models registry (while in use) warm
        (`ops.cache_refresh`)."""
        if self.cache_refresher is None:
            self.cache_refresher = CacheRefresher(
                [
                    partial(self.keys.refresh, IDLE_SECONDS),
                    partial(self.limits.refresh, IDLE_SECONDS),
                    partial(self.models.refresh, IDLE_SECONDS),
                ],
                interval=min(self.keys.cache_seconds, self.limits.cache_seconds, REGISTRY_TTL_SECONDS) / 2,
            )
            self.cache_refresher.start()

    def start_warmup(self, freeze: bool = False) -> None:
        """Load and run once the default model of each kind `settings.warmup` names, then with `freeze` leave
        the start-up's objects out of later garbage collections (`ops.warmup`)."""
        if self.warmup is None:
            self.warmup = Warmup(warmup_steps(self, warmup_kinds(self.settings.warmup)), freeze)
            self.warmup.start()

    def close(self) -> None:
        if self.warmup is not None:
            self.warmup.stop()  # no model loads after the engines are closed
        if self.cache_refresher is not None:
            self.cache_refresher.stop()
            self.cache_refresher = None
        for worker in (self.worker, self.training_worker):
            if worker is not None:
                worker.stop()
        self.worker = self.training_worker = None
        self.chat.close()
        self.vectors.close()
        self.usage.close()  # writes the last usage tally
        self.limits.close()
        self.db.dispose()


def build_container(settings: Settings) -> Container:
    """Migrate the database, seed the configured key, and build the core and every area in order."""
    openmp.load_engine_libraries()  # each engine on its own libgomp, before anything imports usearch or torch
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    keys = ApiKeyService(db)
    if settings.api_key:
        keys.ensure(settings.api_key)
    models = build_models(settings, db)
    jobs = JobQueue(db, lease_seconds=settings.job_lease_seconds)
    registry, training_registry = JobRegistry(), JobRegistry()
    objects = build_object_store(settings)
    limits, usage = LimitService(db), UsageMeter(db, flush_seconds=USAGE_FLUSH_SECONDS)
    storage = StorageMeter(objects, limits, usage)
    objects.on_change(storage.changed)

    embeddings = build_embeddings(settings, models)
    # Signed webhooks: built before the areas that announce through them (audio, conversations).
    webhooks = WebhookService(db, jobs, WebhookSigner(db), allowed_hosts=settings.webhook_allow)
    audio = build_audio(settings, db, jobs, registry, models, webhooks)
    buckets = build_buckets(
        settings, db, jobs, registry, objects, embeddings, audio.transcription, quota=storage
    )
    fine_tuning = build_fine_tuning(settings, db, jobs, training_registry, objects, models)
    chat = build_chat(settings, models, buckets.search, fine_tuning, db=db)
    conversations = build_conversations(
        settings, db, jobs, registry, chat, webhooks, transcription=audio.transcription
    )
    summarize = build_summarize(settings, objects, chat, audio.transcription)
    clusters = build_clusters(db, jobs, registry, objects, chat)

    return Container(
        settings=settings,
        db=db,
        keys=keys,
        models=models,
        jobs=jobs,
        job_registry=registry,
        training_registry=training_registry,
        objects=objects,
        embeddings=embeddings,
        transcription=audio.transcription,
        speech=audio.speech,
        stored_speech=audio.stored_speech,
        stt_reports=audio.stt_reports,
        async_transcriptions=audio.async_transcriptions,
        buckets=buckets.buckets,
        vectors=buckets.vectors,
        crawler=buckets.crawler,
        ingest=buckets.ingest,
        embeddings_search=buckets.search,
        fine_tuning=fine_tuning,
        chat=chat,
        webhooks=conversations.webhooks,
        insights=conversations.insights,
        insight_runs=conversations.insight_runs,
        conversations=conversations.conversations,
        recordings=conversations.recordings,
        summarize=summarize,
        clusters=clusters,
        limits=limits,
        usage=usage,
        storage=storage,
    )


def build_object_store(settings: Settings) -> ObservedObjectStore:
    """Local filesystem, or the S3 service at `INFERLINE_S3_ENDPOINT`; writes are observed (auto-sync)."""
    inner: ObjectStore = LocalObjectStore(settings.objects_dir)
    if settings.s3_endpoint:
        inner = S3ObjectStore(
            settings.s3_endpoint,
            bucket=settings.s3_bucket,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            region=settings.s3_region,
        )
    return ObservedObjectStore(inner)
