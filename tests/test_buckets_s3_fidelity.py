"""S3 fidelity through boto3: stored headers and user metadata, CopyObject's metadata directive, ListParts,
ListMultipartUploads, multipart part-size and ordering rules, multipart `-N` ETags; on both object stores."""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.config import Config

from inferline.keys import s3_credentials
from inferline.stores.objects import LocalObjectStore, ObjectStore, S3ObjectStore, multipart_etag
from tests.conftest import LiveServer, s3_auth
from tests.test_buckets_s3 import MIB5, error_code, s3_client

EXPIRES = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
EXPIRES_HTTP = "Wed, 02 Jan 2030 03:04:05 GMT"


@pytest.fixture(scope="module")
def s3(server: LiveServer) -> BaseClient:
    return s3_client(server, server.key_a)


@pytest.fixture(scope="module")
def s3_b(server: LiveServer) -> BaseClient:
    return s3_client(server, server.key_b)


def s3_etag(*parts: bytes) -> str:
    """The ETag S3 gives an object uploaded in these parts."""
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def assert_written_with(answer: dict[str, object]) -> None:
    assert answer["Metadata"] == {"owner": "alice", "project-id": "42"}
    assert answer["CacheControl"] == "max-age=3600"
    assert answer["ContentDisposition"] == 'attachment; filename="report.txt"'
    assert answer["ContentEncoding"] == "gzip"
    assert answer["ContentLanguage"] == "fr"
    assert answer["ExpiresString"] == EXPIRES_HTTP


WRITTEN_WITH = {
    "Metadata": {"Owner": "alice", "project-id": "42"},
    "CacheControl": "max-age=3600",
    "ContentDisposition": 'attachment; filename="report.txt"',
    "ContentEncoding": "gzip",
    "ContentLanguage": "fr",
    "Expires": EXPIRES,
}


def test_headers_and_user_metadata_are_kept(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="meta")
    body = gzip.compress(b"quarterly numbers\n" * 50)
    s3.put_object(Bucket="meta", Key="report.txt", Body=body, ContentType="text/plain", **WRITTEN_WITH)
    got = s3.get_object(Bucket="meta", Key="report.txt")
    assert got["Body"].read() == body and got["ContentType"] == "text/plain"
    assert_written_with(got)
    head = s3.head_object(Bucket="meta", Key="report.txt")
    assert_written_with(head)
    ranged = s3.get_object(Bucket="meta", Key="report.txt", Range="bytes=0-3")
    assert ranged["Metadata"] == {"owner": "alice", "project-id": "42"} and ranged["ContentLanguage"] == "fr"
    s3.put_object(Bucket="meta", Key="report.txt", Body=b"plain")  # an overwrite keeps nothing of the old
    plain = s3.head_object(Bucket="meta", Key="report.txt")
    assert plain["Metadata"] == {} and "CacheControl" not in plain and "ContentEncoding" not in plain
    too_big = {"big": "x" * 2100}
    assert (
        error_code(lambda: s3.put_object(Bucket="meta", Key="big.txt", Body=b"x", Metadata=too_big))
        == "MetadataTooLarge"
    )


def test_copy_keeps_or_replaces_metadata(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="copy-meta")
    s3.put_object(Bucket="copy-meta", Key="src", Body=b"data", ContentType="text/csv", **WRITTEN_WITH)
    source = {"Bucket": "copy-meta", "Key": "src"}
    s3.copy_object(Bucket="copy-meta", Key="kept", CopySource=source)  # MetadataDirective COPY by default
    kept = s3.head_object(Bucket="copy-meta", Key="kept")
    assert kept["ContentType"] == "text/csv"
    assert_written_with(kept)
    s3.copy_object(
        Bucket="copy-meta",
        Key="replaced",
        CopySource=source,
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"stage": "final"},
    )
    replaced = s3.head_object(Bucket="copy-meta", Key="replaced")
    assert replaced["ContentType"] == "application/json" and replaced["Metadata"] == {"stage": "final"}
    assert "CacheControl" not in replaced and "ContentEncoding" not in replaced
    assert s3.get_object(Bucket="copy-meta", Key="replaced")["Body"].read() == b"data"
    # Onto itself: only with REPLACE (S3's rule), which is how metadata is edited in place.
    in_place = {"Bucket": "copy-meta", "Key": "src", "CopySource": source}
    assert error_code(lambda: s3.copy_object(**in_place)) == "InvalidRequest"
    s3.copy_object(**in_place, MetadataDirective="REPLACE", Metadata={"v": "2"}, ContentType="text/csv")
    edited = s3.get_object(Bucket="copy-meta", Key="src")
    assert edited["Metadata"] == {"v": "2"} and edited["Body"].read() == b"data"
    bad = {"Bucket": "copy-meta", "Key": "x", "CopySource": source, "MetadataDirective": "MERGE"}
    assert error_code(lambda: s3.copy_object(**bad)) == "InvalidArgument"


