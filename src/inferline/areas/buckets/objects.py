"""Buckets and objects as the S3 endpoint and the CLI use them: list pages, copies, multipart uploads."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import mimetypes
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inferline.errors import BadRequest, NotFound
from inferline.ops.storage import StorageMeter
from inferline.stores.objects import (
    BucketInfo,
    Headers,
    NoSuchBucket,
    ObjectInfo,
    ObjectStore,
    validate_bucket_name,
    validate_key,
)

MAX_PARTS = 10_000
MIN_PART_BYTES = 5 * 1024 * 1024  # every part but the last, as in S3
# Progress of `upload_paths`: (bucket/key, file size, bytes written so far), before and after each chunk.
UploadProgress = Callable[[str, int, int], None]


class NoSuchUpload(NotFound):
    """The multipart upload does not exist, or was completed or aborted."""


class InvalidPart(BadRequest):
    """A listed part was not uploaded, or its ETag does not match."""


class InvalidPartOrder(BadRequest):
    """The parts of a completion are not listed in strictly ascending part-number order."""


class EntityTooSmall(BadRequest):
    """A part other than the last is smaller than `MIN_PART_BYTES`."""


class InvalidCopy(BadRequest):
    """An object copied onto itself without replacing its metadata."""


@dataclass(frozen=True)
class ObjectAttrs:
    """What a writer says about an object besides its bytes: content type, stored headers, user metadata."""

    content_type: str | None = None
    headers: Headers = field(default_factory=dict)
    metadata: Headers = field(default_factory=dict)


@dataclass(frozen=True)
class PartInfo:
    """An uploaded part of a multipart upload."""

    number: int
    etag: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class UploadInfo:
    """A multipart upload in progress."""

    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class UploadsPage:
    """One page of ListMultipartUploads: uploads, rolled-up common prefixes and the markers to go on from."""

    uploads: list[UploadInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str
    next_upload_id_marker: str


@dataclass(frozen=True)
class ListPage:
    """One page of ListObjectsV2: objects, rolled-up common prefixes and the token for the next page."""

    contents: list[ObjectInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_token: str | None


class BucketService:
    """Tenant-scoped bucket operations over an `ObjectStore`; writes of a known size are checked against the
    tenant's storage quota (`quota`)."""

    def __init__(self, objects: ObjectStore, uploads_dir: Path, quota: StorageMeter | None = None) -> None:
        self.objects = objects
        self.uploads_dir = uploads_dir
        self.quota = quota

    def _reserved(self, tenant_id: str, bucket: str, key: str, size: int) -> AbstractContextManager[None]:
        """Around a write of `size` bytes: refused past the quota, its growth reserved until it is done."""
        if self.quota is None:
            return nullcontext()
        return self.quota.reserved(tenant_id, bucket, key, size)

    # -- buckets ---------------------------------------------------------------------------------------
    def create_bucket(self, tenant_id: str, bucket: str) -> BucketInfo:
        return self.objects.create_bucket(tenant_id, bucket)

    def delete_bucket(self, tenant_id: str, bucket: str) -> None:
        self.objects.delete_bucket(tenant_id, bucket)

    def list_buckets(self, tenant_id: str) -> list[BucketInfo]:
        return self.objects.list_buckets(tenant_id)

    def require_bucket(self, tenant_id: str, bucket: str) -> None:
        if not self.objects.bucket_exists(tenant_id, bucket):
            raise NoSuchBucket(f"Bucket {bucket!r} does not exist.", pointer="/bucket_name")

    # -- objects ---------------------------------------------------------------------------------------
    def put(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
        size: int | None = None,
    ) -> ObjectInfo:
        """Write an object; with its `size`, refused past the storage quota before anything is written."""
        with self._reserved(tenant_id, bucket, key, size) if size is not None else nullcontext():
            return self.objects.put_stream(
                tenant_id, bucket, key, chunks, content_type, headers=headers, metadata=metadata
            )

    def copy(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        source_bucket: str,
        source_key: str,
        *,
        replace: ObjectAttrs | None = None,
    ) -> ObjectInfo:
        """Copy an object with its content type, headers and metadata, or with those of `replace`."""
        if replace is None and (bucket, key) == (source_bucket, source_key):
            raise InvalidCopy(
                "This copy request is illegal because it is trying to copy an object to itself without "
                "changing the object's metadata."
            )
        source, chunks = self.objects.open(tenant_id, source_bucket, source_key)
        attrs: ObjectAttrs | ObjectInfo = replace or source
        return self.put(
            tenant_id,
            bucket,
            key,
            chunks,
            attrs.content_type,
            headers=attrs.headers,
            metadata=attrs.metadata,
            size=source.size,
        )

    def open(self, tenant_id: str, bucket: str, key: str) -> tuple[ObjectInfo, Iterator[bytes]]:
        return self.objects.open(tenant_id, bucket, key)

    def head(self, tenant_id: str, bucket: str, key: str) -> ObjectInfo:
        return self.objects.head(tenant_id, bucket, key)

    def delete(self, tenant_id: str, bucket: str, key: str) -> bool:
        return self.objects.delete(tenant_id, bucket, key)

    def delete_many(self, tenant_id: str, bucket: str, keys: list[str]) -> list[str]:
        """Delete `keys`; missing ones count as deleted, as in S3."""
        self.require_bucket(tenant_id, bucket)
        for key in keys:
            self.objects.delete(tenant_id, bucket, key)
        return keys

    def list_page(
        self,
        tenant_id: str,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        max_keys: int = 1000,
        start_after: str = "",
        token: str | None = None,
    ) -> ListPage:
        """ListObjectsV2 semantics: keys after `start_after`/`token`, with `delimiter` roll-ups."""
        after = _decode_token(token) if token else start_after
        contents: list[ObjectInfo] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        for obj in self.objects.list_objects(tenant_id, bucket, prefix):
            if obj.key <= after:
                continue
            rolled = _rollup(obj.key, prefix, delimiter)
            if rolled is not None and prefixes and prefixes[-1] == rolled:
                continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if rolled is not None:
                prefixes.append(rolled)
                last = rolled + "\U0010ffff"  # skip every key under this prefix on the next page
            else:
                contents.append(obj)
                last = obj.key
        return ListPage(contents, prefixes, truncated, _encode_token(last) if truncated else None)

    def upload_paths(
        self,
        tenant_id: str,
        bucket: str,
        paths: list[Path],
        prefix: str = "",
        create: bool = True,
        progress: UploadProgress | None = None,
    ) -> list[ObjectInfo]:
        """Upload files (directories recursively, keyed by relative path under `prefix`); `progress` hears of
        each file before its first chunk and after every chunk written."""
        if create and not self.objects.bucket_exists(tenant_id, bucket):
            self.objects.create_bucket(tenant_id, bucket)
        self.require_bucket(tenant_id, bucket)
        files: list[tuple[Path, str]] = []
        for path in paths:
            if path.is_dir():
                files += [(f, f.relative_to(path).as_posix()) for f in sorted(path.rglob("*")) if f.is_file()]
            elif path.is_file():
                files.append((path, path.name))
            else:
                raise BadRequest(f"{path} is not a file or directory.")
        uploaded = []
        for path, name in files:
            with (
                self._reserved(tenant_id, bucket, prefix + name, path.stat().st_size),
                path.open("rb") as fh,
            ):
                chunks: Iterator[bytes] = iter(lambda fh=fh: fh.read(1 << 20), b"")  # type: ignore[misc]
                if progress is not None:
                    size = os.fstat(fh.fileno()).st_size
                    chunks = _reported(chunks, f"{bucket}/{prefix}{name}", size, progress)
                uploaded.append(
                    self.objects.put_stream(tenant_id, bucket, prefix + name, chunks, _guess(path))
                )
        return uploaded

    # -- multipart uploads (parts staged on local disk, assembled by a single atomic put) ---------------
    # <uploads_dir>/<upload id>/manifest.json names the tenant, bucket, key and what the object is written
    # with; each part is a data file named by its record <number>.json, replaced atomically on re-upload.
    def _manifest(self, upload_id: str) -> dict[str, Any] | None:
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id):
            return None
        try:
            return json.loads((self.uploads_dir / upload_id / "manifest.json").read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None

    def _upload(self, tenant_id: str, bucket: str, key: str, upload_id: str) -> tuple[Path, dict[str, Any]]:
        manifest = self._manifest(upload_id)
        if manifest is None or (manifest["tenant_id"], manifest["bucket"], manifest["key"]) != (
            tenant_id,
            bucket,
            key,
        ):
            raise NoSuchUpload(f"No multipart upload {upload_id!r}.")
        return self.uploads_dir / upload_id, manifest

    def create_upload(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        content_type: str | None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> str:
        """Start a multipart upload; the object will be written with this content type, headers, metadata."""
        validate_bucket_name(bucket)
        validate_key(key)
        self.require_bucket(tenant_id, bucket)
        upload_id = f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}"  # sorts by initiation time
        path = self.uploads_dir / upload_id
        path.mkdir(parents=True)
        manifest = {
            "tenant_id": tenant_id,
            "bucket": bucket,
            "key": key,
            "content_type": content_type,
            "headers": headers or {},
            "metadata": metadata or {},
            "initiated": datetime.now(UTC).isoformat(),
        }
        (path / "manifest.json").write_text(json.dumps(manifest))
        return upload_id

    def upload_part(
        self, tenant_id: str, bucket: str, key: str, upload_id: str, part_number: int, data: bytes
    ) -> str:
        if not 1 <= part_number <= MAX_PARTS:
            raise BadRequest(f"partNumber must be between 1 and {MAX_PARTS}.", pointer="/partNumber")
        path, _ = self._upload(tenant_id, bucket, key, upload_id)
        if self.quota is not None:  # the upload's other parts and this one count
            others = sum(r["size"] for r in self._parts(path) if r["number"] != part_number)
            self.quota.check(tenant_id, bucket, key, others + len(data))  # staged parts: checked, not held
        data_name = f"part-{uuid.uuid4().hex}"
        (path / data_name).write_bytes(data)
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        record = {
            "number": part_number,
            "etag": etag,
            "size": len(data),
            "last_modified": datetime.now(UTC).isoformat(),
            "data": data_name,
        }
        previous = _read_json(path / f"{part_number:05d}.json")
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, path / f"{part_number:05d}.json")
        if previous is not None and previous["data"] != data_name:
            (path / previous["data"]).unlink(missing_ok=True)
        return etag

    def _parts(self, path: Path) -> list[dict[str, Any]]:
        records = (_read_json(p) for p in sorted(path.glob("[0-9][0-9][0-9][0-9][0-9].json")))
        return [r for r in records if r is not None]

    def list_parts(
        self, tenant_id: str, bucket: str, key: str, upload_id: str, *, max_parts: int = 1000, after: int = 0
    ) -> tuple[list[PartInfo], bool]:
        """The upload's parts numbered above `after`, at most `max_parts`, and whether more follow."""
        path, _ = self._upload(tenant_id, bucket, key, upload_id)
        parts = [
            PartInfo(r["number"], r["etag"], r["size"], datetime.fromisoformat(r["last_modified"]))
            for r in self._parts(path)
            if r["number"] > after
        ]
        return parts[:max_parts], len(parts) > max_parts

    def list_uploads(
        self,
        tenant_id: str,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        """The bucket's uploads in progress, by key then initiation time, after the markers (S3's rules)."""
        self.require_bucket(tenant_id, bucket)
        found = []
        for path in self.uploads_dir.glob("*/manifest.json") if self.uploads_dir.is_dir() else []:
            manifest = self._manifest(path.parent.name)
            if manifest is None or (manifest["tenant_id"], manifest["bucket"]) != (tenant_id, bucket):
                continue
            if manifest["key"].startswith(prefix):
                initiated = datetime.fromisoformat(manifest.get("initiated") or "1970-01-01T00:00:00+00:00")
                found.append(UploadInfo(manifest["key"], path.parent.name, initiated))
        found.sort(key=lambda u: (u.key, u.upload_id))
        uploads: list[UploadInfo] = []
        prefixes: list[str] = []
        truncated, next_key, next_id = False, "", ""
        for upload in found:
            if upload.key < key_marker or (
                upload.key == key_marker and (not upload_id_marker or upload.upload_id <= upload_id_marker)
            ):
                continue
            rolled = _rollup(upload.key, prefix, delimiter)
            if rolled is not None and (rolled in prefixes or rolled <= key_marker):
                continue
            if len(uploads) + len(prefixes) >= max_uploads:
                truncated = True
                break
            if rolled is not None:
                prefixes.append(rolled)
                next_key, next_id = rolled, ""
            else:
                uploads.append(upload)
                next_key, next_id = upload.key, upload.upload_id
        return UploadsPage(uploads, prefixes, truncated, next_key, next_id)

    def complete_upload(
        self, tenant_id: str, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        """Assemble the listed parts (ascending, ETags matching, all but the last ≥ 5 MiB) into the object."""
        path, manifest = self._upload(tenant_id, bucket, key, upload_id)
        numbers = [n for n, _ in parts]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise InvalidPartOrder("The list of parts was not in ascending order.")
        uploaded = {r["number"]: r for r in self._parts(path)}
        records = []
        for number, etag in parts:
            record = uploaded.get(number)
            if record is None or record["etag"] != etag.strip().strip('"'):
                raise InvalidPart(f"Part {number} was not uploaded or its ETag does not match.")
            records.append(record)
        for record in records[:-1]:
            if record["size"] < MIN_PART_BYTES:
                raise EntityTooSmall(
                    f"Part {record['number']} is {record['size']} bytes; every part but the last must be at "
                    f"least {MIN_PART_BYTES} bytes."
                )
        with self._reserved(tenant_id, bucket, key, sum(r["size"] for r in records)):
            info = self.objects.put_parts(
                tenant_id,
                bucket,
                key,
                [path / r["data"] for r in records],
                manifest.get("content_type"),
                headers=manifest.get("headers") or {},
                metadata=manifest.get("metadata") or {},
            )
        shutil.rmtree(path, ignore_errors=True)
        return info

    def abort_upload(self, tenant_id: str, bucket: str, key: str, upload_id: str) -> None:
        path, _ = self._upload(tenant_id, bucket, key, upload_id)
        shutil.rmtree(path, ignore_errors=True)


def _reported(chunks: Iterator[bytes], name: str, size: int, progress: UploadProgress) -> Iterator[bytes]:
    """`chunks`, telling `progress` the bytes taken so far: 0 first, then after the store took each chunk."""
    done = 0
    progress(name, size, done)
    for chunk in chunks:
        yield chunk
        done += len(chunk)
        progress(name, size, done)


def _guess(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _rollup(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    rest = key[len(prefix) :]
    cut = rest.find(delimiter)
    return None if cut < 0 else prefix + rest[: cut + len(delimiter)]


def _encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError:
        raise BadRequest("The continuation token is not valid.", pointer="/continuation-token") from None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None
