"""The S3 endpoint: path-style `/s3/{bucket}/{key}`, SigV4-authenticated, S3 XML errors.

Supported: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation, ListObjects(V2), PutObject,
CopyObject, GetObject (single byte range), HeadObject, DeleteObject, DeleteObjects and multipart uploads.
boto3: `boto3.client("s3", endpoint_url="http://host:8000/s3", aws_access_key_id=KEY,
aws_secret_access_key=KEY, region_name="us-east-1")` with the same inferline API key in both fields.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute

from inferline.api.deps import ContainerDep
from inferline.api.s3 import sigv4, xml
from inferline.errors import AuthenticationFailed, BadRequest, InferlineError, NotFound, PayloadTooLarge
from inferline.services.buckets import BucketService, InvalidPart, NoSuchUpload
from inferline.stores.objects import (
    BucketAlreadyExists,
    BucketNotEmpty,
    InvalidBucketName,
    NoSuchBucket,
    NoSuchKey,
    ObjectInfo,
)

log = logging.getLogger("inferline.s3")
XML = "application/xml"
METHODS = ["GET", "PUT", "HEAD", "DELETE", "POST"]


class S3Error(Exception):
    """An S3 error answered as `<Error><Code>…`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_CODES: list[tuple[type[InferlineError], int, str]] = [
    (NoSuchUpload, 404, "NoSuchUpload"),
    (NoSuchKey, 404, "NoSuchKey"),
    (NoSuchBucket, 404, "NoSuchBucket"),
    (BucketAlreadyExists, 409, "BucketAlreadyOwnedByYou"),
    (BucketNotEmpty, 409, "BucketNotEmpty"),
    (InvalidBucketName, 400, "InvalidBucketName"),
    (InvalidPart, 400, "InvalidPart"),
    (AuthenticationFailed, 403, "InvalidAccessKeyId"),
    (PayloadTooLarge, 400, "EntityTooLarge"),
    (NotFound, 404, "NoSuchKey"),
    (BadRequest, 400, "InvalidRequest"),
]


def to_s3_error(exc: Exception) -> S3Error:
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, sigv4.SignatureError):
        return S3Error(403 if exc.code != "AuthorizationHeaderMalformed" else 400, exc.code, str(exc))
    if isinstance(exc, RequestValidationError):
        return S3Error(400, "InvalidArgument", str(exc.errors()[0].get("msg", "Invalid argument")))
    for kind, status, code in _CODES:
        if isinstance(exc, kind):
            return S3Error(status, code, str(exc))
    log.exception("unexpected S3 endpoint error", exc_info=exc)
    return S3Error(500, "InternalError", "We encountered an internal error. Please try again.")


class S3Route(APIRoute):
    """Answers every failure of its handler (auth, validation, domain errors) in S3's XML error format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except Exception as exc:
                err = to_s3_error(exc)
                request_id = getattr(request.state, "request_id", "")
                body = (
                    b""
                    if request.method == "HEAD"
                    else xml.error(err.code, err.message, request.url.path, request_id)
                )
                return Response(
                    body, status_code=err.status, media_type=XML, headers={"x-amz-request-id": request_id}
                )

        return handler


router = APIRouter(prefix="/s3", route_class=S3Route, include_in_schema=False)


@dataclass
class S3Call:
    """An authenticated S3 request: its tenant, its (decoded) body and query parameters."""

    tenant_id: str
    body: bytes
    query: dict[str, str]
    headers: dict[str, str]
    buckets: BucketService


async def s3_call(request: Request, container: ContainerDep) -> S3Call:
    """Read the body, check the SigV4 signature and payload hash, and authenticate the access key."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    signed = sigv4.SignedRequest(
        request.method, request.scope.get("raw_path", b"").decode(), request.url.query, headers
    )
    creds = sigv4.parse(signed)
    principal = container.keys.authenticate(creds.access_key)
    sigv4.verify(signed, creds, secret=creds.access_key)
    body = await request.body()
    if creds.payload_hash.startswith("STREAMING-"):
        body = _decode_aws_chunked(body)
    elif creds.payload_hash != sigv4.UNSIGNED and hashlib.sha256(body).hexdigest() != creds.payload_hash:
        raise S3Error(400, "XAmzContentSHA256Mismatch", "The provided x-amz-content-sha256 does not match.")
    query = dict(request.query_params)
    return S3Call(principal.tenant_id, body, query, headers, container.buckets)


