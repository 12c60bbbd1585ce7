"""Routes every operation of the official spec that no area implements yet to a 501 in the error envelope."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources

from fastapi import APIRouter, FastAPI
from starlette.routing import Match

from inferline.errors import NotImplementedYet

SPEC_FILES = ("telnyx-ai.openapi.json", "telnyx-ai-adjacent.openapi.json")
METHODS = ("get", "post", "put", "patch", "delete")


def spec_operations() -> Iterator[tuple[str, str]]:
    """(METHOD, path) of every operation in the bundled spec files, paths without the `/v2` prefix."""
    for name in SPEC_FILES:
        spec = json.loads(resources.files("inferline.spec").joinpath(name).read_text())
        for path, item in spec["paths"].items():
            for method in METHODS:
                if method in item:
                    yield method.upper(), path


def _is_routed(app: FastAPI, method: str, path: str) -> bool:
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


def _concrete(path: str) -> str:
    """A path with its `{param}` segments filled in, for matching against registered routes."""
    return "/".join("x" if part.startswith("{") else part for part in path.split("/"))


def unbuilt_router(app: FastAPI, prefix: str) -> APIRouter:
    """A router answering 501 for each spec operation that `app` does not route yet."""
    router = APIRouter()
    for method, path in spec_operations():
        if _is_routed(app, method, prefix + _concrete(path)):
            continue

        router.add_api_route(path, _not_implemented(method, path), methods=[method], include_in_schema=False)
    return router


def _not_implemented(method: str, path: str):  # type: ignore[no-untyped-def]
    async def not_implemented() -> None:
        raise NotImplementedYet(f"{method} /v2{path} is not implemented by this inferline server yet.")

    return not_implemented