def upload_parts(s3: BaseClient, bucket: str, key: str, upload_id: str, chunks: list[bytes]) -> list[dict]:
    """Upload `chunks` as parts 1..N; the Parts list that completes them."""
    return [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=c)["ETag"],
        }
        for n, c in enumerate(chunks, start=1)
    ]


def test_multipart_etag_and_metadata(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="mp-etag")
    key = "assembled.bin"
    uid = s3.create_multipart_upload(
        Bucket="mp-etag", Key=key, ContentType="application/x-tar", **WRITTEN_WITH
    )["UploadId"]
    chunks = [b"\x01" * MIB5, b"\x02" * 1234]
    parts = upload_parts(s3, "mp-etag", key, uid, chunks)
    done = s3.complete_multipart_upload(
        Bucket="mp-etag", Key=key, UploadId=uid, MultipartUpload={"Parts": parts}
    )
    expected = s3_etag(*chunks)
    assert done["ETag"] == expected
    head = s3.head_object(Bucket="mp-etag", Key=key)
    assert head["ETag"] == expected and head["ContentType"] == "application/x-tar"
    assert head["ContentLength"] == sum(len(c) for c in chunks)
    assert_written_with(head)
    got = s3.get_object(Bucket="mp-etag", Key=key)
    assert got["ETag"] == expected and got["Body"].read() == b"".join(chunks)
    assert [o["ETag"] for o in s3.list_objects_v2(Bucket="mp-etag")["Contents"]] == [expected]
    # A copy is one new object: a plain MD5 ETag, the metadata kept.
    s3.copy_object(Bucket="mp-etag", Key="copy.bin", CopySource={"Bucket": "mp-etag", "Key": key})
    copied = s3.head_object(Bucket="mp-etag", Key="copy.bin")
    assert copied["ETag"] == f'"{hashlib.md5(b"".join(chunks)).hexdigest()}"'
    assert_written_with(copied)


def test_multipart_completion_rules(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="mp-rules")
    uid = s3.create_multipart_upload(Bucket="mp-rules", Key="k.bin")["UploadId"]
    parts = upload_parts(s3, "mp-rules", "k.bin", uid, [b"x" * 100, b"y" * 100])
    attempt = {"Bucket": "mp-rules", "Key": "k.bin", "UploadId": uid}

    def complete(listed: list[dict]) -> str:
        return error_code(lambda: s3.complete_multipart_upload(**attempt, MultipartUpload={"Parts": listed}))

    assert complete(parts[::-1]) == "InvalidPartOrder"
    assert complete([parts[0], parts[0]]) == "InvalidPartOrder"
    assert complete([*parts, {"PartNumber": 3, "ETag": parts[0]["ETag"]}]) == "InvalidPart"
    assert complete([parts[0], {"PartNumber": 2, "ETag": parts[0]["ETag"]}]) == "InvalidPart"
    # A part under 5 MiB that is not the last: EntityTooSmall, and the upload stays open (as in S3).
    assert complete(parts) == "EntityTooSmall"
    assert error_code(lambda: s3.head_object(Bucket="mp-rules", Key="k.bin")) == "404"
    assert len(s3.list_parts(**attempt)["Parts"]) == 2
    s3.complete_multipart_upload(
        **attempt, MultipartUpload={"Parts": parts[:1]}
    )  # the last part may be small
    single = s3.head_object(Bucket="mp-rules", Key="k.bin")
    assert single["ETag"] == s3_etag(b"x" * 100) and single["ContentLength"] == 100
    assert error_code(lambda: s3.list_parts(**attempt)) == "NoSuchUpload"


