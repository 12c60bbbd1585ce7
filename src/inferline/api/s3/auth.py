"""Authentication of S3 requests: body (aws-chunked decoded), payload hash, SigV4 signature, API key."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from inferline.api.deps import ContainerDep
from inferline.api.s3 import sigv4
from inferline.api.s3.errors import S3Error
from inferline.services.buckets import BucketService


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
