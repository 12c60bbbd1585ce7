"""`/ai/clusters`: compute (a durable job), list, fetch, delete, and the cluster map as a PNG."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from inferline.areas.clusters.protocol import MAX_TOP_N_NODES, PublicTextClusteringRequest
from inferline.web.deps import ContainerDep, PageDep, TenantDep

router = APIRouter(tags=["clusters"])
BASE = "/ai/clusters"
Json = dict[str, Any]


@router.post(BASE)
def compute_clusters(body: PublicTextClusteringRequest, container: ContainerDep, tenant: TenantDep) -> Json:
    return {"data": {"task_id": container.clusters.create(tenant.tenant_id, body)}}


@router.get(BASE)
def list_clusters(container: ContainerDep, tenant: TenantDep, page: PageDep) -> Json:
    items, total = container.clusters.list_tasks(tenant.tenant_id, page.offset, page.size)
    return page.envelope(items, total)


@router.get(BASE + "/{task_id}")
def fetch_cluster(
    task_id: str,
    container: ContainerDep,
    tenant: TenantDep,
    top_n_nodes: Annotated[int, Query(ge=0, le=MAX_TOP_N_NODES)] = 0,
    show_subclusters: bool = False,
) -> Json:
    return {"data": container.clusters.get(tenant.tenant_id, task_id, top_n_nodes, show_subclusters)}


@router.delete(BASE + "/{task_id}", status_code=204)
def delete_cluster(task_id: str, container: ContainerDep, tenant: TenantDep) -> Response:
    container.clusters.delete(tenant.tenant_id, task_id)
    return Response(status_code=204)


@router.get(BASE + "/{task_id}/graph", response_class=Response)
def fetch_cluster_graph(
    task_id: str,
    container: ContainerDep,
    tenant: TenantDep,
    cluster_id: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> Response:
    png = container.clusters.graph(tenant.tenant_id, task_id, cluster_id)
    return Response(content=png, media_type="image/png")
