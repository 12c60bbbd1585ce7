"""The composition root: the one place that picks implementations. Shared by the API and worker processes."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from inferline import catalog
from inferline.areas.audio.reports.service import JOB_KIND as STT_REPORT_KIND
from inferline.areas.audio.reports.service import SttReportService
from inferline.areas.audio.speech.service import SpeechService
from inferline.areas.audio.transcription.service import MAX_FILE_BYTES, TranscriptionService
from inferline.areas.buckets.crawler import Crawler
from inferline.areas.buckets.ingest import JOB_KIND as EMBED_BUCKET_KIND
from inferline.areas.buckets.ingest import IngestService
from inferline.areas.buckets.objects import BucketService
from inferline.areas.buckets.search import SimilaritySearch
from inferline.areas.chat.service import ChatService
from inferline.areas.conversations.insights import RUN_KIND, InsightService
from inferline.areas.conversations.service import ConversationService
from inferline.areas.conversations.webhooks import DELIVER_KIND, WebhookService, WebhookSigner
from inferline.areas.embeddings.service import EmbeddingsService
from inferline.areas.fine_tuning.service import FineTuningService
from inferline.areas.models.service import ModelService
from inferline.areas.summarize.service import SummarizeService
from inferline.config import Settings
from inferline.engines.embeddings import EmbeddingEngine
from inferline.engines.onnx_embeddings import OnnxEmbeddingEngine
from inferline.jobs import JobQueue, JobRegistry, Worker
from inferline.keys import ApiKeyService
from inferline.net.safe_http import SafeHttpClient
from inferline.stores.db import Database
from inferline.stores.objects import LocalObjectStore, ObjectStore, ObservedObjectStore, S3ObjectStore
from inferline.stores.vectors import ExactVectorIndex, PgVectorIndex, VectorIndex, has_pgvector

log = logging.getLogger("inferline")


@dataclass
class Container:
    """Everything a request or a job needs, built once per process."""

    settings: Settings
    db: Database
    keys: ApiKeyService
    models: ModelService
    jobs: JobQueue
    job_registry: JobRegistry
    objects: ObjectStore
    embedder: EmbeddingEngine
    embeddings: EmbeddingsService
    buckets: BucketService
    transcription: TranscriptionService
    speech: SpeechService
    stt_reports: SttReportService
    webhooks: WebhookService
    insights: InsightService
    conversations: ConversationService
    fine_tuning: FineTuningService
    summarize: SummarizeService
    worker: Worker | None = None
    # Fine-tuning jobs run for minutes: they get their own worker lane so other jobs never wait behind them.
    training_registry: JobRegistry = field(default_factory=JobRegistry)
    training_worker: Worker | None = None
    vectors: VectorIndex = field(init=False)
    ingest: IngestService = field(init=False)
    embeddings_search: SimilaritySearch = field(init=False)
    crawler: Crawler = field(init=False)
    chat: ChatService = field(init=False)

    def start_worker(self) -> Worker:
        """Start a worker over this container's registry (embedded in the API, or `inferline worker`)."""
        if self.worker is None:
            self.worker = Worker(self.jobs, self.job_registry, concurrency=self.settings.worker_concurrency)
            self.worker.start()
            self.training_worker = Worker(self.jobs, self.training_registry, concurrency=1)
            self.training_worker.start()
        return self.worker

    def wake_worker(self) -> None:
        """Tell an embedded worker a job was just enqueued."""
        if self.worker is not None:
            self.worker.notify()
        if self.training_worker is not None:
            self.training_worker.notify()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.training_worker is not None:
            self.training_worker.stop()
            self.training_worker = None
        if hasattr(self, "chat"):
            self.chat.close()
        self.db.dispose()


