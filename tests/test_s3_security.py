"""S3 endpoint security: S3 credentials distinct from the API key, presign limits, log redaction, aws-chunked
uploads with verified chunk signatures and trailers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import update

from inferline.stores.tables import ApiKey
from tests.conftest import LiveServer, s3_auth

BUCKET = "security"
EMPTY = hashlib.sha256(b"").hexdigest()


def s3_client(server: LiveServer, **auth: str) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4"),
        **auth,
    )


@pytest.fixture(scope="module")
def s3(server: LiveServer) -> BaseClient:
    client = s3_client(server, **s3_auth(server.key_a))
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="doc.txt", Body=b"shared by link")
    return client


def error(response: httpx.Response) -> tuple[int, str]:
    """Status and S3 error code of an XML error answer."""
    assert response.headers["content-type"].startswith("application/xml"), response.text
    code = response.text.split("<Code>", 1)[1].split("</Code>", 1)[0]
    return response.status_code, code


def client_error(call: object) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()  # type: ignore[operator]
    return str(info.value.response["Error"]["Code"]), str(info.value.response["Error"]["Message"])


def cli(server: LiveServer, *args: str) -> str:
    settings = server.container.settings
    env = {
        "INFERLINE_DATA_DIR": str(settings.data_dir),
        "INFERLINE_DATABASE_URL": settings.resolved_database_url,
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "inferline", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def forget_s3_credentials(server: LiveServer, key_id: str) -> None:
    """Make the key look like one created before S3 credentials existed."""
    with server.container.db.session() as s:
        s.execute(update(ApiKey).where(ApiKey.id == key_id).values(s3_access_key_id=None, s3_secret=None))


# --- credentials -------------------------------------------------------------------------------------------


def test_presigned_url_reveals_no_api_key(server: LiveServer, s3: BaseClient) -> None:
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "doc.txt"}, ExpiresIn=300)
    access_key_id, secret = s3_auth(server.key_a).values()
    for leaked in (server.key_a, hashlib.sha256(server.key_a.encode()).hexdigest(), secret):
        assert leaked not in url
    assert f"X-Amz-Credential={access_key_id}%2F" in url
    assert httpx.get(url).content == b"shared by link"
    # What a link holder sees cannot call the API.
    for token in (access_key_id, secret):
        response = httpx.get(server.v2 + "/ai/models", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


def test_raw_api_key_is_not_an_s3_access_key(server: LiveServer, s3: BaseClient) -> None:
    raw = s3_client(server, aws_access_key_id=server.key_a, aws_secret_access_key=server.key_a)
    code, message = client_error(raw.list_buckets)
    assert code == "InvalidAccessKeyId" and "inferline keys list" in message
    presigned = raw.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "doc.txt"})
    assert error(httpx.get(presigned)) == (403, "InvalidAccessKeyId")


def test_revoked_key_stops_working_on_s3(server: LiveServer) -> None:
    info, key = server.container.keys.create("tenant-revoked-s3", name="to revoke")
    assert info.s3_access_key_id == s3_auth(key)["aws_access_key_id"]
    client = s3_client(server, **s3_auth(key))
    client.create_bucket(Bucket="soon-revoked")
    client.put_object(Bucket="soon-revoked", Key="k", Body=b"x")
    url = client.generate_presigned_url("get_object", Params={"Bucket": "soon-revoked", "Key": "k"})
    assert httpx.get(url).content == b"x"
    server.container.keys.revoke(info.id)
    assert client_error(client.list_buckets)[0] == "InvalidAccessKeyId"
    assert error(httpx.get(url)) == (403, "InvalidAccessKeyId")


def test_cli_prints_and_backfills_s3_credentials(server: LiveServer) -> None:
    created = cli(server, "create", "--tenant", "tenant-cli-s3")
    fields = dict(line.split(":", 1) for line in created.splitlines())
    key, key_id = fields["key"].strip(), fields["id"].strip()
    access_key_id, secret = s3_auth(key).values()
    assert fields["s3 access key id"].strip() == access_key_id and fields["s3 secret"].strip() == secret
    assert access_key_id in cli(server, "list", "--tenant", "tenant-cli-s3")
    client = s3_client(server, **s3_auth(key))
    client.list_buckets()

    forget_s3_credentials(server, key_id)  # a key from before the migration: S3 refuses it ...
    assert client_error(client.list_buckets)[0] == "InvalidAccessKeyId"
    assert access_key_id not in cli(server, "list", "--tenant", "tenant-cli-s3")
    shown = cli(server, "s3-credentials", "--key", key)  # ... until its holder derives them
    assert access_key_id in shown and secret in shown
    client.list_buckets()


def test_seeded_key_gets_s3_credentials_at_start_up(server: LiveServer) -> None:
    seeded = server.container.keys.authenticate(server.key_a).key_id
    forget_s3_credentials(server, seeded)
    client = s3_client(server, **s3_auth(server.key_a))
    try:
        assert client_error(client.list_buckets)[0] == "InvalidAccessKeyId"
    finally:
        server.container.keys.ensure(server.key_a)  # what start-up does with INFERLINE_API_KEY
    assert BUCKET in [b["Name"] for b in client.list_buckets()["Buckets"]]


# --- presign lifetime and malformed query parameters ------------------------------------------------------


def test_presign_lifetime_is_capped_at_seven_days(s3: BaseClient) -> None:
    def presign(expires: int) -> str:
        return s3.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": "doc.txt"}, ExpiresIn=expires
        )

    assert httpx.get(presign(604800)).content == b"shared by link"
    for expires in (604801, 10**9):
        assert error(httpx.get(presign(expires))) == (400, "AuthorizationQueryParametersError")


@pytest.mark.parametrize("value", ["abc", "1e5", "-5", "", "99999999999999999999999999", "9" * 5000, "٣"])
def test_malformed_expires_is_a_400(server: LiveServer, s3: BaseClient, value: str) -> None:
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "doc.txt"}, ExpiresIn=60)
    parts = urlsplit(url)
    query = "&".join(
        f"X-Amz-Expires={value}" if p.startswith("X-Amz-Expires=") else p for p in parts.query.split("&")
    )
    assert error(httpx.get(f"{server.url}{parts.path}?{query}")) == (400, "AuthorizationQueryParametersError")
    # Checked before the access key: an unknown key with a bad lifetime is the same 400.
    unknown = query.replace("X-Amz-Credential=IL", "X-Amz-Credential=ILX")
    assert error(httpx.get(f"{server.url}{parts.path}?{unknown}"))[0] == 400


def test_non_ascii_signature_is_a_403(server: LiveServer, s3: BaseClient) -> None:
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "doc.txt"}, ExpiresIn=60)
    forged = url.split("X-Amz-Signature=")[0] + "X-Amz-Signature=%C3%A9"
    assert error(httpx.get(forged)) == (403, "SignatureDoesNotMatch")


# --- access log --------------------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_log() -> Iterator[_Records]:
    """The server's uvicorn access log lines (the test server logs at warning: raised to info here)."""
    logger, handler = logging.getLogger("uvicorn.access"), _Records()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_access_log_redacts_signatures_and_credentials(
    server: LiveServer, s3: BaseClient, access_log: _Records
) -> None:
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "doc.txt"}, ExpiresIn=60)
    query = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))
    assert httpx.get(url).status_code == 200
    assert httpx.get(f"{server.url}/s3/{BUCKET}/doc.txt?api_key=KEYleaked123&token=tok456").status_code == 403
    deadline = time.monotonic() + 10
    while (
        len([n for n in access_log.lines if "/s3/security/doc.txt" in n]) < 2 and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    presigned, other = [line for line in access_log.lines if "/s3/security/doc.txt" in line]
    assert "X-Amz-Signature=REDACTED" in presigned and "X-Amz-Credential=REDACTED" in presigned, presigned
    assert "X-Amz-Expires=60" in presigned  # what is not a credential stays, for debugging
    assert "api_key=REDACTED&token=REDACTED" in other, other
    for secret in (query["X-Amz-Signature"], query["X-Amz-Credential"], "KEYleaked123", "tok456"):
        assert secret not in presigned + other
    assert s3_auth(server.key_a)["aws_access_key_id"] not in presigned


# --- aws-chunked uploads -----------------------------------------------------------------------------------


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def chunked_put(
    server: LiveServer,
    key: str,
    chunks: list[bytes],
    mode: str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    tamper: str = "",
) -> httpx.Response:
    """PUT `chunks` as an aws-chunked body signed by hand (SigV4 seed, chunk and trailer signatures).

    `tamper`: "chunk" alters the second chunk's signature, "trailer" the trailer signature, "checksum" the
    crc32 trailer; any other non-empty value replaces the body with it.
    """
    access_key_id, secret = s3_auth(server.key_a).values()
    url = f"{server.url}/s3/{BUCKET}/{key}"
    now = datetime.now(UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/us-east-1/s3/aws4_request"
    payload = b"".join(chunks)
    trailer = mode.endswith("-TRAILER")
    headers = {
        "host": urlsplit(url).netloc,
        "content-encoding": "aws-chunked",
        "x-amz-content-sha256": mode,
        "x-amz-date": amz_date,
        "x-amz-decoded-content-length": str(len(payload)),
    }
    if trailer:
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    names = sorted(headers)
    canonical = "\n".join(
        [
            "PUT",
            f"/s3/{BUCKET}/{key}",
            "",
            "".join(f"{n}:{headers[n]}\n" for n in names),
            ";".join(names),
            mode,
        ]
    )
    signing = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), "us-east-1"), "s3"), "aws4_request")
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    previous = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={previous}"
    )
    signed = mode != "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    body = bytearray()
    for i, chunk in enumerate([*chunks, b""]):
        line = f"{len(chunk):x}"
        if signed:
            digest = hashlib.sha256(chunk).hexdigest()
            string = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY, digest])
            previous = hmac.new(signing, string.encode(), hashlib.sha256).hexdigest()
            line += f";chunk-signature={'0' * 64 if tamper == 'chunk' and i == 1 else previous}"
        body += line.encode() + b"\r\n" + (chunk + b"\r\n" if chunk else b"")
    if trailer:
        crc = zlib.crc32(b"tampered" if tamper == "checksum" else payload).to_bytes(4, "big")
        field = f"x-amz-checksum-crc32:{base64.b64encode(crc).decode()}"
        body += field.encode() + b"\r\n"
        if signed:
            digest = hashlib.sha256(f"{field}\n".encode()).hexdigest()
            string = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous, digest])
            signature = hmac.new(signing, string.encode(), hashlib.sha256).hexdigest()
            body += f"x-amz-trailer-signature:{'1' * 64 if tamper == 'trailer' else signature}\r\n".encode()
    body += b"\r\n"
    if tamper not in ("", "chunk", "trailer", "checksum"):
        body = bytearray(tamper.encode())
    return httpx.put(url, content=bytes(body), headers=headers)


