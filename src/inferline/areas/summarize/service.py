"""Summarize a file in one of the tenant's buckets with the chat engine.

Text comes from the document loaders (PDF, HTML, JSON, CSV, text) or, for audio/video, from a transcription.
A text that fits one prompt is summarized directly; a longer one is map-reduced: every chunk is summarized
(no chunk is skipped or cut), then the partial summaries are combined (recursively when they are long), so
nothing is truncated silently. Files over `max_file_bytes`, PDFs over `max_pdf_pages` (counted before any
page is read) and texts over `max_text_chars` are refused with a 400 before any model work, rather than
summarized partially. A summary is cancelled between tokens when its client disconnects (`run`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio.to_thread

from inferline.areas.buckets.loaders import (
    LoaderError,
    MediaTranscriber,
    TooManyPages,
    chunk_text,
    extract_text,
)
from inferline.errors import BadRequest, InferlineError, NotFound, ValidationFailed
from inferline.stores.objects import ObjectStore

MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_PDF_PAGES = 200
MAX_TEXT_CHARS = 200_000
# The instruction follows the text: small models then summarize instead of repeating the text (measured).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
SINGLE = "{text}\n\nSummarize the text above in a few sentences."
MAP = (
    "{text}\n\nThis is part {number} of {total} of a longer document. Summarize this part in a few "
    "sentences, keeping names and numbers."
)
REDUCE = (
    "{text}\n\nThese are summaries of the consecutive parts of one document. Write one summary of the "
    "whole document."
)


class TextCompleter(Protocol):
    """What summarize needs from the chat service (`container.chat`)."""

    def complete_text(
        self,
        tenant_id: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        cancelled: threading.Event | None = None,
    ) -> str: ...


class SummaryCancelled(BadRequest):
    """The client disconnected; the summary was cancelled."""


class SummarizeService:
    """`summarize(tenant, bucket, filename, system_prompt)` -> the summary text."""

    def __init__(
        self,
        objects: ObjectStore,
        chat: TextCompleter,
        transcriber: MediaTranscriber,
        *,
        chunk_chars: int = 6000,
        summary_tokens: int = 256,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_pdf_pages: int = MAX_PDF_PAGES,
        max_text_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        self.objects = objects
        self.chat = chat
        self.transcriber = transcriber
        self.chunk_chars = chunk_chars
        self.summary_tokens = summary_tokens
        self.max_file_bytes = max_file_bytes
        self.max_pdf_pages = max_pdf_pages
        self.max_text_chars = max_text_chars
        self.cancellations = 0  # summaries stopped because their client went away

    async def run(
        self,
        tenant_id: str,
        bucket: str,
        filename: str,
        system_prompt: str | None,
        disconnected: Callable[[], Awaitable[bool]],
    ) -> str:
        """`summarize` in a worker thread, cancelled (between tokens) when `disconnected()` turns true."""
        cancelled = threading.Event()
        call = functools.partial(self.summarize, tenant_id, bucket, filename, system_prompt, cancelled)
        work = asyncio.ensure_future(anyio.to_thread.run_sync(call))
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=0.5)
                if not work.done() and await disconnected():
                    cancelled.set()
            return work.result()
        finally:
            cancelled.set()  # also when this request itself is cancelled (e.g. the server stops)

    def summarize(
        self,
        tenant_id: str,
        bucket: str,
        filename: str,
        system_prompt: str | None,
        cancelled: threading.Event | None = None,
    ) -> str:
        """The summary of the file; setting `cancelled` stops it at the next token (`SummaryCancelled`)."""
        text = self.text_of(tenant_id, bucket, filename)
        chat = self.chat
        stop = cancelled or threading.Event()
        try:
            return self._summarize(chat, tenant_id, text, system_prompt or DEFAULT_SYSTEM_PROMPT, stop)
        except InferlineError:
            if stop.is_set():
                self.cancellations += 1
                raise SummaryCancelled() from None
            raise

    def text_of(self, tenant_id: str, bucket: str, filename: str) -> str:
        """The file's text; 404 for a missing bucket or file, 400 when too large, 422 when unreadable."""
        if not bucket.strip():
            raise ValidationFailed("bucket must not be empty.", pointer="/bucket")
        if not filename.strip():
            raise ValidationFailed("filename must not be empty.", pointer="/filename")
        try:
            info = self.objects.head(tenant_id, bucket, filename)
        except NotFound as exc:
            pointer = "/bucket" if not self.objects.bucket_exists(tenant_id, bucket) else "/filename"
            raise NotFound(exc.detail, pointer=pointer) from None
        if info.size > self.max_file_bytes:
            raise BadRequest(
                f"{filename} is {info.size} bytes; files up to {self.max_file_bytes} bytes are summarized.",
                pointer="/filename",
            )
        data = self.objects.get_bytes(tenant_id, bucket, filename)

        def transcribe(media: bytes, name: str) -> str:
            return self.transcriber.transcribe_text(tenant_id, media, name, source="summarize")

        try:
            text = extract_text(
                filename,
                data,
                transcribe=transcribe,
                max_pdf_pages=self.max_pdf_pages,
            )
        except TooManyPages as exc:
            raise BadRequest(
                f"{filename} has {exc.pages} pages; PDFs of up to {exc.limit} pages are summarized "
                "(INFERLINE_SUMMARIZE_MAX_PDF_PAGES).",
                pointer="/filename",
            ) from None
        except LoaderError as exc:
            raise ValidationFailed(f"{filename} cannot be summarized: {exc}", pointer="/filename") from None
        if len(text) > self.max_text_chars:
            raise BadRequest(
                f"The text of {filename} is {len(text)} characters; up to {self.max_text_chars} can be "
                "summarized (INFERLINE_SUMMARIZE_MAX_CHARS).",
                pointer="/filename",
            )
        return text

    def chunks(self, text: str) -> list[str]:
        """The pieces the text is summarized in: consecutive, covering all of it (breaks at paragraphs)."""
        return [piece for _, piece in chunk_text(text, self.chunk_chars, 0)]

    def _summarize(
        self,
        chat: TextCompleter,
        tenant_id: str,
        text: str,
        system_prompt: str,
        stop: threading.Event,
        depth: int = 0,
    ) -> str:
        ask = functools.partial(self._ask, chat, tenant_id, stop=stop)
        if len(text) <= self.chunk_chars:
            return ask(system_prompt, SINGLE.format(text=text))
        pieces = self.chunks(text)
        partials = [
            ask(DEFAULT_SYSTEM_PROMPT, MAP.format(text=p, number=n, total=len(pieces)))
            for n, p in enumerate(pieces, start=1)
        ]
        combined = "\n\n".join(f"Part {n}: {p}" for n, p in enumerate(partials, start=1))
        if len(combined) > self.chunk_chars:
            if depth >= 5 or len(combined) >= len(text):
                raise InferlineError("The partial summaries did not get shorter; the summary was abandoned.")
            return self._summarize(chat, tenant_id, combined, system_prompt, stop, depth + 1)
        return ask(system_prompt, REDUCE.format(text=combined))

    def _ask(
        self, chat: TextCompleter, tenant_id: str, system: str, user: str, *, stop: threading.Event
    ) -> str:
        """One greedy completion (summaries are reproducible); none starts once `stop` is set."""
        if stop.is_set():
            raise SummaryCancelled()
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        reply = chat.complete_text(
            tenant_id, messages, max_tokens=self.summary_tokens, temperature=0.0, cancelled=stop
        )
        return reply.strip()