def build_container(settings: Settings) -> Container:
    """Create stores and services from `settings`, migrate the database and seed the configured key."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    keys = ApiKeyService(db)
    if settings.api_key:
        keys.ensure(settings.api_key)
    models = ModelService(settings.models_dir, settings.profile, default_chat=settings.chat_model)
    jobs = JobQueue(db, lease_seconds=settings.job_lease_seconds)
    registry, training = JobRegistry(), JobRegistry()
    objects = build_object_store(settings)
    embedder = build_embedder(settings)
    late: dict[str, Container] = {}
    webhooks, insights, conversations = build_conversations(settings, db, jobs, registry, late)
    container = Container(
        settings=settings,
        db=db,
        keys=keys,
        models=models,
        jobs=jobs,
        job_registry=registry,
        objects=objects,
        embedder=embedder,
        embeddings=EmbeddingsService(
            embedder, models, settings.embedding_aliases.split(","), remote=build_remote_embedders(settings)
        ),
        buckets=BucketService(objects, settings.data_dir / "uploads"),
        transcription=build_transcription(settings, db, models),
        speech=build_speech(models),
        stt_reports=build_stt_reports(db, jobs, registry, late),
        webhooks=webhooks,
        insights=insights,
        conversations=conversations,
        fine_tuning=build_fine_tuning(settings, db, jobs, objects, models, training, late),
        training_registry=training,
        summarize=build_summarize(settings, objects, late),
    )
    late["container"] = container
    container.chat = build_chat(container)
    wire_bucket_embeddings(container)
    return container


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


def build_embedder(settings: Settings) -> EmbeddingEngine:
    """The default embedding model on onnxruntime; it loads on first use."""
    entry = catalog.find(settings.embedding_model)
    return OnnxEmbeddingEngine(
        entry.id,
        catalog.model_dir(settings.models_dir, entry),
        dimensions=int(entry.options.get("dimensions", 384)),  # type: ignore[call-overload]
        max_tokens=entry.context_length,
    )


def build_transcription(settings: Settings, db: Database, models: ModelService) -> TranscriptionService:
    """Whisper on faster-whisper for every installed speech-to-text model; each loads on first use."""
    from inferline.engines.whisper_stt import WhisperEngine

    def engine(entry: catalog.ModelEntry) -> WhisperEngine:
        return WhisperEngine(
            entry.id,
            catalog.model_dir(settings.models_dir, entry),
            english_only=entry.id.endswith(".en"),
            cpu_threads=os.cpu_count() or 2,
        )

    fetcher = SafeHttpClient(settings.fetch_allow, max_bytes=MAX_FILE_BYTES)
    return TranscriptionService(db, models, engine, fetcher)


def build_conversations(
    settings: Settings, db: Database, jobs: JobQueue, registry: JobRegistry, late: dict[str, Container]
) -> tuple[WebhookService, InsightService, ConversationService]:
    """Conversations, insights (run on `container.chat`, looked up when a run starts) and signed webhooks."""

    def wake() -> None:
        if "container" in late:
            late["container"].wake_worker()

    webhooks = WebhookService(db, jobs, WebhookSigner(db), allowed_hosts=settings.webhook_allow, wake=wake)
    insights = InsightService(
        db, jobs, webhooks, chat=lambda: getattr(late.get("container"), "chat", None), wake=wake
    )
    registry.register(DELIVER_KIND, webhooks.deliver, on_failure=webhooks.on_failure)
    registry.register(RUN_KIND, insights.run_job, on_failure=insights.on_run_failure)
    return webhooks, insights, ConversationService(db, insights)


def build_remote_embedders(settings: Settings) -> dict[str, EmbeddingEngine]:
    """Embedding models routed to OpenAI-compatible servers (`INFERLINE_REMOTE_EMBEDDING_MODELS`)."""
    from inferline.engines.openai_compat_embeddings import OpenAICompatEmbeddingEngine

    return {
        model_id: OpenAICompatEmbeddingEngine(
            model_id,
            remote.url,
            upstream_model=remote.model,
            api_key=remote.api_key,
            timeout_seconds=remote.timeout_seconds,
            max_tokens=remote.max_tokens,
            dimensions=remote.dimensions,
        )
        for model_id, remote in settings.remote_embedding_models.items()
    }


def build_fine_tuning(
    settings: Settings,
    db: Database,
    jobs: JobQueue,
    objects: ObjectStore,
    models: ModelService,
    registry: JobRegistry,
    late: dict[str, Container],
) -> FineTuningService:
    """LoRA training on torch/transformers/peft (the `train` extra, imported by the first job)."""
    from inferline.areas.fine_tuning.service import JOB_KIND
    from inferline.engines.lora_trainer import SUPPORTED_ARCHS, PeftLoraTrainer, training_available

    def wake() -> None:
        if "container" in late:
            late["container"].wake_worker()

    service = FineTuningService(
        db,
        jobs,
        objects,
        models,
        PeftLoraTrainer(),
        settings.data_dir / "adapters",
        wake=wake,
        available=training_available,
        architectures=SUPPORTED_ARCHS,
    )
    registry.register(JOB_KIND, service.run, on_failure=service.on_failure)
    models.add_tenant_models(service.model_metadata)
    service.reconcile()
    return service


def build_stt_reports(
    db: Database, jobs: JobQueue, registry: JobRegistry, late: dict[str, Container]
) -> SttReportService:
    """Legacy STT reports; their CSVs are generated by the `generate_stt_report` job."""
    service = SttReportService(db, jobs, wake=lambda: late["container"].wake_worker())
    registry.register(STT_REPORT_KIND, service.generate, on_failure=service.mark_failed)
    return service


def build_speech(models: ModelService) -> SpeechService:
    """Piper for every installed text-to-speech voice; listed on first use."""
    from inferline.engines.piper_tts import PiperEngine
    from inferline.engines.tts import TextToSpeech

    def engines() -> list[TextToSpeech]:
        voices: list[TextToSpeech] = []
        for entry in models.installed("tts"):
            voice_file = catalog.model_dir(models.models_dir, entry) / entry.main_file
            voices.append(PiperEngine(entry.id, voice_file))
        return voices

    return SpeechService(engines)


def wire_bucket_embeddings(c: Container) -> None:
    """Vector index, ingestion jobs, auto-sync, URL crawler and similarity search (issue 4)."""
    settings = c.settings
    c.vectors = PgVectorIndex(c.db) if has_pgvector(c.db) else ExactVectorIndex(c.db)
    c.ingest = IngestService(
        c.db,
        c.objects,
        c.vectors,
        c.embeddings,
        c.jobs,
        max_file_bytes=settings.ingest_max_file_bytes,
        transcribe=lambda tenant, data, name: c.transcription.transcribe_bytes(tenant, data, name).text,
    )
    fetcher = SafeHttpClient(
        settings.fetch_allow,
        max_bytes=settings.crawl_max_page_bytes,
        timeout=settings.crawl_timeout_seconds,
    )
    c.crawler = Crawler(c.objects, fetcher, max_pages=settings.crawl_max_pages)
    c.ingest.crawl, c.ingest.check_url, c.ingest.wake = c.crawler.crawl, c.crawler.check_url, c.wake_worker
    if isinstance(c.objects, ObservedObjectStore):
        c.objects.on_change(c.ingest.bucket_changed)
    c.job_registry.register(EMBED_BUCKET_KIND, c.ingest.run, on_failure=c.ingest.fail_task)
    c.embeddings_search = SimilaritySearch(c.ingest, c.vectors, c.embeddings)


def build_summarize(settings: Settings, objects: ObjectStore, late: dict[str, Container]) -> SummarizeService:
    """Summaries by the chat service (`container.chat`); media transcribed by `container.transcription`."""

    def transcribe(tenant_id: str, data: bytes, filename: str) -> str:
        service = late["container"].transcription
        return service.transcribe_bytes(tenant_id, data, filename, source="summarize").text

    return SummarizeService(
        objects,
        lambda: getattr(late.get("container"), "chat", None),
        transcribe,
        max_pdf_pages=settings.summarize_max_pdf_pages,
        max_text_chars=settings.summarize_max_chars,
    )


def build_chat(c: Container) -> ChatService:
    """Chat completions (issue 3): embedded llama.cpp per model, remote servers, tenant fine-tunes."""
    s = c.settings
    chat = ChatService(
        c.models,
        parallel=s.chat_parallel,
        max_queue=s.chat_max_queue,
        context=s.chat_context,
        threads=s.chat_threads,
        max_models=s.chat_max_models,
        remote=s.remote_chat_models,
        search=lambda: getattr(getattr(c, "embeddings_search", None), "similarity_search", None),
    )

    def fine_tuned(tenant_id: str, model_id: str) -> tuple[catalog.ModelEntry, list[Path]] | None:
        found = c.fine_tuning.resolve_model(tenant_id, model_id)
        return None if found is None else (found.base, [found.adapter_path])

    chat.add_resolver(fine_tuned)
    return chat
