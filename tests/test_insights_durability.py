"""Insight runs are durable jobs: a run whose workers keep dying fails with a reason; none vanish.

Uses its own container on a fresh database with a short job lease, and claims the run's job with worker ids
that never renew (a worker killed mid-run), so the lease expires and the queue takes the job over.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from inferline.config import Settings
from inferline.container import Container, build_container
from inferline.jobs import Worker
from inferline.services.insights import RUN_KIND
from tests.conftest import MODELS_DIR
from tests.databases import DatabaseFactory

LEASE = 0.3


@pytest.fixture
def durable(tmp_path, databases: DatabaseFactory) -> Iterator[Container]:  # type: ignore[no-untyped-def]
    settings = Settings(
        data_dir=tmp_path,
        INFERLINE_MODELS_DIR=MODELS_DIR,
        database_url=databases.new("durability"),
        profile="test",
        job_lease_seconds=LEASE,
        embedded_worker=False,
        log_level="warning",
    )
    container = build_container(settings)
    yield container
    container.close()


def make_run(container: Container, tenant: str = "t-durable") -> str:
    conv = container.conversations.create(tenant, name="crash", metadata={})
    container.conversations.add_message(tenant, conv["id"], role="user", content="My parcel never arrived.")
    template = container.insights.create_template(tenant, name="issue", instructions="What is the issue?")
    group = container.insights.create_group(tenant, name="g")
    container.insights.assign(tenant, group["id"], template["id"])
    run = container.insights.trigger_run(tenant, conv["id"], group["id"])
    assert run["status"] == "pending"
    return str(run["id"])


def die_mid_run(container: Container, worker_id: str) -> None:
    """A worker claims the run, starts it, and is killed (it never renews its lease nor finishes)."""
    job = container.jobs.claim(worker_id, [RUN_KIND])
    assert job is not None and job.status == "running"
    time.sleep(LEASE + 0.1)


def test_run_whose_workers_keep_dying_fails_with_reason(durable: Container) -> None:
    run_id = make_run(durable)
    for n in range(3):  # max_attempts of an insight run
        die_mid_run(durable, f"dead-{n}")
        assert durable.insights.get_run("t-durable", run_id)["status"] in ("pending", "in_progress")
    Worker(durable.jobs, durable.job_registry, worker_id="survivor").run_once()
    run = durable.insights.get_run("t-durable", run_id)
    assert run["status"] == "failed"
    assert "lease expired" in run["error"]
    assert run["finished_at"] is not None


def test_failed_run_is_listed_with_its_reason(durable: Container) -> None:
    run_id = make_run(durable, "t-list")
    for n in range(3):
        die_mid_run(durable, f"dead-{n}")
    Worker(durable.jobs, durable.job_registry).run_once()
    conv_id = durable.insights.get_run("t-list", run_id)["conversation_id"]
    runs, total = durable.insights.list_runs("t-list", conv_id, 0, 20)
    assert total == 1 and runs[0]["id"] == run_id and runs[0]["status"] == "failed" and runs[0]["error"]
