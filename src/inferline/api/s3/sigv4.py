"""AWS Signature Version 4 verification (header and presigned-query forms) for the S3 endpoint.

Scheme: the access key id is an inferline API key and the secret access key is the same API key. The key
identifies the tenant; the signature proves the request (method, path, query, signed headers, payload hash)
was made with it and not altered.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
MAX_SKEW = timedelta(minutes=15)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,]+),\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


class SignatureError(Exception):
    """The request is not correctly signed. `code` is the S3 error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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
        expires = int(params.get("X-Amz-Expires", "0") or 0)
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


def verify(request: SignedRequest, creds: Credentials, secret: str, now: datetime | None = None) -> None:
    """Check the signature and the time window; `SignatureError` when they do not hold."""
    now = now or datetime.now(UTC)
    try:
        when = datetime.strptime(creds.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("AccessDenied", "Missing or malformed X-Amz-Date.") from None
    if creds.expires is not None:
        if now > when + timedelta(seconds=creds.expires) or when - now > MAX_SKEW:
            raise SignatureError("AccessDenied", "Request has expired.")
    elif abs(now - when) > MAX_SKEW:
        raise SignatureError(
            "RequestTimeTooSkewed", "The difference between the request time and now is too large."
        )
    if "host" not in creds.signed_headers:
        raise SignatureError("AccessDenied", "The host header must be signed.")
    expected = signature(request, creds, secret)
    if not hmac.compare_digest(expected, creds.signature):
        raise SignatureError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )


def signature(request: SignedRequest, creds: Credentials, secret: str) -> str:
    scope = f"{creds.date}/{creds.region}/{creds.service}/aws4_request"
    canonical = canonical_request(request, creds)
    to_sign = "\n".join([ALGORITHM, creds.amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (creds.date, creds.region, creds.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


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
