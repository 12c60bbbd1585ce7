"""Every error leaves the server as the Telnyx envelope; this module installs the handlers that ensure it."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from inferline.errors import (
    BadRequest,
    InferlineError,
    MalformedRequest,
    MethodNotAllowed,
    RouteNotFound,
    ValidationFailed,
    error_entry,
)
from inferline.web.dialects import with_dialect

log = logging.getLogger("inferline.errors")


def error_response(exc: InferlineError, request: Request) -> JSONResponse:
    """The Telnyx envelope, plus the OpenAI or Anthropic error object on those paths."""
    return envelope_response(request, exc.envelope(), exc.status, exc.headers or None)


def envelope_response(
    request: Request, body: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(with_dialect(request.url.path, body, status), status_code=status, headers=headers)


def pointer_of(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str]:
    """(`source` key, value) for a pydantic error location: body fields as JSON pointers, else the name."""
    where, *path = list(loc) or ["body"]
    if where == "body":
        return "pointer", "/" + "/".join(str(p) for p in path)
    return "parameter", ".".join(str(p) for p in path)


def body_error(cause: BaseException) -> InferlineError:
    """The error for a request body the framework could not read or decode (its 400 names no reason)."""
    if isinstance(cause, InferlineError):  # the size limit stopped the read: 413
        return cause
    if isinstance(cause, RecursionError):
        return MalformedRequest("The request body is not valid JSON: it nests too deeply.", pointer="/")
    if isinstance(cause, UnicodeDecodeError):
        return MalformedRequest(f"The request body is not valid UTF-8 ({cause.reason}).", pointer="/")
    if isinstance(cause, ValueError):  # e.g. an integer longer than Python's conversion limit
        return MalformedRequest(
            f"The request body is not valid JSON: {str(cause).split(';')[0]}.", pointer="/"
        )
    return MalformedRequest(f"The request body cannot be read: {type(cause).__name__}.", pointer="/")


def _validation_response(exc: RequestValidationError, request: Request) -> JSONResponse:
    errors = exc.errors()
    invalid = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if invalid is not None:
        reason = (invalid.get("ctx") or {}).get("error", "syntax error")
        position = invalid.get("loc", ("body", "?"))[-1]
        bad = MalformedRequest(
            f"The request body is not valid JSON: {reason} at position {position}.", pointer="/"
        )
        return error_response(bad, request)
    entries = []
    for err in errors:
        key, where = pointer_of(err.get("loc", ()))
        msg = err.get("msg", "Invalid value")
        entry = error_entry(ValidationFailed.code, ValidationFailed.title, f"{where or 'body'}: {msg}")
        entry["source"] = {key: where}
        entries.append(entry)
    return envelope_response(request, {"errors": entries}, ValidationFailed.status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InferlineError)
    async def _inferline(request: Request, exc: InferlineError) -> JSONResponse:
        return error_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(RouteNotFound(f"No route {request.method} {request.url.path}."), request)
        if exc.status_code == 405:
            not_allowed = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
            return error_response(not_allowed, request)
        if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI could not read or parse the body
            return error_response(body_error(exc.__cause__), request)
        if exc.status_code == 400:
            return error_response(MalformedRequest(str(exc.detail)), request)
        code = "10015" if exc.status_code < 500 else "10007"
        title = next((s.phrase for s in HTTPStatus if s.value == exc.status_code), "HTTP error")
        entry = error_entry(code, title, str(exc.detail))
        return envelope_response(request, {"errors": [entry]}, exc.status_code, exc.headers)

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value (PostgreSQL: NUL characters in text, numbers out of a column's range);
        # the transaction was rolled back, so nothing was stored.
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        return error_response(BadRequest(f"A value in the request cannot be stored: {reason}"), request)

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # Only a deeply nested input (a JSON schema, a filter) recurses this far; it is the caller's to fix.
        log.warning("recursion limit on %s %s: %s", request.method, request.url.path, exc)
        too_deep = MalformedRequest("The request nests too deeply to be processed.", pointer="/")
        return error_response(too_deep, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = request.headers.get("x-request-id") or getattr(request.state, "request_id", "")
        log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, request_id)
        failure = InferlineError(f"An unexpected error occurred (request id {request_id}).")
        return error_response(failure, request)
