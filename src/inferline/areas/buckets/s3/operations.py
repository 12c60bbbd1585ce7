"""The S3 operations, dispatched on method and sub-resource (`?location`, `?delete`, `?uploads`, …)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from fastapi import Response
from fastapi.responses import StreamingResponse

from inferline.areas.buckets.objects import ObjectAttrs
from inferline.areas.buckets.s3 import xml
from inferline.areas.buckets.s3.auth import S3Call
from inferline.areas.buckets.s3.errors import XML, S3Error
from inferline.stores.objects import STORED_HEADERS, ObjectInfo

META_PREFIX = "x-amz-meta-"
MAX_METADATA_BYTES = 2048  # S3's limit on the user metadata of an object (names and values, UTF-8)


def list_buckets(call: S3Call) -> Response:
    return _xml(xml.list_buckets(call.tenant_id, call.buckets.list_buckets(call.tenant_id)))


def on_bucket(method: str, bucket: str, call: S3Call) -> Response:
    operation = _BUCKET_OPS.get((method, _bucket_subresource(call.query)))
    if operation is None:
        raise S3Error(
            501, "NotImplemented", f"{method} on a bucket with {sorted(call.query)} is not supported."
        )
    return operation(bucket, call)


def on_object(method: str, bucket: str, key: str, call: S3Call) -> Response:
    if not key:
        return on_bucket(method, bucket, call)
    q = call.query
    if "uploadId" in q:
        return _multipart(method, bucket, key, q["uploadId"], call)
    if method == "POST" and "uploads" in q:
        attrs = _written_attrs(call)
        upload_id = call.buckets.create_upload(
            call.tenant_id,
            bucket,
            key,
            attrs.content_type,
            headers=attrs.headers,
            metadata=attrs.metadata,
        )
        return _xml(xml.initiate_upload(bucket, key, upload_id))
    operation = _OBJECT_OPS.get(method)
    if operation is None or (set(q) & {"acl", "tagging", "versionId", "retention", "legal-hold"}):
        raise S3Error(501, "NotImplemented", f"{method} with {sorted(q)} is not supported.")
    return operation(bucket, key, call)


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "ETag": f'"{info.etag}"',
        "Last-Modified": xml.http_date(info.last_modified),
        "Content-Type": info.content_type,
        "Accept-Ranges": "bytes",
        **info.headers,
        **{META_PREFIX + name: value for name, value in info.metadata.items()},
    }


def _written_attrs(call: S3Call) -> ObjectAttrs:
    """What a write request says about its object: Content-Type, the `STORED_HEADERS`, `x-amz-meta-*`."""
    headers = {name: call.headers[name.lower()] for name in STORED_HEADERS if name.lower() in call.headers}
    encodings = [e.strip() for e in headers.pop("Content-Encoding", "").split(",")]
    encoding = ",".join(e for e in encodings if e and e.lower() != "aws-chunked")  # transfer-only, as in S3
    if encoding:
        headers["Content-Encoding"] = encoding
    metadata = {
        name[len(META_PREFIX) :]: value
        for name, value in call.headers.items()
        if name.startswith(META_PREFIX)
    }
    if sum(len(name.encode()) + len(value.encode()) for name, value in metadata.items()) > MAX_METADATA_BYTES:
        raise S3Error(
            400,
            "MetadataTooLarge",
            f"Your metadata headers exceed the maximum allowed metadata size ({MAX_METADATA_BYTES} bytes).",
        )
    return ObjectAttrs(call.headers.get("content-type"), headers, metadata)


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=XML)


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter clamped to [low, high]; InvalidArgument when it is not an integer."""
    try:
        return max(low, min(high, int(query.get(name, str(default)))))
    except ValueError:
        raise S3Error(400, "InvalidArgument", f"{name} must be an integer.") from None


def _bucket_subresource(query: dict[str, str]) -> str:
    for name in ("location", "delete", "uploads", "versioning", "acl", "policy", "cors", "tagging"):
        if name in query:
            return name
    return "list-v2" if query.get("list-type") == "2" else ""


def _create_bucket(bucket: str, call: S3Call) -> Response:
    call.buckets.create_bucket(call.tenant_id, bucket)
    return Response(status_code=200, headers={"Location": f"/{bucket}"})


def _head_bucket(bucket: str, call: S3Call) -> Response:
    call.buckets.require_bucket(call.tenant_id, bucket)
    return Response(status_code=200)


def _delete_bucket(bucket: str, call: S3Call) -> Response:
    call.buckets.delete_bucket(call.tenant_id, bucket)
    return Response(status_code=204)


def _location(bucket: str, call: S3Call) -> Response:
    call.buckets.require_bucket(call.tenant_id, bucket)
    return _xml(xml.location())


def _list(bucket: str, call: S3Call, v2: bool) -> Response:
    q = call.query
    max_keys = _int_param(q, "max-keys", 1000, 0, 1000)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    token, start_after = (
        (q.get("continuation-token"), q.get("start-after", "")) if v2 else (None, q.get("marker", ""))
    )
    page = call.buckets.list_page(
        call.tenant_id,
        bucket,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        start_after=start_after,
        token=token,
    )
    body = xml.list_objects(
        bucket,
        page,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        url_encode=q.get("encoding-type") == "url",
        v2=v2,
        token=token,
        start_after=start_after if v2 else "",
        marker=start_after,
    )
    return _xml(body)


def _list_uploads(bucket: str, call: S3Call) -> Response:
    q = call.query
    max_uploads = _int_param(q, "max-uploads", 1000, 0, 1000)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, upload_id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
    page = call.buckets.list_uploads(
        call.tenant_id,
        bucket,
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        upload_id_marker=upload_id_marker if key_marker else "",
        max_uploads=max_uploads,
    )
    body = xml.list_uploads(
        bucket,
        call.tenant_id,
        page,
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        upload_id_marker=upload_id_marker,
        max_uploads=max_uploads,
        url_encode=q.get("encoding-type") == "url",
    )
    return _xml(body)


