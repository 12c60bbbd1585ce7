"""Object storage (buckets of objects, per tenant): local filesystem by default, any S3 service at scale.

Keys are opaque strings. Every bucket name is scoped by tenant: tenant A's `docs` and tenant B's `docs` are
different buckets, and one tenant can never address another's. A missing bucket or object is `NotFound`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from inferline.errors import BadRequest, InferlineError, NotFound

log = logging.getLogger("inferline.objects")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024
# The standard HTTP headers an object keeps from its writer and answers on every read, as S3 does.
STORED_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires")
Headers = dict[str, str]


class NoSuchBucket(NotFound):
    """The bucket does not exist."""


class NoSuchKey(NotFound):
    """The object does not exist."""


class InvalidBucketName(BadRequest):
    """Bucket names are 3-63 lowercase letters, digits, dots or hyphens."""


class BucketNotEmpty(InferlineError):
    """The bucket still holds objects; delete them first."""

    status = 409
    code = "10015"
    title = "Bucket not empty"


class BucketAlreadyExists(InferlineError):
    """A bucket with this name already exists."""

    status = 409
    code = "10015"
    title = "Bucket already exists"


@dataclass(frozen=True)
class ObjectInfo:
    """An object's metadata.

    `etag` is the hex MD5 of its bytes, or for a multipart upload S3's `<md5 of the part MD5s>-<parts>`.
    `headers` are the `STORED_HEADERS` it was written with; `metadata` its user metadata (`x-amz-meta-<name>`,
    names lower-case, without the prefix).
    """

    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str = "application/octet-stream"
    headers: Headers = field(default_factory=dict, hash=False)
    metadata: Headers = field(default_factory=dict, hash=False)


def multipart_etag(part_digests: list[bytes]) -> str:
    """S3's ETag of an object assembled from parts: hex MD5 of the concatenated part MD5 digests, `-N`."""
    return f"{hashlib.md5(b''.join(part_digests), usedforsecurity=False).hexdigest()}-{len(part_digests)}"


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created_at: datetime


