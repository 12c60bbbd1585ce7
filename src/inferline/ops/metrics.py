"""Prometheus metrics (`prometheus_client`). Labels are bounded: route templates, statuses, model ids, job
kinds, refusal reasons; never ids, keys or tenants.

With several processes serving one port, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory shared by them
(before they start): counters and histograms are then summed over the processes at scrape time. Job queue
and webhook gauges are read from the database at scrape time, so every replica reports the same values.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

log = logging.getLogger("inferline")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

HTTP_REQUESTS = Counter(
    "inferline_http_requests",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "inferline_http_request_duration_seconds",
    "HTTP request latency (to the last body byte) by method and route template",
    ["method", "route"],
    buckets=LATENCY,
)
RATE_LIMITED = Counter("inferline_rate_limited", "Requests refused with 429, by reason", ["reason"])
CHAT_TTFT = Histogram(
    "inferline_chat_time_to_first_token_seconds", "Time to first token per model", ["model"], buckets=LATENCY
)
CHAT_DECODE_RATE = Histogram(
    "inferline_chat_decode_tokens_per_second",
    "Decode rate (completion tokens per second after the first) per model",
    ["model"],
    buckets=(1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 250, 500),
)
CHAT_QUEUE_WAIT = Histogram(
    "inferline_chat_queue_wait_seconds",
    "Time a chat request waited for a free slot",
    ["model"],
    buckets=LATENCY,
)
# One counter per noted unit (see ops.context.note); the usage metric names of ops.usage plus a few more.
UNITS = {
    "chat_prompt_tokens": Counter("inferline_chat_prompt_tokens", "Chat prompt tokens per model", ["model"]),
    "chat_completion_tokens": Counter(
        "inferline_chat_completion_tokens", "Chat completion tokens per model", ["model"]
    ),
    "embedding_tokens": Counter("inferline_embedding_tokens", "Embedding input tokens per model", ["model"]),
    "embedding_texts": Counter("inferline_embedding_texts", "Texts embedded per model", ["model"]),
    "embedding_chunks": Counter("inferline_embedding_chunks", "Bucket chunks embedded per model", ["model"]),
    "transcription_seconds": Counter(
        "inferline_transcription_audio_seconds", "Seconds of audio transcribed per model", ["model"]
    ),
    "tts_characters": Counter("inferline_tts_characters", "Characters synthesized per model", ["model"]),
    "fine_tuning_trained_tokens": Counter(
        "inferline_fine_tuning_trained_tokens", "Tokens trained by fine-tuning jobs per base model", ["model"]
    ),
}


def count_units(units: dict[tuple[str, str], float]) -> None:
    for (metric, model), quantity in units.items():
        counter = UNITS.get(metric)
        if counter is not None and quantity > 0:
            counter.labels(model=model or "-").inc(quantity)


def observe_chat(model: str, ttft: float | None, decode_rate: float | None, queue_wait: float | None) -> None:
    """Record one finished generation's latency figures (None: not measured)."""
    if ttft is not None:
        CHAT_TTFT.labels(model=model).observe(ttft)
    if decode_rate is not None and decode_rate > 0:
        CHAT_DECODE_RATE.labels(model=model).observe(decode_rate)
    if queue_wait is not None:
        CHAT_QUEUE_WAIT.labels(model=model).observe(queue_wait)


class StateCollector(Collector):
    """Scrape-time gauges: job queue depth and age, job attempts/failures, webhook outcomes, loaded models."""

    def __init__(self, container: Any) -> None:
        self.container = container

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from inferline.stores.conversations_tables import WebhookDelivery
        from inferline.stores.tables import Job

        queued = GaugeMetricFamily("inferline_jobs_queued", "Jobs waiting to run, per kind", labels=["kind"])
        oldest = GaugeMetricFamily(
            "inferline_jobs_oldest_queued_age_seconds",
            "Age of the oldest queued job, per kind",
            labels=["kind"],
        )
        by_status = GaugeMetricFamily(
            "inferline_jobs", "Jobs in the database per kind and status", labels=["kind", "status"]
        )
        attempts = GaugeMetricFamily(
            "inferline_job_attempts", "Attempts made by the jobs in the database, per kind", labels=["kind"]
        )
        hooks = GaugeMetricFamily(
            "inferline_webhook_deliveries",
            "Webhook deliveries in the database by outcome",
            labels=["outcome"],
        )
        loaded = GaugeMetricFamily(
            "inferline_engines_loaded",
            "Models whose weights this process holds (1 per model)",
            labels=["model"],
        )
        now = time.time()
        try:
            with self.container.db.session() as s:
                for kind, status, count, tries, first in s.execute(
                    select(
                        Job.kind, Job.status, func.count(), func.sum(Job.attempts), func.min(Job.created_at)
                    ).group_by(Job.kind, Job.status)
                ):
                    by_status.add_metric([kind, status], count)
                    if status == "queued":
                        queued.add_metric([kind], count)
                        if first is not None:
                            oldest.add_metric([kind], max(0.0, now - first.timestamp()))
                    attempts.add_metric([kind], float(tries or 0))
                for status, count in s.execute(
                    select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
                ):
                    hooks.add_metric([status], count)
        except Exception as exc:  # a scrape must not fail because the database is briefly away
            log.warning("metrics: database gauges unavailable: %s", exc)
        try:
            from inferline.areas.models.state import loaded_models

            for model in loaded_models(self.container):
                loaded.add_metric([model], 1)
        except Exception as exc:
            log.warning("metrics: loaded models unavailable: %s", exc)
        yield from (queued, oldest, by_status, attempts, hooks, loaded)


def exposition(container: Any) -> bytes:
    """The text exposition: this process's (multiprocess: every process's) metrics, then the state gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        base = CollectorRegistry()
        multiprocess.MultiProcessCollector(base)
    else:
        from prometheus_client import REGISTRY as base
    state = CollectorRegistry()
    state.register(StateCollector(container))
    return generate_latest(base) + generate_latest(state)
