"""Shared request dependencies: the container, the authenticated tenant, pagination and list params."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from inferline.container import Container
from inferline.keys import Principal
from inferline.ops.guard import guard


async def get_container(request: Request) -> Container:
    """The app's container (async: FastAPI runs it on the event loop, not in a worker thread)."""
    return request.app.state.container  # type: ignore[no-any-return]


ANTHROPIC_PATHS = "/v2/ai/anthropic/"  # the anthropic SDK sends its key as `x-api-key`


async def authenticate(request: Request) -> Principal:
    """The caller's principal: from the key cache on the event loop, else from the database in a thread.

    The key is `Authorization: Bearer <key>`; on the Anthropic paths `x-api-key: <key>` as well."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    token = secret.strip() if scheme.lower() == "bearer" else ""
    if not token and request.scope["path"].startswith(ANTHROPIC_PATHS):
        token = request.headers.get("x-api-key", "").strip()
    container = request.app.state.container
    principal = (container.keys.cached(token) if token else None) or await run_in_threadpool(
        read_principal, container, token
    )
    request.state.principal = principal
    await guard(request, principal)  # the key's scope, then the tenant's and key's limits
    return principal


def read_principal(container: Container, token: str) -> Principal:
    """A key the cache does not hold, read from the database (in a worker thread), and its tenant's and key's
    limits with it: admission (`ops.guard`) then finds them cached. Read on their own, the limits took a
    second thread hop and read in the first limited request after it (1.3 to 1.8 ms of a ~6 ms embeddings
    request, 2-core machine)."""
    principal = container.keys.authenticate(token)
    container.limits.applicable(principal)
    return principal


ContainerDep = Annotated[Container, Depends(get_container)]
TenantDep = Annotated[Principal, Depends(authenticate)]

# page[number] is bounded so the row offset, (number - 1) * size <= 999,999 * 250, stays far inside the
# 64-bit integers SQLite and PostgreSQL accept; past it, or past page[size]'s 1..250, is a 422.
MAX_PAGE_NUMBER = 1_000_000
MAX_PAGE_SIZE = 250


@dataclass(frozen=True)
class Page:
    """A 1-based page request (`page[number]`, `page[size]`)."""

    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def envelope(self, items: list[Any], total: int) -> dict[str, Any]:
        """`{"data": items, "meta": {...}}`; a page past the end is simply empty."""
        return {
            "data": items,
            "meta": {
                "page_number": self.number,
                "page_size": self.size,
                "total_pages": math.ceil(total / self.size) if total else 0,
                "total_results": total,
            },
        }


def page_params(
    number: Annotated[int, Query(alias="page[number]", ge=1, le=MAX_PAGE_NUMBER)] = 1,
    size: Annotated[int, Query(alias="page[size]", ge=1, le=MAX_PAGE_SIZE)] = 20,
) -> Page:
    return Page(number=number, size=size)


PageDep = Annotated[Page, Depends(page_params)]


def list_param(request: Request, name: str) -> list[str] | None:
    """An array query parameter sent comma-joined (`a=x,y`), repeated (`a=x&a=y`) or as `a[]=x`."""
    raw = request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")
    if not raw:
        return None
    return [part.strip() for value in raw for part in value.split(",") if part.strip()]
