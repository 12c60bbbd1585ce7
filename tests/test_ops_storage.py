"""Bucket storage quota and metering (issue 18): `storage_bytes` set through the admin limits endpoint refuses
S3 writes past it (403 `QuotaExceeded`, nothing stored is lost, an overwrite counts the difference) and URL
crawls once spent (413 envelope); `bucket_bytes_stored` shows in the admin usage endpoint and `inferline
usage`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from inferline.ops.cli import cmd_usage
from tests.conftest import LiveServer, s3_auth

TENANT = "ops-quota"
QUOTA = 1000


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    _, key = server.container.keys.create("ops-quota-admin", scope="admin")
    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def tenant_key(server: LiveServer) -> str:
    return server.container.keys.create(TENANT)[1]


@pytest.fixture(scope="module")
def s3(server: LiveServer, tenant_key: str) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(tenant_key),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4"),
    )


def _refused(call) -> dict:  # type: ignore[no-untyped-def, type-arg]
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response  # type: ignore[no-any-return]


def _quota_exceeded(call) -> None:  # type: ignore[no-untyped-def]
    response = _refused(call)
    assert response["Error"]["Code"] == "QuotaExceeded", response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert str(QUOTA) in response["Error"]["Message"]


def _body(s3: BaseClient, key: str) -> bytes:
    return s3.get_object(Bucket="quota", Key=key)["Body"].read()  # type: ignore[no-any-return]


def test_quota_refuses_writes_past_it_and_loses_nothing(admin: httpx.Client, s3: BaseClient) -> None:
    s3.create_bucket(Bucket="quota")
    s3.put_object(Bucket="quota", Key="big", Body=b"a" * 700)  # no quota yet
    set_limit = admin.put(f"/admin/tenants/{TENANT}/limits", json={"storage_bytes": QUOTA})
    assert set_limit.status_code == 200 and set_limit.json()["data"]["storage_bytes"] == QUOTA

    _quota_exceeded(lambda: s3.put_object(Bucket="quota", Key="more", Body=b"b" * 400))
    assert _body(s3, "big") == b"a" * 700  # what was stored is intact, the refused object is absent
    assert _refused(lambda: s3.head_object(Bucket="quota", Key="more"))["Error"]["Code"] == "404"

    s3.put_object(Bucket="quota", Key="big", Body=b"c" * 950)  # an overwrite counts the difference: +250
    assert _body(s3, "big") == b"c" * 950
    _quota_exceeded(lambda: s3.put_object(Bucket="quota", Key="big", Body=b"d" * (QUOTA + 1)))
    assert _body(s3, "big") == b"c" * 950
    s3.put_object(Bucket="quota", Key="small", Body=b"e" * 50)  # exactly at the quota
    _quota_exceeded(lambda: s3.put_object(Bucket="quota", Key="one-more", Body=b"f"))
    _quota_exceeded(
        lambda: s3.copy_object(Bucket="quota", Key="copy", CopySource={"Bucket": "quota", "Key": "big"})
    )
    s3.put_object(Bucket="quota", Key="big", Body=b"g" * 10)  # shrinking is always allowed
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="quota")["Contents"]] == ["big", "small"]


def test_quota_covers_multipart_uploads(admin: httpx.Client, s3: BaseClient) -> None:
    for obj in s3.list_objects_v2(Bucket="quota").get("Contents", []):
        s3.delete_object(Bucket="quota", Key=obj["Key"])
    s3.put_object(Bucket="quota", Key="base", Body=b"x" * 600)
    upload = s3.create_multipart_upload(Bucket="quota", Key="parts")["UploadId"]
    _quota_exceeded(
        lambda: s3.upload_part(Bucket="quota", Key="parts", UploadId=upload, PartNumber=1, Body=b"p" * 500)
    )
    etag = s3.upload_part(Bucket="quota", Key="parts", UploadId=upload, PartNumber=1, Body=b"p" * 300)["ETag"]
    s3.put_object(Bucket="quota", Key="filler", Body=b"y" * 300)  # the staged part is not stored yet
    done = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    _quota_exceeded(
        lambda: s3.complete_multipart_upload(
            Bucket="quota", Key="parts", UploadId=upload, MultipartUpload=done
        )
    )
    s3.delete_object(Bucket="quota", Key="filler")  # room again: the upload was kept and completes
    s3.complete_multipart_upload(Bucket="quota", Key="parts", UploadId=upload, MultipartUpload=done)
    assert _body(s3, "parts") == b"p" * 300 and _body(s3, "base") == b"x" * 600


def test_url_crawl_refused_once_the_quota_is_spent(
    server: LiveServer, admin: httpx.Client, s3: BaseClient, tenant_key: str
) -> None:
    s3.delete_object(Bucket="quota", Key="parts")
    s3.put_object(Bucket="quota", Key="base", Body=b"x" * QUOTA)  # the quota is now spent exactly
    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {tenant_key}"}) as http:
        refused = http.post(
            "/ai/embeddings/url", json={"bucket_name": "quota", "url": "https://example.com/"}
        )
    assert refused.status_code == 413, refused.text
    error = refused.json()["errors"][0]
    assert error["code"] == "10015" and error["title"] == "Storage quota exceeded"
    assert str(QUOTA) in error["detail"]


def test_bytes_stored_metered_in_admin_usage_and_cli(
    server: LiveServer, admin: httpx.Client, s3: BaseClient, capsys: pytest.CaptureFixture[str]
) -> None:
    s3.create_bucket(Bucket="quota-two")
    admin.put(f"/admin/tenants/{TENANT}/limits", json={"storage_bytes": None})  # no quota: still metered
    s3.put_object(Bucket="quota-two", Key="k", Body=b"z" * 1234)
    stored = sum(
        o["Size"] for b in ("quota", "quota-two") for o in s3.list_objects_v2(Bucket=b).get("Contents", [])
    )
    rows = admin.get("/admin/usage", params={"tenant_id": TENANT, "by": "day"}).json()["data"]
    bytes_rows = [r for r in rows if r["metric"] == "bucket_bytes_stored"]
    assert len(bytes_rows) == 1 and bytes_rows[0]["quantity"] == stored, rows
    assert bytes_rows[0]["unit"] == "byte-days"

    s3.delete_object(Bucket="quota-two", Key="k")  # a level, not a sum: today's row follows the store
    args = argparse.Namespace(tenant=TENANT, since=None, by="day", json=True)
    assert cmd_usage(server.container.settings, args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["quantity"] for r in printed if r["metric"] == "bucket_bytes_stored"] == [stored - 1234]