CHUNKS = [b"a" * 8192, b"second chunk \xff\x00", b"end"]


@pytest.mark.parametrize(
    "mode",
    [
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    ],
)
def test_aws_chunked_upload_is_verified(server: LiveServer, s3: BaseClient, mode: str) -> None:
    key = f"chunked-{mode.lower()}.bin"
    response = chunked_put(server, key, CHUNKS, mode)
    assert response.status_code == 200, response.text
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"".join(CHUNKS)
    if mode != "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
        assert error(chunked_put(server, "forged.bin", CHUNKS, mode, tamper="chunk")) == (
            403,
            "SignatureDoesNotMatch",
        )
    if mode == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER":
        assert error(chunked_put(server, "forged.bin", CHUNKS, mode, tamper="trailer")) == (
            403,
            "SignatureDoesNotMatch",
        )
    if mode.endswith("-TRAILER"):
        assert error(chunked_put(server, "forged.bin", CHUNKS, mode, tamper="checksum")) == (400, "BadDigest")
    assert client_error(lambda: s3.head_object(Bucket=BUCKET, Key="forged.bin"))[0] == "404"


@pytest.mark.parametrize(
    "body",
    [
        "zz;chunk-signature=" + "0" * 64 + "\r\nab\r\n",
        "\r\nab\r\n",
        "-5;chunk-signature=" + "0" * 64 + "\r\nab\r\n",
        "5;chunk-signature=" + "0" * 64 + "\r\nab",
        "5;chunk-signature=" + "0" * 64,
        "0",
        "ffffffffffffffff;chunk-signature=" + "0" * 64 + "\r\n",
    ],
)
def test_malformed_chunks_are_a_400(server: LiveServer, s3: BaseClient, body: str) -> None:
    status, code = error(chunked_put(server, "malformed.bin", CHUNKS, tamper=body))
    assert status == 400 and code in ("IncompleteBody", "InvalidRequest")


def test_unsupported_streaming_mode_is_refused(server: LiveServer, s3: BaseClient) -> None:
    response = chunked_put(server, "ecdsa.bin", CHUNKS, mode="STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")
    assert error(response) == (400, "InvalidRequest") and "not supported" in response.text
