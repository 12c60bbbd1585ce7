"""Buckets and objects as the S3 endpoint and the CLI use them: list pages, copies, multipart uploads."""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from inferline.errors import BadRequest, NotFound
from inferline.stores.objects import (
    BucketInfo,
    NoSuchBucket,
    ObjectInfo,
    ObjectStore,
    validate_bucket_name,
    validate_key,
)

MAX_PARTS = 10_000


class NoSuchUpload(NotFound):
    """The multipart upload does not exist, or was completed or aborted."""


class InvalidPart(BadRequest):
    """A listed part was not uploaded, or its ETag does not match."""


@dataclass(frozen=True)
class ListPage:
    """One page of ListObjectsV2: objects, rolled-up common prefixes and the token for the next page."""

    contents: list[ObjectInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_token: str | None


class BucketService:
    """Tenant-scoped bucket operations over an `ObjectStore`."""

    def __init__(self, objects: ObjectStore, uploads_dir: Path) -> None:
        self.objects = objects
        self.uploads_dir = uploads_dir

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
        self, tenant_id: str, bucket: str, key: str, chunks: Iterable[bytes], content_type: str | None = None
    ) -> ObjectInfo:
        return self.objects.put_stream(tenant_id, bucket, key, chunks, content_type)

    def copy(self, tenant_id: str, bucket: str, key: str, source_bucket: str, source_key: str) -> ObjectInfo:
        source, chunks = self.objects.open(tenant_id, source_bucket, source_key)
        return self.put(tenant_id, bucket, key, chunks, source.content_type)

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
        self, tenant_id: str, bucket: str, paths: list[Path], prefix: str = "", create: bool = True
    ) -> list[ObjectInfo]:
        """Upload files (directories recursively, keyed by relative path under `prefix`)."""
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
            with path.open("rb") as fh:
                chunks = iter(lambda fh=fh: fh.read(1 << 20), b"")  # type: ignore[misc]
                uploaded.append(
                    self.objects.put_stream(tenant_id, bucket, prefix + name, chunks, _guess(path))
                )
        return uploaded

    # -- multipart uploads (parts staged on local disk, assembled by a single atomic put) ---------------
    def _upload_dir(self, tenant_id: str, bucket: str, key: str, upload_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id):
            raise NoSuchUpload(f"No multipart upload {upload_id!r}.")
        path = self.uploads_dir / upload_id
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except FileNotFoundError:
            raise NoSuchUpload(f"No multipart upload {upload_id!r}.") from None
        if (manifest["tenant_id"], manifest["bucket"], manifest["key"]) != (tenant_id, bucket, key):
            raise NoSuchUpload(f"No multipart upload {upload_id!r}.")
        return path

    def create_upload(self, tenant_id: str, bucket: str, key: str, content_type: str | None) -> str:
        validate_bucket_name(bucket)
        validate_key(key)
        self.require_bucket(tenant_id, bucket)
        upload_id = uuid.uuid4().hex
        path = self.uploads_dir / upload_id
        path.mkdir(parents=True)
        manifest = {"tenant_id": tenant_id, "bucket": bucket, "key": key, "content_type": content_type}
        (path / "manifest.json").write_text(json.dumps(manifest))
        return upload_id

    def upload_part(
        self, tenant_id: str, bucket: str, key: str, upload_id: str, part_number: int, data: bytes
    ) -> str:
        if not 1 <= part_number <= MAX_PARTS:
            raise BadRequest(f"partNumber must be between 1 and {MAX_PARTS}.", pointer="/partNumber")
        path = self._upload_dir(tenant_id, bucket, key, upload_id)
        tmp = path / f".{part_number}.{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        os.replace(tmp, path / f"{part_number:05d}.part")
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    def complete_upload(
        self, tenant_id: str, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        path = self._upload_dir(tenant_id, bucket, key, upload_id)
        manifest = json.loads((path / "manifest.json").read_text())
        numbers = [n for n, _ in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise InvalidPart("Parts must be listed once each, in ascending order.")
        files = []
        for number, etag in parts:
            part = path / f"{number:05d}.part"
            if not part.is_file() or _md5_file(part) != etag.strip('"'):
                raise InvalidPart(f"Part {number} was not uploaded or its ETag does not match.")
            files.append(part)
        info = self.put(tenant_id, bucket, key, _iter_files(files), manifest.get("content_type"))
        shutil.rmtree(path, ignore_errors=True)
        return info

    def abort_upload(self, tenant_id: str, bucket: str, key: str, upload_id: str) -> None:
        shutil.rmtree(self._upload_dir(tenant_id, bucket, key, upload_id), ignore_errors=True)


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


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _iter_files(files: list[Path]) -> Iterator[bytes]:
    for part in files:
        with part.open("rb") as fh:
            while block := fh.read(1 << 20):
                yield block
