"""HNSW graphs of the local vector index on disk: one usearch file per (tenant, bucket, width), published
atomically with a JSON description, opened memory-mapped, and a lock file so one process at a time
rewrites it.

A published file holds exactly the chunks of the bucket (of that width) with `id <= max_id`, less every
deletion with `seq <= del_seq`; its keys are the chunk ids. usearch is imported lazily (`engines` extra).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inferline.engines import openmp

CONNECTIVITY = 16  # graph degree (M); 2M links per node on the base layer
EXPANSION_ADD = 128  # candidate list while inserting (ef_construction)
DTYPE = "f16"  # half precision halves the memory with no measurable recall loss; results are re-scored in f32


def usearch_available() -> bool:
    openmp.load_engine_libraries()  # before usearch makes numkong's libgomp global
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


def new_graph(dims: int, expansion_search: int) -> Any:
    """An empty in-memory graph for unit vectors (inner product: distance = 1 - cos)."""
    from usearch.index import Index

    return Index(
        ndim=dims,
        metric="ip",
        dtype=DTYPE,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=expansion_search,
    )


@dataclass(frozen=True)
class Published:
    """The description of a published graph file."""

    file: str  # name within the directory
    version: int
    bucket_uid: str  # the `embedded_buckets.id` it was built for (a re-created bucket never reuses it)
    dims: int
    max_id: int
    del_seq: int
    size: int  # vectors in the graph
    bytes: int = 0  # length of the file (a truncated file is never opened: usearch would crash on it)


class GraphFiles:
    """Graph files of one database, in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _stem(self, tenant_id: str, bucket: str, dims: int) -> str:
        digest = hashlib.sha256(f"{tenant_id}\0{bucket}".encode()).hexdigest()[:32]
        return f"{digest}-{dims}"

    def read(self, tenant_id: str, bucket: str, dims: int) -> Published | None:
        """The description of the published graph, or None (none yet, or unreadable)."""
        path = self.directory / f"{self._stem(tenant_id, bucket, dims)}.json"
        try:
            return Published(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def open_view(self, published: Published, expansion_search: int) -> Any:
        """The published graph, memory-mapped read-only (pages load on demand and are shared by processes)."""
        path = self.directory / published.file
        if path.stat().st_size != published.bytes:
            raise ValueError(f"graph file {published.file} is not {published.bytes} bytes long")
        graph = new_graph(published.dims, expansion_search)
        graph.view(str(path))
        if len(graph) != published.size or graph.ndim != published.dims:
            raise ValueError(f"graph file {published.file} does not match its description")
        return graph

    def load_copy(self, published: Published, expansion_search: int) -> Any:
        """The published graph, read into memory so it can be changed."""
        path = self.directory / published.file
        if path.stat().st_size != published.bytes:
            raise ValueError(f"graph file {published.file} is not {published.bytes} bytes long")
        graph = new_graph(published.dims, expansion_search)
        graph.load(str(path))
        return graph

    def publish(self, graph: Any, tenant_id: str, bucket: str, published: Published) -> Published:
        """Write `graph` as a new file, then atomically point the description at it; the old file goes."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = self._stem(tenant_id, bucket, published.dims)
        previous = self.read(tenant_id, bucket, published.dims)
        name = f"{stem}.{published.version}.usearch"
        target = self.directory / name
        _atomic_write(target, lambda tmp: graph.save(str(tmp)))
        published = Published(**{**asdict(published), "file": name, "bytes": target.stat().st_size})
        _atomic_write(
            self.directory / f"{stem}.json", lambda tmp: tmp.write_text(json.dumps(asdict(published)))
        )
        if previous is not None and previous.file != published.file:
            # Processes that mapped it keep their mapping; those that read the old description retry.
            (self.directory / previous.file).unlink(missing_ok=True)
        return published

    def remove(self, tenant_id: str, bucket: str, dims: int) -> None:
        """Unpublish the graph of one width (processes that mapped it keep their mapping)."""
        previous = self.read(tenant_id, bucket, dims)
        (self.directory / f"{self._stem(tenant_id, bucket, dims)}.json").unlink(missing_ok=True)
        if previous is not None:
            (self.directory / previous.file).unlink(missing_ok=True)

    def remove_bucket(self, tenant_id: str, bucket: str) -> None:
        """Unpublish the graphs of every width of a deleted bucket."""
        stem = self._stem(tenant_id, bucket, 0).removesuffix("-0")
        for description in self.directory.glob(f"{stem}-*.json"):
            self.remove(tenant_id, bucket, int(description.stem.rsplit("-", 1)[1]))

    def busy(self, tenant_id: str, bucket: str, dims: int) -> bool:
        """Whether a process is rewriting the graph right now (holds its lock)."""
        with self.lock(tenant_id, bucket, dims, blocking=False) as held:
            return not held

    @contextlib.contextmanager
    def lock(self, tenant_id: str, bucket: str, dims: int, blocking: bool) -> Iterator[bool]:
        """Hold the bucket's rewrite lock (across processes); yields False when `blocking` is off and
        another holder has it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self._stem(tenant_id, bucket, dims)}.lock"
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(target: Path, write: Any) -> None:
    """Write through `write(tmp_path)`, flush it to disk, then rename over `target`."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