S3Dep = Annotated[S3Call, Depends(s3_call)]


def _decode_aws_chunked(body: bytes) -> bytes:
    """The payload of an `aws-chunked` body (`<hex size>[;chunk-signature=…]\\r\\n<data>\\r\\n` … `0`)."""
    out, pos = bytearray(), 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise S3Error(400, "IncompleteBody", "Malformed aws-chunked body.")
        size = int(body[pos:end].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(out)
        out += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "ETag": f'"{info.etag}"',
        "Last-Modified": xml.http_date(info.last_modified),
        "Content-Type": info.content_type,
        "Accept-Ranges": "bytes",
    }


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=XML)


# -- service and bucket level -------------------------------------------------------------------------------
@router.get("")
@router.get("/")
def list_buckets(call: S3Dep) -> Response:
    return _xml(xml.list_buckets(call.tenant_id, call.buckets.list_buckets(call.tenant_id)))


@router.api_route("/{bucket}", methods=METHODS)
@router.api_route("/{bucket}/", methods=METHODS)
def bucket_operation(bucket: str, request: Request, call: S3Dep) -> Response:
    operation = _BUCKET_OPS.get((request.method, _bucket_subresource(call.query)))
    if operation is None:
        raise S3Error(
            501, "NotImplemented", f"{request.method} on a bucket with {sorted(call.query)} is not supported."
        )
    return operation(bucket, call)


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
    try:
        max_keys = max(0, min(1000, int(q.get("max-keys", "1000"))))
    except ValueError:
        raise S3Error(400, "InvalidArgument", "max-keys must be an integer.") from None
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
}


# -- object level -------------------------------------------------------------------------------------------
@router.api_route("/{bucket}/{key:path}", methods=METHODS)
def object_operation(bucket: str, key: str, request: Request, call: S3Dep) -> Response:
    if not key:
        return bucket_operation(bucket, request, call)
    q = call.query
    if "uploadId" in q:
        return _multipart(request.method, bucket, key, q["uploadId"], call)
    if request.method == "POST" and "uploads" in q:
        upload_id = call.buckets.create_upload(call.tenant_id, bucket, key, call.headers.get("content-type"))
        return _xml(xml.initiate_upload(bucket, key, upload_id))
    operation = _OBJECT_OPS.get(request.method)
    if operation is None or (set(q) & {"acl", "tagging", "versionId", "retention", "legal-hold"}):
        raise S3Error(501, "NotImplemented", f"{request.method} with {sorted(q)} is not supported.")
    return operation(bucket, key, call)


def _put_object(bucket: str, key: str, call: S3Call) -> Response:
    source = call.headers.get("x-amz-copy-source")
    if source:
        src_bucket, _, src_key = unquote(source).lstrip("/").partition("/")
        info = call.buckets.copy(call.tenant_id, bucket, key, src_bucket, src_key)
        return _xml(xml.copy_result(info.etag, info.last_modified))
    info = call.buckets.put(call.tenant_id, bucket, key, [call.body], call.headers.get("content-type"))
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
        info = buckets.complete_upload(tenant, bucket, key, upload_id, parts)
        return _xml(xml.complete_upload(f"/{bucket}/{key}", bucket, key, info.etag))
    if method == "DELETE":
        buckets.abort_upload(tenant, bucket, key, upload_id)
        return Response(status_code=204)
    raise S3Error(501, "NotImplemented", "ListParts is not supported.")
