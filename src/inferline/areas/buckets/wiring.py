"""Builds the buckets area: objects (S3), vector index, ingestion jobs, auto-sync, URL crawl and search."""

from __future__ import annotations

from dataclasses import dataclass

from inferline.areas.buckets.crawler import Crawler
from inferline.areas.buckets.ingest import JOB_KIND as EMBED_BUCKET_KIND
from inferline.areas.buckets.ingest import IngestService
from inferline.areas.buckets.loaders import MediaTranscriber
from inferline.areas.buckets.objects import BucketService
from inferline.areas.buckets.search import SimilaritySearch
from inferline.areas.embeddings.service import EmbeddingsService
from inferline.config import Settings
from inferline.jobs import JobQueue, JobRegistry
from inferline.net.safe_http import SafeHttpClient
from inferline.ops.storage import StorageMeter
from inferline.stores.db import Database
from inferline.stores.objects import ObservedObjectStore
from inferline.stores.vectors import (
    LocalVectorIndex,
    PgVectorIndex,
    VectorIndex,
    has_pgvector,
    index_directory,
)


@dataclass(frozen=True)
class BucketsArea:
    buckets: BucketService
    vectors: VectorIndex
    crawler: Crawler
    ingest: IngestService
    search: SimilaritySearch


def build_buckets(
    settings: Settings,
    db: Database,
    jobs: JobQueue,
    registry: JobRegistry,
    objects: ObservedObjectStore,
    embeddings: EmbeddingsService,
    transcriber: MediaTranscriber,
    quota: StorageMeter | None = None,
) -> BucketsArea:
    """Every bucket service; object writes re-embed AI-enabled buckets (auto-sync) through the ingest jobs
    and are checked against the tenants' storage quotas (`quota`)."""
    ann_min = settings.vector_ann_min_chunks
    vectors: VectorIndex = (
        PgVectorIndex(db, ann_min_chunks=ann_min)
        if has_pgvector(db)
        else LocalVectorIndex(db, index_directory(db, settings.data_dir), ann_min_chunks=ann_min)
    )
    fetcher = SafeHttpClient(
        settings.fetch_allow, max_bytes=settings.crawl_max_page_bytes, timeout=settings.crawl_timeout_seconds
    )
    crawler = Crawler(objects, fetcher, max_pages=settings.crawl_max_pages, quota=quota)
    ingest = IngestService(
        db,
        objects,
        vectors,
        embeddings,
        jobs,
        crawler=crawler,
        transcriber=transcriber,
        max_file_bytes=settings.ingest_max_file_bytes,
    )
    objects.on_change(ingest.bucket_changed)
    registry.register(EMBED_BUCKET_KIND, ingest.run, on_failure=ingest.fail_task)
    return BucketsArea(
        buckets=BucketService(objects, settings.data_dir / "uploads", quota=quota),
        vectors=vectors,
        crawler=crawler,
        ingest=ingest,
        search=SimilaritySearch(ingest, vectors, embeddings),
    )
