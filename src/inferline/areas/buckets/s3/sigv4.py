"""AWS Signature Version 4 verification (header and presigned-query forms) for the S3 endpoint.

Scheme: the access key id is an API key's public S3 access key id and the secret access key its S3 secret
(`inferline.keys.s3_credentials`). The access key id identifies the tenant; the signature proves the
request (method, path, query, signed headers, payload hash) was made with the secret and not altered. Bodies
sent `aws-chunked` (`STREAMING-…` payload hashes) have each chunk signature, and any trailer, verified too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
MAX_SKEW = timedelta(minutes=15)
MAX_EXPIRES = 604800  # seconds: a presigned URL lives at most 7 days, as on S3
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
_PAYLOAD, _TRAILER = "AWS4-HMAC-SHA256-PAYLOAD", "AWS4-HMAC-SHA256-TRAILER"
_EMPTY = hashlib.sha256(b"").hexdigest()
_CHUNK_HEADER = re.compile(rb"([0-9a-fA-F]{1,16})(?:;chunk-signature=([!-~]*))?")
# Trailer checksums verified here (crc32c and crc64nvme need a native library: accepted as sent).
_CHECKSUMS: dict[str, Callable[[bytes], str]] = {
    "x-amz-checksum-crc32": lambda data: _b64(zlib.crc32(data).to_bytes(4, "big")),
    "x-amz-checksum-sha1": lambda data: _b64(hashlib.sha1(data).digest()),
    "x-amz-checksum-sha256": lambda data: _b64(hashlib.sha256(data).digest()),
}


_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,]+),\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


_BAD_REQUEST = {
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "BadDigest",
    "IncompleteBody",
    "InvalidArgument",
    "InvalidRequest",
}


class SignatureError(Exception):
    """The request is not correctly signed or framed. `code` and `status` are the S3 error to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = 400 if code in _BAD_REQUEST else 403


@dataclass(frozen=True)
class SignedRequest:
    """What the signature covers, as received."""

    method: str
    raw_path: str
    raw_query: str
    headers: dict[str, str]  # lower-case names, values joined with "," when repeated


@dataclass(frozen=True)
class Credentials:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str
    amz_date: str
    payload_hash: str
    expires: int | None = None


def parse(request: SignedRequest) -> Credentials:
    """The credentials of a header-signed or presigned request; `SignatureError` when absent or malformed."""
    query = _query_pairs(request.raw_query)
    params = dict(query)
    if "X-Amz-Signature" in params:
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            raise SignatureError("AuthorizationQueryParametersError", "Only AWS4-HMAC-SHA256 is supported.")
        credential, signed, signature = (
            params.get("X-Amz-Credential", ""),
            params.get("X-Amz-SignedHeaders", ""),
            params["X-Amz-Signature"],
        )
        amz_date, payload = params.get("X-Amz-Date", ""), UNSIGNED
        expires = _expires(params.get("X-Amz-Expires"))
    else:
        header = request.headers.get("authorization", "")
        match = _AUTH.match(header.strip())
        if not match:
            raise SignatureError("AccessDenied", "Sign requests with AWS Signature Version 4.")
        credential, signed, signature = match["cred"], match["signed"], match["sig"]
        amz_date = request.headers.get("x-amz-date", "")
        payload = request.headers.get("x-amz-content-sha256", "")
        if not payload:
            raise SignatureError("InvalidRequest", "Missing x-amz-content-sha256.")
        expires = None
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError("AuthorizationHeaderMalformed", "Malformed credential scope.")
    return Credentials(
        access_key=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        signed_headers=signed.split(";"),
        signature=signature,
        amz_date=amz_date,
        payload_hash=payload,
        expires=expires,
    )


