"""URL crawl into a bucket: breadth-first, same host, at most 5 link levels, robots.txt honoured.

Every request (robots.txt, pages, redirects) goes through `SafeHttpClient`, which resolves each host once,
refuses private, loopback, link-local and reserved addresses unless the operator allow-lists them
(`INFERLINE_FETCH_ALLOW_HOSTS`) and connects to the address it checked, so DNS rebinding cannot slip past.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from contextlib import nullcontext
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

from inferline.errors import InferlineError
from inferline.jobs import JobContext, JobFailed
from inferline.net.safe_http import SafeHttpClient
from inferline.ops.storage import StorageMeter, StorageQuotaExceeded
from inferline.stores.objects import ObjectStore

log = logging.getLogger("inferline.crawler")
USER_AGENT = "inferline-crawler"
MAX_DEPTH = 5


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def links(html: str, base: str) -> list[str]:
    """Absolute http(s) links of a page, fragments removed, in document order."""
    parser = _Links()
    parser.feed(html)
    out = []
    for href in parser.hrefs:
        url = urldefrag(urljoin(base, href.strip())).url
        if urlsplit(url).scheme in ("http", "https"):
            out.append(url)
    return out


def looks_like_html(data: bytes) -> bool:
    head = data[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<body" in head or b"<a " in head


def object_key(url: str) -> str:
    """A stable object key for a page URL: `host/path` (`index.html` for directories, a hash for queries)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if path.endswith("/"):
        path += "index.html"
    key = f"{parts.hostname}{path}"
    if parts.query:
        key += "-" + hashlib.sha256(parts.query.encode()).hexdigest()[:12]
    return key


class Crawler:
    """Fetches a site into a bucket; returns `{object key: page URL}` of what it stored."""

    def __init__(
        self,
        objects: ObjectStore,
        fetcher: SafeHttpClient,
        *,
        max_pages: int = 50,
        quota: StorageMeter | None = None,
    ) -> None:
        self.objects = objects
        self.fetcher = fetcher
        self.max_pages = max_pages
        self.quota = quota

    def check_room(self, tenant_id: str) -> None:
        """Refuse (413), before queueing, a crawl for a tenant whose storage quota is spent."""
        if self.quota is not None:
            self.quota.require_room(tenant_id)

    def check_url(self, url: str) -> str:
        """Refuse, before queueing, a URL that is not absolute http(s) or whose host is not public."""
        self.fetcher.check_url(url, pointer="/url")  # raises BadRequest when refused
        return url

    def _robots(self, start: str) -> RobotFileParser:
        parts = urlsplit(start)
        robots = RobotFileParser()
        try:
            body, _ = self.fetcher.get(f"{parts.scheme}://{parts.netloc}/robots.txt", pointer="/url")
            robots.parse(body.decode("utf-8", "replace").splitlines())
        except InferlineError:
            robots.parse([])  # no robots.txt: everything is allowed
        return robots

    def crawl(self, tenant_id: str, bucket: str, url: str, ctx: JobContext) -> dict[str, str]:
        start = urldefrag(url).url
        host = urlsplit(start).hostname
        robots = self._robots(start)
        queue: deque[tuple[str, int]] = deque([(start, 0)])
        seen = {start}
        stored: dict[str, str] = {}
        while queue and len(stored) < self.max_pages:
            ctx.raise_if_cancelled()
            page, depth = queue.popleft()
            if not robots.can_fetch(USER_AGENT, page):
                if page == start:
                    raise JobFailed(f"robots.txt of {host} disallows {start}")
                continue
            try:
                body, final = self.fetcher.get(page, pointer="/url")
            except InferlineError as exc:
                if page == start:
                    raise JobFailed(f"could not fetch {start}: {exc.detail}") from None
                log.info("crawl of %s skipped %s: %s", start, page, exc.detail)
                continue
            if urlsplit(final).hostname != host:
                continue  # redirected off the site
            html = looks_like_html(body)
            key = object_key(final)
            try:
                with self.quota.reserved(tenant_id, bucket, key, len(body)) if self.quota else nullcontext():
                    self.objects.put_bytes(tenant_id, bucket, key, body, "text/html" if html else None)
            except StorageQuotaExceeded as exc:  # keep what is stored, stop crawling
                if not stored:
                    raise JobFailed(exc.detail) from None
                log.info("crawl of %s stopped: %s", start, exc.detail)
                break
            stored[key] = final
            if html and depth < MAX_DEPTH:
                for link in links(body.decode("utf-8", "replace"), final):
                    if urlsplit(link).hostname == host and link not in seen:
                        seen.add(link)
                        queue.append((link, depth + 1))
        return stored
