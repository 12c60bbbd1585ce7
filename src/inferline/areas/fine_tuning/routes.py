"""`/ai/fine_tuning/jobs`: create, list, get, cancel (bare job objects; the list is `{data}`), plus
OpenAI-style `/events` with each training step's loss."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from inferline.areas.fine_tuning.protocol import FineTuningJobCreate
from inferline.web.deps import ContainerDep, TenantDep

router = APIRouter(tags=["fine_tuning"])
BASE = "/ai/fine_tuning/jobs"
Json = dict[str, Any]


@router.post(BASE)
def create_job(body: FineTuningJobCreate, container: ContainerDep, principal: TenantDep) -> Json:
    n_epochs = body.hyperparameters.n_epochs if body.hyperparameters else None
    n_epochs = None if n_epochs == "auto" else n_epochs
    return container.fine_tuning.create(
        principal.tenant_id, body.model, body.training_file, n_epochs, body.suffix
    )


@router.get(BASE)
def list_jobs(container: ContainerDep, principal: TenantDep) -> Json:
    return {"data": container.fine_tuning.list(principal.tenant_id)}


@router.get(BASE + "/{job_id}")
def get_job(job_id: str, container: ContainerDep, principal: TenantDep) -> Json:
    return container.fine_tuning.get(principal.tenant_id, job_id)


@router.post(BASE + "/{job_id}/cancel")
def cancel_job(job_id: str, container: ContainerDep, principal: TenantDep) -> Json:
    return container.fine_tuning.cancel(principal.tenant_id, job_id)


@router.get(BASE + "/{job_id}/events")
def list_events(
    job_id: str,
    container: ContainerDep,
    principal: TenantDep,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,  # an event seq: a 64-bit integer
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Json:
    return container.fine_tuning.events(principal.tenant_id, job_id, after, limit)
