"""Keep signatures and credentials out of the access log.

uvicorn's access log writes each request's path with its query string; a presigned S3 URL carries
`X-Amz-Credential` and `X-Amz-Signature` there (and other clients put keys or tokens in queries). The filter
replaces those parameters' values with `REDACTED` before any handler formats the record.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "REDACTED"
_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|awsaccesskeyid|"
    r"api[_-]?key|access[_-]?key|access[_-]?token|auth[_-]?token|token|key|secret|password|authorization)=)"
    r"[^&#\s\"]*"
)


def redact(text: str) -> str:
    """`text` with the values of credential-bearing query parameters replaced by `REDACTED`."""
    return _SECRET_PARAM.sub(rf"\g<1>{REDACTED}", text)


class RedactQueryCredentials(logging.Filter):
    """Redacts credential query parameters in a record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install(logger_name: str = ACCESS_LOGGER) -> None:
    """Add the filter to `logger_name` once (logging configuration keeps a logger's filters)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactQueryCredentials) for f in logger.filters):
        logger.addFilter(RedactQueryCredentials())
