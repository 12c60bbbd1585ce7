"""`/console`: the page and its static assets. No API key here: the page signs in with a key that its script
sends as `Authorization: Bearer` to `/v2`. Every response carries a strict Content-Security-Policy.

`GET /v2/console/whoami` (`api_router`, mounted with the API areas) tells the page its key's tenant and scope,
so that it shows only what the key may do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from inferline.errors import NotFound
from inferline.web.deps import TenantDep

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/console", tags=["Console"])
STATIC = Path(__file__).resolve().parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
# Only the files shipped in static/ are served, looked up by exact name (no paths, no traversal).
FILES = {p.name: p for p in STATIC.iterdir() if p.suffix in TYPES} if STATIC.is_dir() else {}


def _file(name: str) -> Response:
    path = FILES.get(name)
    if path is None:
        raise NotFound(f"The console has no file {name!r}.")
    return FileResponse(path, media_type=TYPES[path.suffix] + "; charset=utf-8", headers=HEADERS)


@router.get("/console")
def console_redirect() -> Response:
    return RedirectResponse("/console/", status_code=308, headers=HEADERS)


@router.get("/console/")
def console_index() -> Response:
    return _file("index.html")


@router.get("/console/static/{name}")
def console_static(name: str) -> Response:
    return _file(name)


@api_router.get("/whoami")
def whoami(principal: TenantDep) -> dict[str, Any]:
    """The calling key's tenant, id and scope (`admin`, `inference` or `read`); never a secret."""
    return {
        "data": {
            "record_type": "principal",
            "tenant_id": principal.tenant_id,
            "key_id": principal.key_id,
            "scope": principal.scope,
        }
    }
