"""What `inferline bucket upload` shows on stderr: each file's bytes as they are written, then (`--embed`) the
embedding task's status per file until the task ends. On a terminal a file's upload redraws one line;
otherwise (a log, a pipe) every update is a line of its own."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from inferline.areas.buckets.ingest import FAILURE, PARTIAL, QUEUED, SUCCESS, IngestService
from inferline.catalog import human_bytes
from inferline.errors import NotFound
from inferline.stores.embeddings_tables import EmbeddingTask

DONE = (SUCCESS, FAILURE, PARTIAL)


class UploadProgress:
    """`upload docs/a.pdf: 1.0 MB of 3.2 MB (31%)`: the first and last update of a file, and at most one
    in between every `interval` seconds."""

    def __init__(self, out: TextIO, interval: float = 0.5) -> None:
        self.out, self.interval, self.tty = out, interval, out.isatty()
        self.last = 0.0

    def __call__(self, name: str, size: int, done: int) -> None:
        now = time.monotonic()
        if 0 < done < size and now - self.last < self.interval:
            return
        self.last = now
        percent = 100 if done >= size else 100 * done // size
        line = f"upload {name}: {human_bytes(done)} of {human_bytes(size)} ({percent}%)"
        end = "\n" if not self.tty or done >= size else ""
        self.out.write(("\r\x1b[K" if self.tty else "") + line + end)
        self.out.flush()


def file_states(ingest: IngestService, tenant_id: str, bucket: str) -> dict[str, tuple[Any, ...]]:
    """Each embedded file's (status, updated_at); empty for a bucket that was never embedded."""
    try:
        return {f["filename"]: (f["status"], f["updated_at"]) for f in ingest.bucket_files(tenant_id, bucket)}
    except NotFound:
        return {}


def follow_task(
    ingest: IngestService,
    tenant_id: str,
    task_id: str,
    bucket: str,
    before: dict[str, tuple[Any, ...]],
    out: TextIO,
    *,
    poll_seconds: float = 0.5,
    hint_after: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Print `embed bucket/key: status[: reason]` as each file changes from `before` (taken before the upload,
    so no change is missed), and the task's end; returns its final status."""
    seen = dict(before)
    started, hinted = time.monotonic(), False
    out.write(f"embed {bucket}: task {task_id} queued\n")
    out.flush()
    while True:
        task = ingest.get_task(tenant_id, task_id)  # read first: file rows below are at least this recent
        for f in ingest.bucket_files(tenant_id, bucket):
            state = (f["status"], f["updated_at"])
            if seen.get(f["filename"]) != state:
                seen[f["filename"]] = state
                reason = f": {f['error_reason']}" if f["error_reason"] else ""
                out.write(f"embed {bucket}/{f['filename']}: {f['status']}{reason}\n")
        if task["status"] in DONE:
            error = ingest_error(ingest, tenant_id, task_id)
            out.write(f"embed {bucket}: {task['status']}" + (f": {error}" if error else "") + "\n")
            out.flush()
            return str(task["status"])
        if task["status"] == QUEUED and not hinted and time.monotonic() - started > hint_after:
            hinted = True
            out.write(
                f"embed {bucket}: still queued; `inferline serve` or `inferline worker` on this data "
                "directory (or database) runs it\n"
            )
        out.flush()
        sleep(poll_seconds)


def ingest_error(ingest: IngestService, tenant_id: str, task_id: str) -> str | None:
    """The task's error (why it failed, or how many files did)."""
    with ingest.db.session() as s:
        task = s.get(EmbeddingTask, task_id)
        return task.error if task is not None and task.tenant_id == tenant_id else None
