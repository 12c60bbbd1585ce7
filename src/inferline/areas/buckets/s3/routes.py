"""The S3 endpoint: path-style `/s3/{bucket}/{key}`, SigV4-authenticated, S3 XML errors.

Supported: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation, ListObjects(V2), PutObject,
CopyObject (metadata directive COPY/REPLACE), GetObject (single byte range), HeadObject, DeleteObject,
DeleteObjects, multipart uploads (with ListParts and ListMultipartUploads); user metadata and the standard
headers (Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires) stay with objects.
boto3: `boto3.client("s3", endpoint_url="http://host:8000/s3", aws_access_key_id=S3_ACCESS_KEY_ID,
aws_secret_access_key=S3_SECRET, region_name="us-east-1")` with the API key's S3 credentials (never the key).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from inferline.areas.buckets.s3 import operations
from inferline.areas.buckets.s3.auth import S3Dep
from inferline.areas.buckets.s3.errors import S3Route

METHODS = ["GET", "PUT", "HEAD", "DELETE", "POST"]
router = APIRouter(prefix="/s3", route_class=S3Route, include_in_schema=False)


@router.get("")
@router.get("/")
def list_buckets(call: S3Dep) -> Response:
    return operations.list_buckets(call)


@router.api_route("/{bucket}", methods=METHODS)
@router.api_route("/{bucket}/", methods=METHODS)
def bucket_operation(bucket: str, request: Request, call: S3Dep) -> Response:
    return operations.on_bucket(request.method, bucket, call)


@router.api_route("/{bucket}/{key:path}", methods=METHODS)
def object_operation(bucket: str, key: str, request: Request, call: S3Dep) -> Response:
    return operations.on_object(request.method, bucket, key, call)
