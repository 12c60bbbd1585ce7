"""Typed domain errors. This is the only module that knows HTTP statuses and Telnyx error codes.

Each error renders as the Telnyx envelope::

    {"errors": [{"code", "title", "detail", "source": {"pointer"}, "meta": {"url"}}]}

The class docstring is the default `detail`.
"""

from __future__ import annotations

from typing import Any, ClassVar

DOCS_URL = "https://developers.telnyx.com/docs/overview/errors/"


class InferlineError(Exception):
    """An unexpected error occurred."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "10007"
    title: ClassVar[str] = "Unexpected error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or (self.__doc__ or self.title).strip()
        self.pointer = pointer
        self.parameter = parameter
        self.headers = headers or {}
        super().__init__(self.detail)

    def to_error(self) -> dict[str, Any]:
        """One entry of the `errors` list."""
        return error_entry(self.code, self.title, self.detail, self.pointer, self.parameter)

    def envelope(self) -> dict[str, Any]:
        return {"errors": [self.to_error()]}


def error_entry(
    code: str, title: str, detail: str, pointer: str | None = None, parameter: str | None = None
) -> dict[str, Any]:
    """One envelope entry; `source` is a JSON pointer into the body, or the name of a query parameter."""
    entry: dict[str, Any] = {"code": code, "title": title, "detail": detail}
    if pointer is not None:
        entry["source"] = {"pointer": pointer}
    elif parameter is not None:
        entry["source"] = {"parameter": parameter}
    entry["meta"] = {"url": DOCS_URL + code}
    return entry


class BadRequest(InferlineError):
    """The request is malformed."""

    status = 400
    code = "10015"
    title = "Bad request"


class MalformedRequest(BadRequest):
    """The request body cannot be parsed."""

    title = "Malformed request"


class UnsupportedParameter(BadRequest):
    """This parameter cannot be honoured by the selected engine."""

    title = "Unsupported parameter"


class AuthenticationFailed(InferlineError):
    """The API key is missing, unknown or revoked. Send `Authorization: Bearer <key>`."""

    status = 401
    code = "10009"
    title = "Authentication failed"


class Forbidden(InferlineError):
    """This API key may not perform the action."""

    status = 403
    code = "10010"
    title = "Authorization failed"


class NotFound(InferlineError):
    """The requested resource does not exist."""

    status = 404
    code = "10005"
    title = "Resource not found"


class ModelNotInstalled(NotFound):
    """The model is not installed on this server. Run `inferline models install`."""


KIND_NAMES = {"chat": "chat", "embeddings": "embedding", "stt": "speech-to-text", "tts": "text-to-speech"}


def model_not_installed(kind: str, model_id: str | None = None, pointer: str = "/model") -> ModelNotInstalled:
    """The one "model not installed" error of every area (404, code 10005), naming the install command."""
    if model_id is None:
        detail = f"No {KIND_NAMES.get(kind, kind)} model is installed. Run `inferline models install`."
    else:
        detail = (
            f"The {KIND_NAMES.get(kind, kind)} model {model_id!r} is not installed. "
            f"Run `inferline models install {model_id}`."
        )
    return ModelNotInstalled(detail, pointer=pointer)


class RouteNotFound(NotFound):
    """No such route."""

    title = "Route not found"


class MethodNotAllowed(InferlineError):
    """This route does not accept that HTTP method."""

    status = 405
    code = "10015"
    title = "Method not allowed"


class PayloadTooLarge(InferlineError):
    """The request body is larger than this server accepts."""

    status = 413
    code = "10015"
    title = "Payload too large"


class ValidationFailed(InferlineError):
    """A parameter is missing or has the wrong type or format."""

    status = 422
    code = "10004"
    title = "Invalid parameter"


class RateLimited(InferlineError):
    """Too many requests are in flight; retry after the delay in `Retry-After`."""

    status = 429
    code = "10011"
    title = "Too many requests"


class NotImplementedYet(InferlineError):
    """This endpoint of the Telnyx API is not implemented by this inferline server yet."""

    status = 501
    code = "10007"
    title = "Not implemented"


class UpstreamError(InferlineError):
    """A remote engine answered with an error."""

    status = 502
    code = "10007"
    title = "Bad gateway"


class UpstreamTimeout(InferlineError):
    """A remote engine did not answer in time."""

    status = 504
    code = "10008"
    title = "Gateway timeout"


class EngineUnavailable(InferlineError):
    """The engine for this model is not installed or failed to load."""

    status = 503
    code = "10007"
    title = "Engine unavailable"