def _delete_objects(bucket: str, call: S3Call) -> Response:
    try:
        keys, quiet = xml.parse_delete(call.body)
    except ValueError as exc:
        raise S3Error(400, "MalformedXML", str(exc)) from None
    return _xml(xml.delete_result(call.buckets.delete_many(call.tenant_id, bucket, keys), quiet))


_BUCKET_OPS: dict[tuple[str, str], Callable[[str, S3Call], Response]] = {
    ("PUT", ""): _create_bucket,
    ("HEAD", ""): _head_bucket,
    ("DELETE", ""): _delete_bucket,
    ("GET", "location"): _location,
    ("GET", ""): lambda bucket, call: _list(bucket, call, v2=False),
    ("GET", "list-v2"): lambda bucket, call: _list(bucket, call, v2=True),
    ("POST", "delete"): _delete_objects,
    ("GET", "uploads"): _list_uploads,
}


def _put_object(bucket: str, key: str, call: S3Call) -> Response:
    source = call.headers.get("x-amz-copy-source")
    attrs = _written_attrs(call)
    if source:
        directive = call.headers.get("x-amz-metadata-directive", "COPY")
        if directive not in ("COPY", "REPLACE"):
            raise S3Error(400, "InvalidArgument", f"Unknown metadata directive {directive!r}.")
        src_bucket, _, src_key = unquote(source.partition("?")[0]).lstrip("/").partition("/")
        info = call.buckets.copy(
            call.tenant_id,
            bucket,
            key,
            src_bucket,
            src_key,
            replace=attrs if directive == "REPLACE" else None,
        )
        return _xml(xml.copy_result(info.etag, info.last_modified))
    info = call.buckets.put(
        call.tenant_id,
        bucket,
        key,
        [call.body],
        attrs.content_type,
        headers=attrs.headers,
        metadata=attrs.metadata,
        size=len(call.body),
    )
    return Response(status_code=200, headers={"ETag": f'"{info.etag}"'})


def _get_object(bucket: str, key: str, call: S3Call) -> Response:
    info, chunks = call.buckets.open(call.tenant_id, bucket, key)
    headers = _object_headers(info)
    wanted = call.headers.get("range")
    if not wanted:
        headers["Content-Length"] = str(info.size)
        return StreamingResponse(chunks, headers=headers, media_type=info.content_type)
    start, end = _byte_range(wanted, info.size)
    data = b"".join(chunks)[start : end + 1]
    headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    return Response(data, status_code=206, headers=headers, media_type=info.content_type)


def _byte_range(header: str, size: int) -> tuple[int, int]:
    unit, _, spec = header.partition("=")
    first, _, last = spec.partition("-")
    try:
        if unit.strip() != "bytes" or "," in spec:
            raise ValueError
        if not first:
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(size - 1, int(last) if last else size - 1)
    except ValueError:
        raise S3Error(400, "InvalidArgument", "Only a single bytes=start-end range is supported.") from None
    if start > end or start >= size:
        raise S3Error(416, "InvalidRange", "The requested range is not satisfiable.")
    return start, end


def _head_object(bucket: str, key: str, call: S3Call) -> Response:
    info = call.buckets.head(call.tenant_id, bucket, key)
    return Response(status_code=200, headers={**_object_headers(info), "Content-Length": str(info.size)})


def _delete_object(bucket: str, key: str, call: S3Call) -> Response:
    call.buckets.require_bucket(call.tenant_id, bucket)
    call.buckets.delete(call.tenant_id, bucket, key)
    return Response(status_code=204)


_OBJECT_OPS: dict[str, Callable[[str, str, S3Call], Response]] = {
    "PUT": _put_object,
    "GET": _get_object,
    "HEAD": _head_object,
    "DELETE": _delete_object,
}


def _multipart(method: str, bucket: str, key: str, upload_id: str, call: S3Call) -> Response:
    buckets, tenant = call.buckets, call.tenant_id
    if method == "PUT":
        try:
            number = int(call.query.get("partNumber", ""))
        except ValueError:
            raise S3Error(400, "InvalidArgument", "partNumber must be an integer.") from None
        etag = buckets.upload_part(tenant, bucket, key, upload_id, number, call.body)
        return Response(status_code=200, headers={"ETag": f'"{etag}"'})
    if method == "POST":
        try:
            parts = xml.parse_complete(call.body)
        except ValueError as exc:
            raise S3Error(400, "MalformedXML", str(exc)) from None
        if not parts:
            raise S3Error(400, "MalformedXML", "The CompleteMultipartUpload document lists no parts.")
        info = buckets.complete_upload(tenant, bucket, key, upload_id, parts)
        return _xml(xml.complete_upload(f"/{bucket}/{key}", bucket, key, info.etag))
    if method == "DELETE":
        buckets.abort_upload(tenant, bucket, key, upload_id)
        return Response(status_code=204)
    if method == "GET":
        max_parts = _int_param(call.query, "max-parts", 1000, 0, 1000)
        marker = _int_param(call.query, "part-number-marker", 0, 0, 10_000)
        parts_page, truncated = buckets.list_parts(
            tenant, bucket, key, upload_id, max_parts=max_parts, after=marker
        )
        return _xml(
            xml.list_parts(
                bucket,
                key,
                upload_id,
                tenant,
                parts_page,
                marker=marker,
                max_parts=max_parts,
                truncated=truncated,
            )
        )
    raise S3Error(405, "MethodNotAllowed", f"{method} is not allowed on a multipart upload.")