class ObjectStore(Protocol):
    """Buckets and objects of each tenant."""

    def create_bucket(self, tenant_id: str, bucket: str) -> BucketInfo:
        """Create a bucket; `BucketAlreadyExists` when the tenant has it already."""
        ...

    def delete_bucket(self, tenant_id: str, bucket: str) -> None:
        """Delete an empty bucket (`BucketNotEmpty` otherwise)."""
        ...

    def list_buckets(self, tenant_id: str) -> list[BucketInfo]: ...

    def bucket_exists(self, tenant_id: str, bucket: str) -> bool: ...

    def put_bytes(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo: ...

    def put_stream(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        """Store an object from chunks; readers see the old object or the whole new one, never a part."""
        ...

    def put_parts(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        parts: list[Path],
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        """Store the concatenation of the `parts` files as one object with S3's multipart ETag (`-N`)."""
        ...

    def get_bytes(self, tenant_id: str, bucket: str, key: str) -> bytes: ...

    def open(self, tenant_id: str, bucket: str, key: str) -> tuple[ObjectInfo, Iterator[bytes]]:
        """The object's metadata and an iterator over its bytes."""
        ...

    def head(self, tenant_id: str, bucket: str, key: str) -> ObjectInfo: ...

    def list_objects(self, tenant_id: str, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with `prefix`, sorted by key."""
        ...

    def delete(self, tenant_id: str, bucket: str, key: str) -> bool:
        """Remove an object; False when there was none (not an error, as in S3)."""
        ...


ChangeListener = Callable[[str, str], None]


class ObservedObjectStore:
    """An `ObjectStore` that tells listeners `(tenant_id, bucket)` after every object write or delete.

    This is how embedded buckets stay in sync whoever writes to them (S3 endpoint, CLI, other areas).
    """

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self._listeners: list[ChangeListener] = []

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _changed(self, tenant_id: str, bucket: str) -> None:
        for listener in self._listeners:
            try:
                listener(tenant_id, bucket)
            except Exception:
                log.exception("object change listener failed for %s/%s", tenant_id, bucket)

    def create_bucket(self, tenant_id: str, bucket: str) -> BucketInfo:
        return self.inner.create_bucket(tenant_id, bucket)

    def delete_bucket(self, tenant_id: str, bucket: str) -> None:
        self.inner.delete_bucket(tenant_id, bucket)

    def list_buckets(self, tenant_id: str) -> list[BucketInfo]:
        return self.inner.list_buckets(tenant_id)

    def bucket_exists(self, tenant_id: str, bucket: str) -> bool:
        return self.inner.bucket_exists(tenant_id, bucket)

    def put_bytes(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        info = self.inner.put_bytes(
            tenant_id, bucket, key, data, content_type, headers=headers, metadata=metadata
        )
        self._changed(tenant_id, bucket)
        return info

    def put_stream(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        info = self.inner.put_stream(
            tenant_id, bucket, key, chunks, content_type, headers=headers, metadata=metadata
        )
        self._changed(tenant_id, bucket)
        return info

    def put_parts(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        parts: list[Path],
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        info = self.inner.put_parts(
            tenant_id, bucket, key, parts, content_type, headers=headers, metadata=metadata
        )
        self._changed(tenant_id, bucket)
        return info

    def get_bytes(self, tenant_id: str, bucket: str, key: str) -> bytes:
        return self.inner.get_bytes(tenant_id, bucket, key)

    def open(self, tenant_id: str, bucket: str, key: str) -> tuple[ObjectInfo, Iterator[bytes]]:
        return self.inner.open(tenant_id, bucket, key)

    def head(self, tenant_id: str, bucket: str, key: str) -> ObjectInfo:
        return self.inner.head(tenant_id, bucket, key)

    def list_objects(self, tenant_id: str, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        return self.inner.list_objects(tenant_id, bucket, prefix)

    def delete(self, tenant_id: str, bucket: str, key: str) -> bool:
        deleted = self.inner.delete(tenant_id, bucket, key)
        if deleted:
            self._changed(tenant_id, bucket)
        return deleted


def validate_bucket_name(name: str) -> str:
    """S3 bucket naming rules: 3-63 characters, lowercase letters, digits, dots and hyphens."""
    if not BUCKET_NAME.match(name) or ".." in name:
        raise InvalidBucketName(
            f"Invalid bucket name {name!r}: use 3-63 lowercase letters, digits, dots or hyphens.",
            pointer="/bucket_name",
        )
    return name


def validate_key(key: str) -> str:
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise BadRequest(f"Object keys must be 1-{MAX_KEY_BYTES} bytes long.", pointer="/key")
    return key


def _now() -> datetime:
    return datetime.now(UTC)


def _bucket_missing(bucket: str) -> NotFound:
    return NoSuchBucket(f"Bucket {bucket!r} does not exist.", pointer="/bucket_name")


def _object_missing(bucket: str, key: str) -> NotFound:
    return NoSuchKey(f"Object {key!r} does not exist in bucket {bucket!r}.", pointer="/filename")


class LocalObjectStore:
    """Objects under `<root>/<tenant>/<bucket>/`: one metadata file per key that names its data file.

    A write streams into a fresh data file, fsyncs it, then atomically replaces the key's metadata file
    (`os.replace`): that rename is the commit point, so readers see the old object or the new one, whole.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- paths -----------------------------------------------------------------------------------------
    def _tenant_dir(self, tenant_id: str) -> Path:
        return self.root / quote(tenant_id, safe="")

    def _bucket_dir(self, tenant_id: str, bucket: str) -> Path:
        if not BUCKET_NAME.match(bucket):
            raise _bucket_missing(bucket)
        return self._tenant_dir(tenant_id) / bucket

    def _existing_bucket(self, tenant_id: str, bucket: str) -> Path:
        path = self._bucket_dir(tenant_id, bucket)
        if not (path / ".bucket.json").is_file():
            raise _bucket_missing(bucket)
        return path

    @staticmethod
    def _meta_path(bucket_dir: Path, key: str) -> Path:
        return bucket_dir / "meta" / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    # -- buckets ---------------------------------------------------------------------------------------
    def create_bucket(self, tenant_id: str, bucket: str) -> BucketInfo:
        validate_bucket_name(bucket)
        path = self._bucket_dir(tenant_id, bucket)
        (path / "meta").mkdir(parents=True, exist_ok=True)
        (path / "data").mkdir(exist_ok=True)
        info = BucketInfo(bucket, _now())
        try:
            fd = os.open(path / ".bucket.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise BucketAlreadyExists(f"Bucket {bucket!r} already exists.", pointer="/bucket_name") from None
        with os.fdopen(fd, "w") as fh:
            json.dump({"name": bucket, "created_at": info.created_at.isoformat()}, fh)
        return info

    def delete_bucket(self, tenant_id: str, bucket: str) -> None:
        path = self._existing_bucket(tenant_id, bucket)
        if any((path / "meta").glob("*.json")):
            raise BucketNotEmpty(f"Bucket {bucket!r} is not empty.")
        (path / ".bucket.json").unlink()
        shutil.rmtree(path, ignore_errors=True)

    def list_buckets(self, tenant_id: str) -> list[BucketInfo]:
        tenant = self._tenant_dir(tenant_id)
        out = []
        for marker in sorted(tenant.glob("*/.bucket.json")) if tenant.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                raw = json.loads(marker.read_text())
                out.append(BucketInfo(raw["name"], datetime.fromisoformat(raw["created_at"])))
        return out

    def bucket_exists(self, tenant_id: str, bucket: str) -> bool:
        return (
            BUCKET_NAME.match(bucket) is not None
            and (self._bucket_dir(tenant_id, bucket) / ".bucket.json").is_file()
        )

    # -- objects ---------------------------------------------------------------------------------------
    def put_bytes(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        return self.put_stream(
            tenant_id, bucket, key, [data], content_type, headers=headers, metadata=metadata
        )

    def put_stream(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        return self._write(tenant_id, bucket, key, chunks, content_type, headers, metadata, None)

    def put_parts(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        parts: list[Path],
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        digests: list[bytes] = []

        def chunks() -> Iterator[bytes]:
            for part in parts:
                md5 = hashlib.md5(usedforsecurity=False)
                for block in _iter_file(part.open("rb")):
                    md5.update(block)
                    yield block
                digests.append(md5.digest())

        return self._write(
            tenant_id, bucket, key, chunks(), content_type, headers, metadata, lambda: multipart_etag(digests)
        )

    def _write(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        content_type: str | None,
        headers: Headers | None,
        metadata: Headers | None,
        etag: Callable[[], str] | None,
    ) -> ObjectInfo:
        """Stream `chunks` into a fresh data file and commit it; `etag` overrides the MD5 of the bytes."""
        validate_key(key)
        path = self._existing_bucket(tenant_id, bucket)
        data_name = uuid.uuid4().hex
        data_path = path / "data" / data_name
        md5, size = hashlib.md5(usedforsecurity=False), 0
        try:
            with open(data_path, "xb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    md5.update(chunk)
                    size += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            info = ObjectInfo(
                key,
                size,
                etag() if etag else md5.hexdigest(),
                _now(),
                content_type or "application/octet-stream",
                dict(headers or {}),
                dict(metadata or {}),
            )
            self._commit(path, info, data_name)
        except BaseException:
            data_path.unlink(missing_ok=True)
            raise
        return info

    def _commit(self, bucket_dir: Path, info: ObjectInfo, data_name: str) -> None:
        meta = self._meta_path(bucket_dir, info.key)
        previous = self._read_meta(meta)
        record = {
            "key": info.key,
            "size": info.size,
            "etag": info.etag,
            "last_modified": info.last_modified.isoformat(),
            "content_type": info.content_type,
            "headers": info.headers,
            "metadata": info.metadata,
            "data": data_name,
        }
        fd, tmp = tempfile.mkstemp(dir=meta.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, meta)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if previous is not None and previous["data"] != data_name:
            (bucket_dir / "data" / previous["data"]).unlink(missing_ok=True)

    @staticmethod
    def _read_meta(meta: Path) -> dict[str, Any] | None:
        try:
            return json.loads(meta.read_text())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    @staticmethod
    def _info(record: dict[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            record["key"],
            record["size"],
            record["etag"],
            datetime.fromisoformat(record["last_modified"]),
            record.get("content_type") or "application/octet-stream",
            record.get("headers") or {},
            record.get("metadata") or {},
        )

    def head(self, tenant_id: str, bucket: str, key: str) -> ObjectInfo:
        path = self._existing_bucket(tenant_id, bucket)
        record = self._read_meta(self._meta_path(path, key))
        if record is None:
            raise _object_missing(bucket, key)
        return self._info(record)

    def open(self, tenant_id: str, bucket: str, key: str) -> tuple[ObjectInfo, Iterator[bytes]]:
        path = self._existing_bucket(tenant_id, bucket)
        for _ in range(5):  # a concurrent overwrite may remove the data file we were about to open
            record = self._read_meta(self._meta_path(path, key))
            if record is None:
                raise _object_missing(bucket, key)
            try:
                fh = open(path / "data" / record["data"], "rb")  # noqa: SIM115 - closed by the iterator
            except FileNotFoundError:
                continue
            return self._info(record), _iter_file(fh)
        raise _object_missing(bucket, key)

    def get_bytes(self, tenant_id: str, bucket: str, key: str) -> bytes:
        _, chunks = self.open(tenant_id, bucket, key)
        return b"".join(chunks)

    def list_objects(self, tenant_id: str, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        path = self._existing_bucket(tenant_id, bucket)
        out = []
        for meta in (path / "meta").glob("*.json"):
            record = self._read_meta(meta)
            if record is not None and record["key"].startswith(prefix):
                out.append(self._info(record))
        return sorted(out, key=lambda o: o.key)

    def delete(self, tenant_id: str, bucket: str, key: str) -> bool:
        path = self._existing_bucket(tenant_id, bucket)
        meta = self._meta_path(path, key)
        record = self._read_meta(meta)
        if record is None:
            return False
        meta.unlink(missing_ok=True)
        (path / "data" / record["data"]).unlink(missing_ok=True)
        return True


def _iter_file(fh: Any, block: int = 1 << 20) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(block):
            yield chunk


class S3ObjectStore:
    """Objects in one bucket of any S3-compatible service, under `<tenant>/<bucket>/<key>`.

    Tenant buckets are prefixes of the service bucket (`INFERLINE_S3_BUCKET`); a bucket exists when its
    marker object `<tenant>/<bucket>/.inferline-bucket` does. The service makes each put atomic.
    """

    MARKER = ".inferline-bucket"

    def __init__(
        self,
        endpoint_url: str,
        *,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        region: str = "us-east-1",
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )
        self._ready = False

    def _ensure_bucket(self) -> None:
        if self._ready:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            with contextlib.suppress(ClientError):
                self.client.create_bucket(Bucket=self.bucket)
        self._ready = True

    @staticmethod
    def _prefix(tenant_id: str, bucket: str) -> str:
        return f"{quote(tenant_id, safe='')}/{bucket}/"

    def _missing(self, exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        return code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket")

    def _require_bucket(self, tenant_id: str, bucket: str) -> None:
        if not self.bucket_exists(tenant_id, bucket):
            raise _bucket_missing(bucket)

    def create_bucket(self, tenant_id: str, bucket: str) -> BucketInfo:
        validate_bucket_name(bucket)
        if self.bucket_exists(tenant_id, bucket):
            raise BucketAlreadyExists(f"Bucket {bucket!r} already exists.", pointer="/bucket_name")
        now = _now()
        body = json.dumps({"name": bucket, "created_at": now.isoformat()}).encode()
        marker = self._prefix(tenant_id, bucket) + self.MARKER
        self.client.put_object(Bucket=self.bucket, Key=marker, Body=body)
        return BucketInfo(bucket, now)

    def delete_bucket(self, tenant_id: str, bucket: str) -> None:
        self._require_bucket(tenant_id, bucket)
        if self.list_objects(tenant_id, bucket):
            raise BucketNotEmpty(f"Bucket {bucket!r} is not empty.")
        self.client.delete_object(Bucket=self.bucket, Key=self._prefix(tenant_id, bucket) + self.MARKER)

    def list_buckets(self, tenant_id: str) -> list[BucketInfo]:
        self._ensure_bucket()
        tenant = quote(tenant_id, safe="") + "/"
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=tenant, Delimiter="/"
        ):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(tenant) :].rstrip("/")
                try:
                    raw = self.client.get_object(Bucket=self.bucket, Key=common["Prefix"] + self.MARKER)
                except Exception as exc:
                    if self._missing(exc):
                        continue
                    raise
                created = json.loads(raw["Body"].read())["created_at"]
                out.append(BucketInfo(name, datetime.fromisoformat(created)))
        return sorted(out, key=lambda b: b.name)

    def bucket_exists(self, tenant_id: str, bucket: str) -> bool:
        if not BUCKET_NAME.match(bucket):
            return False
        self._ensure_bucket()
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._prefix(tenant_id, bucket) + self.MARKER)
        except Exception as exc:
            if self._missing(exc):
                return False
            raise
        return True

    @staticmethod
    def _write_args(
        content_type: str | None, headers: Headers | None, metadata: Headers | None
    ) -> dict[str, Any]:
        """boto3 arguments that store the content type, the `STORED_HEADERS` and the user metadata.

        An `Expires` that is not an HTTP date cannot be passed through boto3 and is not kept.
        """
        args: dict[str, Any] = {"ContentType": content_type or "application/octet-stream"}
        for name, value in (headers or {}).items():
            if name == "Expires":
                with contextlib.suppress(TypeError, ValueError):
                    args["Expires"] = parsedate_to_datetime(value)
            elif name in STORED_HEADERS:
                args[name.replace("-", "")] = value
        if metadata:
            args["Metadata"] = dict(metadata)
        return args

    @staticmethod
    def _info(key: str, raw: dict[str, Any]) -> ObjectInfo:
        """The `ObjectInfo` of a head_object/get_object answer."""
        headers = {name: raw.get(name.replace("-", "")) for name in STORED_HEADERS}
        if isinstance(headers["Expires"], datetime):  # botocore parses it; ExpiresString is the raw header
            headers["Expires"] = raw.get("ExpiresString") or format_datetime(headers["Expires"], usegmt=True)
        return ObjectInfo(
            key,
            raw["ContentLength"],
            raw["ETag"].strip('"'),
            raw["LastModified"],
            raw.get("ContentType") or "application/octet-stream",
            {name: str(value) for name, value in headers.items() if value},
            dict(raw.get("Metadata") or {}),
        )

    def put_bytes(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        validate_key(key)
        self._require_bucket(tenant_id, bucket)
        args = self._write_args(content_type, headers, metadata)
        self.client.put_object(
            Bucket=self.bucket, Key=self._prefix(tenant_id, bucket) + key, Body=data, **args
        )
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return ObjectInfo(
            key, len(data), etag, _now(), args["ContentType"], dict(headers or {}), dict(metadata or {})
        )

    def put_stream(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            for chunk in chunks:
                spool.write(chunk)
            spool.seek(0)
            return self.put_bytes(
                tenant_id, bucket, key, spool.read(), content_type, headers=headers, metadata=metadata
            )

    def put_parts(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        parts: list[Path],
        content_type: str | None = None,
        *,
        headers: Headers | None = None,
        metadata: Headers | None = None,
    ) -> ObjectInfo:
        """A multipart upload on the service with the same parts, so its ETag is the same `-N` ETag."""
        validate_key(key)
        self._require_bucket(tenant_id, bucket)
        args = self._write_args(content_type, headers, metadata)
        target = {"Bucket": self.bucket, "Key": self._prefix(tenant_id, bucket) + key}
        upload_id = self.client.create_multipart_upload(**target, **args)["UploadId"]
        try:
            listed = []
            for number, part in enumerate(parts, start=1):
                with part.open("rb") as fh:
                    answer = self.client.upload_part(**target, UploadId=upload_id, PartNumber=number, Body=fh)
                listed.append({"PartNumber": number, "ETag": answer["ETag"]})
            done = self.client.complete_multipart_upload(
                **target, UploadId=upload_id, MultipartUpload={"Parts": listed}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(**target, UploadId=upload_id)
            raise
        size = sum(part.stat().st_size for part in parts)
        return ObjectInfo(
            key,
            size,
            done["ETag"].strip('"'),
            _now(),
            args["ContentType"],
            dict(headers or {}),
            dict(metadata or {}),
        )

    def head(self, tenant_id: str, bucket: str, key: str) -> ObjectInfo:
        self._require_bucket(tenant_id, bucket)
        try:
            raw = self.client.head_object(Bucket=self.bucket, Key=self._prefix(tenant_id, bucket) + key)
        except Exception as exc:
            if self._missing(exc):
                raise _object_missing(bucket, key) from None
            raise
        return self._info(key, raw)

    def open(self, tenant_id: str, bucket: str, key: str) -> tuple[ObjectInfo, Iterator[bytes]]:
        self._require_bucket(tenant_id, bucket)
        try:
            raw = self.client.get_object(Bucket=self.bucket, Key=self._prefix(tenant_id, bucket) + key)
        except Exception as exc:
            if self._missing(exc):
                raise _object_missing(bucket, key) from None
            raise
        return self._info(key, raw), raw["Body"].iter_chunks(1 << 20)

    def get_bytes(self, tenant_id: str, bucket: str, key: str) -> bytes:
        _, chunks = self.open(tenant_id, bucket, key)
        return b"".join(chunks)

    def list_objects(self, tenant_id: str, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        self._require_bucket(tenant_id, bucket)
        root = self._prefix(tenant_id, bucket)
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=root + prefix
        ):
            for item in page.get("Contents", []):
                key = item["Key"][len(root) :]
                if key == self.MARKER:
                    continue
                out.append(ObjectInfo(key, item["Size"], item["ETag"].strip('"'), item["LastModified"]))
        return sorted(out, key=lambda o: o.key)

    def delete(self, tenant_id: str, bucket: str, key: str) -> bool:
        self._require_bucket(tenant_id, bucket)
        try:
            self.head(tenant_id, bucket, key)
        except NotFound:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self._prefix(tenant_id, bucket) + key)
        return True
