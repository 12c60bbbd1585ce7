"""The API docs without a network, and an OpenAPI document that says how to call the API.

`/docs` (Swagger UI) and `/redoc` load their scripts and styles from `/docs/assets`, the files of the pinned
`fastapi-offline` package (no CDN). `openapi.json` declares the bearer API key (`securitySchemes` and global
`security`) and documents the Telnyx error envelope as every operation's 4xx response in place of FastAPI's
`HTTPValidationError` (which this server never sends).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = "/docs/assets"
BEARER = "bearerAuth"
ENVELOPE = "ErrorEnvelope"
_ENVELOPE_REF = {"$ref": f"#/components/schemas/{ENVELOPE}"}

ERROR_ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": ENVELOPE,
    "description": "Every error: one entry per problem, with Telnyx's five-digit code (10015 malformed, "
    "10004 invalid parameter, 10009 authentication, 10005 not found, 10011 rate limited, ...).",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "title", "detail"],
                "properties": {
                    "code": {"type": "string", "examples": ["10004"]},
                    "title": {"type": "string", "examples": ["Invalid parameter"]},
                    "detail": {"type": "string"},
                    "source": {
                        "type": "object",
                        "description": "The JSON pointer into the body, or the query parameter, at fault.",
                        "properties": {"pointer": {"type": "string"}, "parameter": {"type": "string"}},
                    },
                    "meta": {"type": "object", "properties": {"url": {"type": "string"}}},
                },
            },
        }
    },
}


def assets_dir() -> Path:
    """The Swagger UI and ReDoc files shipped in the `fastapi-offline` package."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("the fastapi-offline package (the docs' assets) is not installed")
    return Path(spec.origin).parent / "static"


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with the bearer scheme and the error envelope (built once)."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = doc.setdefault("components", {})
        components.setdefault("securitySchemes", {})[BEARER] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: `inferline keys create` prints one (or set INFERLINE_API_KEY).",
        }
        doc["security"] = [{BEARER: []}]
        schemas = components.setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas[ENVELOPE] = ERROR_ENVELOPE_SCHEMA
        error = {
            "description": "An error, as the Telnyx envelope",
            "content": {"application/json": {"schema": _ENVELOPE_REF}},
        }
        for item in doc.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                responses["4XX"] = error
        app.openapi_schema = doc
    return app.openapi_schema


def install_docs(app: FastAPI) -> None:
    """Serve `/docs`, `/redoc` and their assets locally, and the amended `openapi.json`.

    The app must be created with `docs_url=None, redoc_url=None` (FastAPI's own pages load from a CDN).
    """
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
