"""`/console`: the page and its static assets. No API key here: the page signs in with a key that its script
sends as `Authorization: Bearer` to `/v2`. Every response carries a strict Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from inferline.errors import NotFound

router = APIRouter(include_in_schema=False)
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
