"""Authentication of S3 requests: SigV4 signature with the key's S3 secret, body (aws-chunked decoded and
verified), payload hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from inferline.areas.buckets.ingest import ACTING_KEY
from inferline.areas.buckets.objects import BucketService
from inferline.areas.buckets.s3 import sigv4
from inferline.areas.buckets.s3.errors import S3Error
from inferline.web.deps import ContainerDep


@dataclass
class S3Call:
    """An authenticated S3 request: its tenant, its (decoded) body and query parameters."""

    tenant_id: str
    body: bytes
    query: dict[str, str]
    headers: dict[str, str]
    buckets: BucketService


async def s3_call(request: Request, container: ContainerDep) -> S3Call:
    """Authenticate the S3 access key id, check the SigV4 signature and the payload (hash or chunks)."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    signed = sigv4.SignedRequest(
        request.method, request.scope.get("raw_path", b"").decode("latin-1"), request.url.query, headers
    )
    creds = sigv4.parse(signed)
    principal, secret = container.keys.authenticate_s3(creds.access_key)
    sigv4.verify(signed, creds, secret=secret)
    ACTING_KEY.set(principal.key_id)  # the request's own context: an auto-sync its writes start is this key's
    if principal.scope == "read" and request.method not in ("GET", "HEAD"):
        raise S3Error(403, "AccessDenied", "This API key has the 'read' scope: it may only read objects.")
    body = await request.body()
    if creds.payload_hash.startswith("STREAMING-"):
        body = sigv4.decode_chunked(body, creds, secret, headers)
    elif creds.payload_hash != sigv4.UNSIGNED and hashlib.sha256(body).hexdigest() != creds.payload_hash:
        raise S3Error(400, "XAmzContentSHA256Mismatch", "The provided x-amz-content-sha256 does not match.")
    query = dict(request.query_params)
    return S3Call(principal.tenant_id, body, query, headers, container.buckets)


S3Dep = Annotated[S3Call, Depends(s3_call)]
