"""Builds the summarize area: map-reduce summaries by the chat service, media through transcription."""

from __future__ import annotations

from inferline.areas.buckets.loaders import MediaTranscriber
from inferline.areas.summarize.service import SummarizeService, TextCompleter
from inferline.config import Settings
from inferline.stores.objects import ObjectStore


def build_summarize(
    settings: Settings, objects: ObjectStore, chat: TextCompleter, transcriber: MediaTranscriber
) -> SummarizeService:
    return SummarizeService(
        objects,
        chat,
        transcriber,
        max_pdf_pages=settings.summarize_max_pdf_pages,
        max_text_chars=settings.summarize_max_chars,
    )