def test_list_parts_and_multipart_uploads(s3: BaseClient, s3_b: BaseClient) -> None:
    s3.create_bucket(Bucket="mp-list")
    uid = s3.create_multipart_upload(Bucket="mp-list", Key="doc.bin")["UploadId"]
    sent = {n: bytes([n]) * (10 * n) for n in (1, 2, 3, 5)}
    for n, body in sent.items():
        s3.upload_part(Bucket="mp-list", Key="doc.bin", UploadId=uid, PartNumber=n, Body=body)
    s3.upload_part(
        Bucket="mp-list", Key="doc.bin", UploadId=uid, PartNumber=2, Body=b"again"
    )  # replaces part 2
    sent[2] = b"again"
    upload = {"Bucket": "mp-list", "Key": "doc.bin", "UploadId": uid}
    first = s3.list_parts(**upload, MaxParts=2)
    assert [p["PartNumber"] for p in first["Parts"]] == [1, 2]
    assert first["IsTruncated"] and first["NextPartNumberMarker"] == 2 and first["MaxParts"] == 2
    rest = s3.list_parts(**upload, PartNumberMarker=2)
    assert [p["PartNumber"] for p in rest["Parts"]] == [3, 5] and not rest["IsTruncated"]
    listed = [
        p
        for page in s3.get_paginator("list_parts").paginate(**upload, PaginationConfig={"PageSize": 1})
        for p in page["Parts"]
    ]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [
        (n, len(body), f'"{hashlib.md5(body).hexdigest()}"') for n, body in sorted(sent.items())
    ]
    assert (
        error_code(lambda: s3.list_parts(Bucket="mp-list", Key="doc.bin", UploadId="f" * 32))
        == "NoSuchUpload"
    )
    assert (
        error_code(lambda: s3.list_parts(Bucket="mp-list", Key="other.bin", UploadId=uid)) == "NoSuchUpload"
    )

    ids = {"doc.bin": [uid]}
    for key in ["a.txt", "a.txt", "logs/1.txt", "logs/2.txt", "z.txt"]:
        ids.setdefault(key, []).append(s3.create_multipart_upload(Bucket="mp-list", Key=key)["UploadId"])
    everything = [(key, upload_id) for key in sorted(ids) for upload_id in ids[key]]
    page = s3.list_multipart_uploads(Bucket="mp-list")
    assert [(u["Key"], u["UploadId"]) for u in page["Uploads"]] == everything and not page["IsTruncated"]
    paged = [
        (u["Key"], u["UploadId"])
        for page in s3.get_paginator("list_multipart_uploads").paginate(
            Bucket="mp-list", PaginationConfig={"PageSize": 2}
        )
        for u in page.get("Uploads", [])
    ]
    assert paged == everything
    first_two = s3.list_multipart_uploads(Bucket="mp-list", MaxUploads=2)
    assert first_two["IsTruncated"] and first_two["NextKeyMarker"] == "a.txt"
    assert first_two["NextUploadIdMarker"] == ids["a.txt"][1]
    logs = s3.list_multipart_uploads(Bucket="mp-list", Prefix="logs/")
    assert [u["Key"] for u in logs["Uploads"]] == ["logs/1.txt", "logs/2.txt"]
    rolled = s3.list_multipart_uploads(Bucket="mp-list", Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["logs/"]
    assert "logs/1.txt" not in [u["Key"] for u in rolled["Uploads"]]
    s3.abort_multipart_upload(Bucket="mp-list", Key="z.txt", UploadId=ids["z.txt"][0])
    assert "z.txt" not in [u["Key"] for u in s3.list_multipart_uploads(Bucket="mp-list")["Uploads"]]

    # Tenant B: its own bucket of the same name has no uploads, and A's upload ids mean nothing to it.
    s3_b.create_bucket(Bucket="mp-list")
    assert s3_b.list_multipart_uploads(Bucket="mp-list").get("Uploads", []) == []
    assert error_code(lambda: s3_b.list_parts(**upload)) == "NoSuchUpload"
    assert error_code(lambda: s3_b.list_multipart_uploads(Bucket="mp-missing")) == "NoSuchBucket"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, server: LiveServer) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    access_key, secret = s3_credentials(server.key_a)
    backing = f"backing-{time.monotonic_ns()}"
    return S3ObjectStore(server.url + "/s3", bucket=backing, access_key=access_key, secret_key=secret)