def _expires(value: str | None) -> int:
    """`X-Amz-Expires`: whole seconds, at most 7 days."""
    if value is None:
        raise SignatureError("AuthorizationQueryParametersError", "X-Amz-Expires is required.")
    if value.startswith("-") and value[1:].isdigit():
        raise SignatureError("AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative.")
    if not (value.isascii() and value.isdigit()):
        raise SignatureError("AuthorizationQueryParametersError", "X-Amz-Expires must be a whole number.")
    if len(value) > 20 or int(value) > MAX_EXPIRES:  # int() refuses over 4300 digits
        raise SignatureError(
            "AuthorizationQueryParametersError",
            f"X-Amz-Expires must be less than a week (in seconds) that is; {MAX_EXPIRES} seconds.",
        )
    return int(value)


def verify(request: SignedRequest, creds: Credentials, secret: str, now: datetime | None = None) -> None:
    """Check the signature and the time window; `SignatureError` when they do not hold."""
    now = now or datetime.now(UTC)
    try:
        when = datetime.strptime(creds.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("AccessDenied", "Missing or malformed X-Amz-Date.") from None
    if creds.expires is not None:
        if when - now > MAX_SKEW or now - when > timedelta(seconds=creds.expires):
            raise SignatureError("AccessDenied", "Request has expired.")
    elif abs(now - when) > MAX_SKEW:
        raise SignatureError(
            "RequestTimeTooSkewed", "The difference between the request time and now is too large."
        )
    if "host" not in creds.signed_headers:
        raise SignatureError("AccessDenied", "The host header must be signed.")
    expected = signature(request, creds, secret)
    if not hmac.compare_digest(expected.encode(), creds.signature.encode()):
        raise SignatureError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )


def signature(request: SignedRequest, creds: Credentials, secret: str) -> str:
    canonical = canonical_request(request, creds)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return _sign(secret, creds, "\n".join([ALGORITHM, creds.amz_date, _scope(creds), digest]))


def _scope(creds: Credentials) -> str:
    return f"{creds.date}/{creds.region}/{creds.service}/aws4_request"


