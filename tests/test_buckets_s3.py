"""The S3 endpoint through boto3, unchanged: buckets, objects, listing, ranges, multipart, auth, tenancy."""

from __future__ import annotations

import io
from collections.abc import Callable

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from inferline.keys import s3_credentials
from tests.conftest import LiveServer, s3_auth

MIB5 = 5 * 1024 * 1024  # S3's smallest part (but the last) of a multipart upload


def s3_client(server: LiveServer, key: str, secret: str | None = None) -> BaseClient:
    """boto3 signing with API key `key`'s S3 credentials (or its access key id and another `secret`)."""
    auth = s3_auth(key) | ({"aws_secret_access_key": secret} if secret is not None else {})
    return boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **auth,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4"),
    )


@pytest.fixture(scope="module")
def s3(server: LiveServer) -> BaseClient:
    return s3_client(server, server.key_a)


@pytest.fixture(scope="module")
def s3_b(server: LiveServer) -> BaseClient:
    return s3_client(server, server.key_b)


def error_code(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def test_bucket_lifecycle(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="life-cycle")
    assert "life-cycle" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="life-cycle")
    assert error_code(lambda: s3.create_bucket(Bucket="life-cycle")) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket="life-cycle", Key="a.txt", Body=b"x")
    assert error_code(lambda: s3.delete_bucket(Bucket="life-cycle")) == "BucketNotEmpty"
    s3.delete_object(Bucket="life-cycle", Key="a.txt")
    s3.delete_bucket(Bucket="life-cycle")
    assert error_code(lambda: s3.head_bucket(Bucket="life-cycle")) == "404"
    assert error_code(lambda: s3.create_bucket(Bucket="Bad_Name")) == "InvalidBucketName"


def test_put_get_head_delete_object(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="objects")
    body = "héllo wörld\n".encode() * 100
    put = s3.put_object(Bucket="objects", Key="dir/sub/ü file.txt", Body=body, ContentType="text/plain")
    got = s3.get_object(Bucket="objects", Key="dir/sub/ü file.txt")
    assert got["Body"].read() == body and got["ContentType"] == "text/plain"
    assert got["ETag"] == put["ETag"] and got["ContentLength"] == len(body)
    head = s3.head_object(Bucket="objects", Key="dir/sub/ü file.txt")
    assert head["ContentLength"] == len(body)
    ranged = s3.get_object(Bucket="objects", Key="dir/sub/ü file.txt", Range="bytes=2-9")
    assert ranged["Body"].read() == body[2:10] and ranged["ContentRange"].endswith(f"/{len(body)}")
    s3.put_object(Bucket="objects", Key="dir/sub/ü file.txt", Body=b"v2")  # overwrite is atomic and whole
    assert s3.get_object(Bucket="objects", Key="dir/sub/ü file.txt")["Body"].read() == b"v2"
    s3.delete_object(Bucket="objects", Key="dir/sub/ü file.txt")
    assert error_code(lambda: s3.get_object(Bucket="objects", Key="dir/sub/ü file.txt")) == "NoSuchKey"
    assert error_code(lambda: s3.head_object(Bucket="objects", Key="nope")) == "404"
    assert error_code(lambda: s3.get_object(Bucket="no-such-bucket", Key="k")) == "NoSuchBucket"


