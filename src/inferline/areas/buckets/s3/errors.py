"""S3 error answers: domain errors mapped to S3 codes, rendered as `<Error>` XML by the route class."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from inferline.areas.buckets.objects import (
    EntityTooSmall,
    InvalidCopy,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
)
from inferline.areas.buckets.s3 import sigv4, xml
from inferline.errors import AuthenticationFailed, BadRequest, InferlineError, NotFound, PayloadTooLarge
from inferline.ops.storage import StorageQuotaExceeded
from inferline.stores.objects import (
    BucketAlreadyExists,
    BucketNotEmpty,
    InvalidBucketName,
    NoSuchBucket,
    NoSuchKey,
)

log = logging.getLogger("inferline.s3")
XML = "application/xml"


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
    (InvalidPartOrder, 400, "InvalidPartOrder"),
    (EntityTooSmall, 400, "EntityTooSmall"),
    (InvalidCopy, 400, "InvalidRequest"),
    (AuthenticationFailed, 403, "InvalidAccessKeyId"),
    (StorageQuotaExceeded, 403, "QuotaExceeded"),  # as Ceph RGW; MinIO: 400 XMinioAdminBucketQuotaExceeded
    (PayloadTooLarge, 400, "EntityTooLarge"),
    (NotFound, 404, "NoSuchKey"),
    (BadRequest, 400, "InvalidRequest"),
]


def to_s3_error(exc: Exception) -> S3Error:
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, sigv4.SignatureError):
        return S3Error(exc.status, exc.code, str(exc))
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