def _signing_key(secret: str, creds: Credentials) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (creds.date, creds.region, creds.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _sign(secret: str | bytes, creds: Credentials, to_sign: str) -> str:
    key = _signing_key(secret, creds) if isinstance(secret, str) else secret
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def decode_chunked(body: bytes, creds: Credentials, secret: str, headers: dict[str, str]) -> bytes:
    """The payload of an `aws-chunked` body, its chunk signatures and trailer (checksum, signature) checked.

    Framing: `<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n` … a zero-size chunk, then trailer lines
    `name:value\r\n` (the `-TRAILER` modes) and an empty line. Chunk `n` is signed over
    `AWS4-HMAC-SHA256-PAYLOAD`, the date, scope, signature `n-1` (the request's for the first), sha256("")
    and sha256(data); the trailer over `AWS4-HMAC-SHA256-TRAILER`, …, the last chunk's, sha256(trailer lines).
    """
    mode = creds.payload_hash
    if mode not in STREAMING_MODES:
        raise SignatureError(
            "InvalidRequest",
            f"x-amz-content-sha256 {mode[:64]} is not supported; use {', '.join(STREAMING_MODES)}.",
        )
    signed = mode != STREAMING_UNSIGNED_TRAILER
    key, previous, scope = _signing_key(secret, creds), creds.signature, _scope(creds)
    out, pos = bytearray(), 0
    while True:
        line, pos = _line(body, pos)
        match = _CHUNK_HEADER.fullmatch(line)
        if match is None or (match[2] is None) == signed:
            raise SignatureError("InvalidRequest", "Malformed aws-chunked chunk header.")
        size = int(match[1], 16)
        data = body[pos : pos + size]
        if len(data) < size or (size and body[pos + size : pos + size + 2] != b"\r\n"):
            raise SignatureError("IncompleteBody", "The aws-chunked body ends inside a chunk.")
        pos += size + 2 if size else 0
        if signed:
            digest = hashlib.sha256(data).hexdigest()
            expected = _sign(
                key, creds, "\n".join([_PAYLOAD, creds.amz_date, scope, previous, _EMPTY, digest])
            )
            if not hmac.compare_digest(expected.encode(), match[2]):
                raise SignatureError("SignatureDoesNotMatch", "A chunk signature does not match the chunk.")
            previous = expected
        out += data
        if size == 0:
            break
    trailers: list[tuple[str, str]] = []
    while True:
        line, pos = _line(body, pos)
        if not line:
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise SignatureError("InvalidRequest", "Malformed aws-chunked trailer.")
        trailers.append((name.strip().lower(), value.strip()))
    if pos != len(body):
        raise SignatureError("InvalidRequest", "Data after the final aws-chunked chunk.")
    _check_trailers(bytes(out), trailers, mode, headers.get("x-amz-trailer", ""), key, creds, previous)
    declared = headers.get("x-amz-decoded-content-length")
    if declared is not None and declared != str(len(out)):
        raise SignatureError("IncompleteBody", "The body does not match x-amz-decoded-content-length.")
    return bytes(out)


def _line(body: bytes, pos: int) -> tuple[bytes, int]:
    end = body.find(b"\r\n", pos, pos + 4096)
    if end < 0:
        raise SignatureError("IncompleteBody", "Malformed or truncated aws-chunked body.")
    return body[pos:end], end + 2


def _check_trailers(
    data: bytes,
    trailers: list[tuple[str, str]],
    mode: str,
    declared: str,
    key: bytes,
    creds: Credentials,
    previous: str,
) -> None:
    """The trailer: none unless announced by x-amz-trailer; its checksum right; signed in the signed mode."""
    signature = [v for n, v in trailers if n == "x-amz-trailer-signature"]
    fields = [(n, v) for n, v in trailers if n != "x-amz-trailer-signature"]
    if mode == STREAMING_SIGNED:
        if trailers:
            raise SignatureError("InvalidRequest", "A trailer needs a -TRAILER x-amz-content-sha256.")
        return
    names = {n.strip().lower() for n in declared.split(",") if n.strip()}
    if {n for n, _ in fields} != names:
        raise SignatureError("InvalidRequest", "The trailer does not match x-amz-trailer.")
    if mode == STREAMING_SIGNED_TRAILER:
        canonical = "".join(f"{n}:{v}\n" for n, v in fields)
        digest = hashlib.sha256(canonical.encode("latin-1")).hexdigest()
        expected = _sign(key, creds, "\n".join([_TRAILER, creds.amz_date, _scope(creds), previous, digest]))
        if len(signature) != 1 or not hmac.compare_digest(expected.encode(), signature[0].encode("latin-1")):
            raise SignatureError("SignatureDoesNotMatch", "The trailer signature does not match the trailer.")
    elif signature:
        raise SignatureError("InvalidRequest", "An unsigned trailer carries no x-amz-trailer-signature.")
    for name, value in fields:
        compute = _CHECKSUMS.get(name)
        if compute is not None and compute(data) != value:
            raise SignatureError(
                "BadDigest", f"The {name} you specified did not match the calculated checksum."
            )


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def canonical_request(request: SignedRequest, creds: Credentials) -> str:
    pairs = [(k, v) for k, v in _query_pairs(request.raw_query) if k != "X-Amz-Signature"]
    query = "&".join(
        f"{_enc(k)}={_enc(v)}" for k, v in sorted(pairs, key=lambda kv: (_enc(kv[0]), _enc(kv[1])))
    )
    headers = "".join(
        f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in creds.signed_headers
    )
    return "\n".join(
        [
            request.method,
            request.raw_path or "/",
            query,
            headers,
            ";".join(creds.signed_headers),
            creds.payload_hash,
        ]
    )


def _query_pairs(raw: str) -> list[tuple[str, str]]:
    pairs = []
    for part in raw.split("&") if raw else []:
        name, _, value = part.partition("=")
        pairs.append((unquote(name.replace("+", " ")), unquote(value.replace("+", " "))))
    return pairs


def _enc(value: str) -> str:
    return quote(value, safe="-_.~")