def test_list_objects_v2_pagination_and_delimiter(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="listing")
    keys = [f"docs/{i:02d}.txt" for i in range(7)] + ["top.txt", "img/a.png", "img/b.png"]
    for key in keys:
        s3.put_object(Bucket="listing", Key=key, Body=key.encode())
    seen = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket="listing", PaginationConfig={"PageSize": 3}
    ):
        assert page["KeyCount"] <= 3
        seen += [o["Key"] for o in page.get("Contents", [])]
    assert seen == sorted(keys)
    rolled = s3.list_objects_v2(Bucket="listing", Delimiter="/")
    assert [o["Key"] for o in rolled["Contents"]] == ["top.txt"]
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["docs/", "img/"]
    docs = s3.list_objects_v2(Bucket="listing", Prefix="docs/", StartAfter="docs/04.txt")
    assert [o["Key"] for o in docs["Contents"]] == ["docs/05.txt", "docs/06.txt"]
    assert [o["Key"] for o in s3.list_objects(Bucket="listing", Prefix="img/")["Contents"]] == [
        "img/a.png",
        "img/b.png",
    ]
    deleted = s3.delete_objects(
        Bucket="listing", Delete={"Objects": [{"Key": "img/a.png"}, {"Key": "img/b.png"}]}
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["img/a.png", "img/b.png"]
    assert "CommonPrefixes" not in s3.list_objects_v2(Bucket="listing", Prefix="img/", Delimiter="/")


def test_upload_fileobj_download_fileobj_and_copy(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="transfer")
    data = bytes(range(256)) * 1000
    s3.upload_fileobj(io.BytesIO(data), "transfer", "blob.bin")
    out = io.BytesIO()
    s3.download_fileobj("transfer", "blob.bin", out)
    assert out.getvalue() == data
    s3.copy_object(Bucket="transfer", Key="copy.bin", CopySource={"Bucket": "transfer", "Key": "blob.bin"})
    assert s3.get_object(Bucket="transfer", Key="copy.bin")["Body"].read() == data


def test_multipart_upload(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="multipart")
    upload = s3.create_multipart_upload(Bucket="multipart", Key="big.txt", ContentType="text/plain")
    uid = upload["UploadId"]
    parts = []
    chunks = [b"a" * MIB5, b"b" * MIB5, b"c" * 10]  # every part but the last is at least 5 MiB, as in S3
    for n, chunk in enumerate(chunks, start=1):
        etag = s3.upload_part(Bucket="multipart", Key="big.txt", UploadId=uid, PartNumber=n, Body=chunk)[
            "ETag"
        ]
        parts.append({"PartNumber": n, "ETag": etag})
    assert error_code(lambda: s3.get_object(Bucket="multipart", Key="big.txt")) == "NoSuchKey"
    s3.complete_multipart_upload(
        Bucket="multipart", Key="big.txt", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    assert s3.get_object(Bucket="multipart", Key="big.txt")["Body"].read() == b"".join(chunks)
    bad = s3.create_multipart_upload(Bucket="multipart", Key="x")["UploadId"]
    s3.upload_part(Bucket="multipart", Key="x", UploadId=bad, PartNumber=1, Body=b"z")
    wrong = {"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]}
    assert (
        error_code(
            lambda: s3.complete_multipart_upload(
                Bucket="multipart", Key="x", UploadId=bad, MultipartUpload=wrong
            )
        )
        == "InvalidPart"
    )
    s3.abort_multipart_upload(Bucket="multipart", Key="x", UploadId=bad)
    assert (
        error_code(lambda: s3.upload_part(Bucket="multipart", Key="x", UploadId=bad, PartNumber=2, Body=b"z"))
        == "NoSuchUpload"
    )


def test_presigned_get(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="presign")
    s3.put_object(Bucket="presign", Key="p.txt", Body=b"presigned!")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "presign", "Key": "p.txt"}, ExpiresIn=60)
    assert httpx.get(url).content == b"presigned!"
    assert httpx.get(url.replace("Signature=", "Signature=0")).status_code == 403
    put = s3.generate_presigned_url("put_object", Params={"Bucket": "presign", "Key": "up.txt"}, ExpiresIn=60)
    assert httpx.put(put, content=b"uploaded with a presigned URL").status_code == 200
    assert s3.get_object(Bucket="presign", Key="up.txt")["Body"].read() == b"uploaded with a presigned URL"


def test_tenants_are_isolated(s3: BaseClient, s3_b: BaseClient) -> None:
    s3.create_bucket(Bucket="shared-name")
    s3.put_object(Bucket="shared-name", Key="secret.txt", Body=b"tenant a")
    assert "shared-name" not in [b["Name"] for b in s3_b.list_buckets()["Buckets"]]
    assert error_code(lambda: s3_b.get_object(Bucket="shared-name", Key="secret.txt")) == "NoSuchBucket"
    s3_b.create_bucket(Bucket="shared-name")  # the same name is a different bucket for tenant B
    assert s3_b.list_objects_v2(Bucket="shared-name")["KeyCount"] == 0
    assert s3.get_object(Bucket="shared-name", Key="secret.txt")["Body"].read() == b"tenant a"


def test_bad_credentials_are_refused(server: LiveServer) -> None:
    assert error_code(s3_client(server, "KEYnot-a-key").list_buckets) == "InvalidAccessKeyId"
    wrong_secret = s3_client(server, server.key_a, secret="not-the-key")
    assert error_code(wrong_secret.list_buckets) == "SignatureDoesNotMatch"
    anonymous = httpx.get(server.url + "/s3/")
    assert anonymous.status_code == 403 and b"<Code>AccessDenied</Code>" in anonymous.content


def test_tampered_payload_is_refused(server: LiveServer, s3: BaseClient) -> None:
    s3.create_bucket(Bucket="tamper")
    # A header-signed request whose body is swapped after signing fails the payload hash check.
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = server.url + "/s3/tamper/k.txt"
    signed = AWSRequest(method="PUT", url=url, data=b"original")
    S3SigV4Auth(Credentials(*s3_credentials(server.key_a)), "s3", "us-east-1").add_auth(signed)
    headers = dict(signed.headers)
    assert httpx.put(url, content=b"original", headers=headers).status_code == 200
    response = httpx.put(url, content=b"tampered", headers=headers)
    assert response.status_code == 400 and b"XAmzContentSHA256Mismatch" in response.content
    assert s3.get_object(Bucket="tamper", Key="k.txt")["Body"].read() == b"original"


def test_cli_bucket_upload(server: LiveServer, s3: BaseClient, tmp_path: pytest.TempPathFactory) -> None:
    import subprocess
    import sys

    docs = tmp_path / "docs"  # type: ignore[operator]
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("alpha")
    (docs / "sub" / "b.md").write_text("beta")
    settings = server.container.settings
    env = {
        "INFERLINE_DATA_DIR": str(settings.data_dir),
        "INFERLINE_DATABASE_URL": settings.resolved_database_url,
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "inferline",
            "bucket",
            "upload",
            "cli-upload",
            str(docs),
            "--key",
            server.key_a,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    listing = s3.list_objects_v2(Bucket="cli-upload")
    assert [o["Key"] for o in listing["Contents"]] == ["a.txt", "sub/b.md"]
    assert s3.get_object(Bucket="cli-upload", Key="sub/b.md")["Body"].read() == b"beta"


def test_keys_with_special_characters(s3: BaseClient) -> None:
    s3.create_bucket(Bucket="edge-keys")
    keys = ["ü dir/a+b c.txt", "ü dir/x=y&z.txt", "plain.txt", "a//double.txt", "trailing/"]
    for key in keys:
        s3.put_object(Bucket="edge-keys", Key=key, Body=key.encode())
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="edge-keys", Prefix="ü dir/")["Contents"]]
    assert listed == ["ü dir/a+b c.txt", "ü dir/x=y&z.txt"]
    for key in keys:
        assert s3.get_object(Bucket="edge-keys", Key=key)["Body"].read() == key.encode()
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="edge-keys", PaginationConfig={"PageSize": 1})
    assert sorted(o["Key"] for page in pages for o in page.get("Contents", [])) == sorted(keys)
