"""Document loaders: bytes of a file -> plain text (+ loader metadata), and the chunker.

Formats: PDF (pypdf), HTML (the stdlib parser; scripts and styles dropped), JSON (flattened `path: value`
lines), CSV (`column: value` per row), plain text, and audio/video through a transcription callback. Anything
else is decoded as UTF-8 text; a binary file that is none of these fails with a reason.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any, Protocol

MEDIA_EXTENSIONS = frozenset(
    {"mp3", "mp4", "mpeg", "mpga", "m4a", "wav", "webm", "ogg", "flac", "oga", "opus"}
)
Transcribe = Callable[[bytes, str], str]


class MediaTranscriber(Protocol):
    """Speech-to-text for media files met by other areas (the audio area's transcription service)."""

    def transcribe_text(self, tenant_id: str, data: bytes, filename: str, *, source: str) -> str: ...


class LoaderError(Exception):
    """The file could not be turned into text; the message is the per-file `error_reason`."""


class TooManyPages(LoaderError):
    """A PDF has more pages than the caller reads (counted before any page's text is extracted)."""

    def __init__(self, pages: int, limit: int) -> None:
        super().__init__(f"the PDF has {pages} pages; at most {limit} are read")
        self.pages, self.limit = pages, limit


@dataclass(frozen=True)
class Document:
    """Extracted text. `sections` (text, metadata), when set, are chunked separately (intercom articles)."""

    text: str
    loader: str
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: list[tuple[str, dict[str, Any]]] | None = None


def extract_text(
    filename: str, data: bytes, *, transcribe: Transcribe | None = None, max_pdf_pages: int | None = None
) -> str:
    """The text of a file (PDF, HTML, JSON, CSV, text; media with `transcribe`); `LoaderError` if none,
    `TooManyPages` for a PDF over `max_pdf_pages`."""
    return load(filename, data, transcribe=transcribe, max_pdf_pages=max_pdf_pages).text


def load(
    filename: str,
    data: bytes,
    *,
    transcribe: Transcribe | None = None,
    loader: str = "default",
    max_pdf_pages: int | None = None,
) -> Document:
    """Pick a loader by extension (and content sniffing) and run it. `loader="intercom"` reads Intercom
    article JSON (other files load as with `default`)."""
    ext = PurePosixPath(filename.lower()).suffix.lstrip(".")
    head = data[:1024].lstrip().lower()
    if loader == "intercom" and ext == "json":
        return _intercom(data)
    if ext == "pdf" or data.startswith(b"%PDF-"):
        document = _pdf(data, max_pdf_pages)
    elif ext in ("html", "htm", "xhtml") or head.startswith((b"<!doctype html", b"<html")):
        document = Document(html_to_text(_decode(data)), "html")
    elif ext == "json":
        document = _json(data)
    elif ext == "csv":
        document = _csv(data)
    elif ext in MEDIA_EXTENSIONS:
        if transcribe is None:
            raise LoaderError(f"audio/video files (.{ext}) need transcription, which is not available here")
        document = Document(transcribe(data, filename), "transcription")
    else:
        if b"\x00" in data[:8192]:
            raise LoaderError("unsupported binary file: not PDF, HTML, JSON, CSV, text, audio or video")
        document = Document(_decode(data), "text")
    text = _tidy(document.text)
    if not text:
        raise LoaderError("no text could be extracted from the file")
    return Document(text, document.loader, document.metadata, document.sections)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def _pdf(data: bytes, max_pages: int | None = None) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        count = len(reader.pages)  # walks the page tree only; no page is parsed yet
        if max_pages is not None and count > max_pages:
            raise TooManyPages(count, max_pages)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoaderError(f"not a readable PDF: {type(exc).__name__}: {exc}") from None
    return Document("\n\n".join(pages), "pdf", {"pages": len(pages)})


def _json(data: bytes) -> Document:
    try:
        value = json.loads(_decode(data))
    except json.JSONDecodeError as exc:
        raise LoaderError(f"invalid JSON: {exc}") from None
    lines: list[str] = []
    _flatten(value, "", lines)
    return Document("\n".join(lines), "json")


def _flatten(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _flatten(item, f"{path}[{i}]", out)
    elif value is not None:
        out.append(f"{path}: {value}" if path else str(value))


def _csv(data: bytes) -> Document:
    try:
        rows = list(csv.reader(io.StringIO(_decode(data))))
    except csv.Error as exc:
        raise LoaderError(f"invalid CSV: {exc}") from None
    if not rows:
        return Document("", "csv")
    header, body = rows[0], rows[1:]
    if not body:
        return Document(", ".join(header), "csv")
    lines = [", ".join(f"{h}: {v}" for h, v in zip(header, row, strict=False) if v) for row in body]
    return Document("\n".join(lines), "csv", {"rows": len(body)})


class _TextExtractor(HTMLParser):
    SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})
    BLOCK = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "ul",
            "ol",
            "tr",
            "table",
            "section",
            "article",
            "header",
            "footer",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "pre",
            "blockquote",
            "title",
            "nav",
            "main",
            "aside",
            "dd",
            "dt",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skip += 1
        if tag in self.BLOCK:
            self.parts.append("\n\n" if tag not in ("br", "li", "tr") else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP and self._skip:
            self._skip -= 1
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML document (title first), block elements separated by blank lines."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    title = " ".join("".join(parser.title).split())
    body = "".join(parser.parts)
    return f"{title}\n\n{body}" if title else body


def _intercom(data: bytes) -> Document:
    """Intercom articles (one, a list, or `{"data": [...]}`): one section per paragraph, with the article URL
    and the heading the paragraph sits under."""
    try:
        value = json.loads(_decode(data))
    except json.JSONDecodeError as exc:
        raise LoaderError(f"invalid JSON: {exc}") from None
    articles = value.get("data", [value]) if isinstance(value, dict) else value
    if not isinstance(articles, list) or not all(isinstance(a, dict) and "body" in a for a in articles):
        raise LoaderError("not Intercom article JSON: expected articles with a `body`")
    sections: list[tuple[str, dict[str, Any]]] = []
    for article in articles:
        title = str(article.get("title") or "")
        parser = _Paragraphs(title)
        parser.feed(str(article.get("body") or ""))
        parser.close()
        parser.flush()
        meta = {"article_url": str(article.get("url") or ""), "title": title}
        sections += [(text, {**meta, "heading": heading}) for heading, text in parser.paragraphs]
    if not sections:
        raise LoaderError("no text could be extracted from the articles")
    return Document("\n\n".join(t for t, _ in sections), "intercom", {"articles": len(articles)}, sections)


class _Paragraphs(HTMLParser):
    """(heading, paragraph text) pairs of an HTML body; the heading starts as the article title."""

    HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self, title: str) -> None:
        super().__init__(convert_charrefs=True)
        self.heading = title
        self.paragraphs: list[tuple[str, str]] = []
        self._buffer: list[str] = []
        self._in_heading = False

    def flush(self) -> None:
        text = " ".join("".join(self._buffer).split())
        self._buffer = []
        if not text:
            return
        if self._in_heading:
            self.heading = text
        else:
            self.paragraphs.append((self.heading, text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HEADINGS or tag in _TextExtractor.BLOCK:
            self.flush()
            self._in_heading = tag in self.HEADINGS

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HEADINGS or tag in _TextExtractor.BLOCK:
            self.flush()
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        self._buffer.append(data)


def chunk_document(document: Document, size: int, overlap: int) -> list[tuple[int, str, dict[str, Any]]]:
    """(offset, chunk, metadata) of a document: its sections chunked one by one, or its whole text."""
    if document.sections is None:
        return [(offset, piece, {}) for offset, piece in chunk_text(document.text, size, overlap)]
    return [
        (offset, piece, meta)
        for text, meta in document.sections
        for offset, piece in chunk_text(text, size, overlap)
    ]


def chunk_text(text: str, size: int, overlap: int) -> list[tuple[int, str]]:
    """(start offset, chunk) windows of at most `size` characters overlapping by about `overlap`.

    Windows end at the last paragraph, line, sentence or word break in their second half when there is one.
    """
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError("need size > 0 and 0 <= overlap < size")
    chunks: list[tuple[int, str]] = []
    start, n = 0, len(text)
    while start < n:
        end = min(n, start + size)
        if end < n:
            for sep in ("\n\n", "\n", ". ", " "):
                cut = text.rfind(sep, start + size // 2, end)
                if cut > start:
                    end = cut + len(sep)
                    break
        piece = text[start:end].strip()
        if piece:
            chunks.append((start, piece))
        if end >= n:
            break
        nxt = max(end - overlap, start + 1)
        space = text.find(" ", nxt, end)
        start = space + 1 if 0 <= space < end - 1 and overlap else nxt
    return chunks