def test_object_stores_keep_headers_metadata_and_multipart_etags(store: ObjectStore, tmp_path: Path) -> None:
    store.create_bucket("t1", "docs")
    headers = {"Cache-Control": "no-cache", "Content-Language": "de", "Expires": EXPIRES_HTTP}
    store.put_bytes("t1", "docs", "a.txt", b"alpha", "text/plain", headers=headers, metadata={"k": "v"})
    head = store.head("t1", "docs", "a.txt")
    assert (head.content_type, head.headers, head.metadata) == ("text/plain", headers, {"k": "v"})
    opened, chunks = store.open("t1", "docs", "a.txt")
    assert (opened.headers, opened.metadata, b"".join(chunks)) == (headers, {"k": "v"}, b"alpha")
    first, last = tmp_path / "1.part", tmp_path / "2.part"
    first.write_bytes(b"p" * MIB5)
    last.write_bytes(b"q" * 7)
    info = store.put_parts("t1", "docs", "big.bin", [first, last], metadata={"parts": "2"})
    etag = multipart_etag([hashlib.md5(b"p" * MIB5).digest(), hashlib.md5(b"q" * 7).digest()])
    assert info.etag == etag and info.size == MIB5 + 7 and etag.endswith("-2")
    big = store.head("t1", "docs", "big.bin")
    assert (big.etag, big.size, big.metadata) == (etag, MIB5 + 7, {"parts": "2"})
    assert {o.key: o.etag for o in store.list_objects("t1", "docs")}["big.bin"] == etag
    assert store.get_bytes("t1", "docs", "big.bin") == b"p" * MIB5 + b"q" * 7


def test_bad_paging_parameters_are_invalid_argument(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="mp-bad")
    uid = s3.create_multipart_upload(Bucket="mp-bad", Key="k")["UploadId"]

    def with_query(extra: str) -> Callable[..., None]:
        def hook(request: AWSRequest, **_: object) -> None:
            request.url += "&" + extra  # after boto3's own validation, before signing

        return hook

    for operation, call, extra in [
        ("ListParts", lambda: s3.list_parts(Bucket="mp-bad", Key="k", UploadId=uid), "max-parts=many"),
        ("ListParts", lambda: s3.list_parts(Bucket="mp-bad", Key="k", UploadId=uid), "part-number-marker=x"),
        ("ListMultipartUploads", lambda: s3.list_multipart_uploads(Bucket="mp-bad"), "max-uploads=1.5"),
    ]:
        hook = with_query(extra)
        s3.meta.events.register(f"before-sign.s3.{operation}", hook)
        try:
            assert error_code(call) == "InvalidArgument"
        finally:
            s3.meta.events.unregister(f"before-sign.s3.{operation}", hook)
    assert error_code(lambda: s3.list_parts(Bucket="mp-bad", Key="k", UploadId="not-an-id")) == "NoSuchUpload"


def test_s3_body_over_its_limit_is_entity_too_large(server: LiveServer) -> None:
    """S3 bodies are held in memory: over `s3_max_body_bytes` the answer is S3's EntityTooLarge, no upload."""
    limit = server.container.settings.s3_max_body_bytes
    body = b"x" * (limit + 1)
    # One attempt per call, so a stalled connection is an error, not a retry on a new one.
    s3 = boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30),
        **s3_auth(server.key_a),
    )
    s3.create_bucket(Bucket="too-large")
    assert error_code(lambda: s3.put_object(Bucket="too-large", Key="big.bin", Body=body)) == "EntityTooLarge"
    # botocore sent `Expect: 100-continue` and, refused first, never the body; the server closed that
    # connection, so the next call (a new connection) is not read as the body it waited for.
    assert s3.list_objects_v2(Bucket="too-large").get("KeyCount", 0) == 0
