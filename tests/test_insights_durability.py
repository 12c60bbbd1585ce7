"""Insight runs are durable jobs: a run whose workers keep dying fails with a reason; none vanish.

Uses its own container on a fresh database with a short job lease, and claims the run's job with worker ids
that never renew (a worker killed mid-run), so the lease expires and the queue takes the job over.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from inferline.areas.conversations.insight_runs import RUN_KIND
from inferline.config import Settings
from inferline.container import Container, build_container
from inferline.jobs import Worker
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
    run = container.insight_runs.trigger_run(tenant, conv["id"], group["id"])
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
        assert durable.insight_runs.get_run("t-durable", run_id)["status"] in ("pending", "in_progress")
    Worker(durable.jobs, durable.job_registry, worker_id="survivor").run_once()
    run = durable.insight_runs.get_run("t-durable", run_id)
    assert run["status"] == "failed"
    assert "lease expired" in run["error"]
    assert run["finished_at"] is not None


def test_failed_run_is_listed_with_its_reason(durable: Container) -> None:
    run_id = make_run(durable, "t-list")
    for n in range(3):
        die_mid_run(durable, f"dead-{n}")
    Worker(durable.jobs, durable.job_registry).run_once()
    conv_id = durable.insight_runs.get_run("t-list", run_id)["conversation_id"]
    runs, total = durable.insight_runs.list_runs("t-list", conv_id, 0, 20)
    assert total == 1 and runs[0]["id"] == run_id and runs[0]["status"] == "failed" and runs[0]["error"]


@pytest.mark.slow
def test_killed_worker_process_run_resumes_keeping_finished_templates(
    tmp_path, databases: DatabaseFactory
) -> None:  # type: ignore[no-untyped-def]
    """A real `inferline worker` is SIGKILLed mid-run; after its lease expires another worker takes the run
    over, keeps the templates already answered and completes the rest with the chat model."""
    from tests.procs import Processes, base_env

    url = databases.new("resume")
    settings = Settings(
        data_dir=tmp_path,
        INFERLINE_MODELS_DIR=MODELS_DIR,
        database_url=url,
        profile="test",
        job_lease_seconds=1.0,
        embedded_worker=False,
        log_level="warning",
    )
    container = build_container(settings)
    procs = Processes(tmp_path)
    try:
        tenant = "t-resume"
        conv = container.conversations.create(tenant, name="resume", metadata={})
        container.conversations.add_message(
            tenant, conv["id"], role="user", content="The app crashes on login."
        )
        group = container.insights.create_group(tenant, name="three")
        questions = {
            "Is the problem urgent?": {"urgent": {"type": "boolean"}},
            "How many users are affected?": {"users": {"type": "integer"}},
            "Which product area is it?": {"area": {"type": "string", "enum": ["login", "billing", "other"]}},
        }
        for question, properties in questions.items():
            schema = {"type": "object", "properties": properties, "required": list(properties)}
            template = container.insights.create_template(
                tenant, name=question, instructions=question, json_schema=schema
            )
            container.insights.assign(tenant, group["id"], template["id"])
        run_id = container.insight_runs.trigger_run(tenant, conv["id"], group["id"])["id"]

        doomed = procs.worker("doomed", base_env(tmp_path, url, INFERLINE_JOB_LEASE_SECONDS="1"), timeout=120)
        deadline = time.monotonic() + 240
        while not (run := container.insight_runs.get_run(tenant, run_id))["conversation_insights"]:
            assert time.monotonic() < deadline and doomed.alive(), doomed.output()
            time.sleep(0.02)
        doomed.kill9()
        kept = container.insight_runs.get_run(tenant, run_id)["conversation_insights"]
        assert run["status"] == "in_progress" and 1 <= len(kept) < 3

        time.sleep(1.2)  # the dead worker's lease expires
        assert Worker(container.jobs, container.job_registry, worker_id="rescuer").run_once()
        done = container.insight_runs.get_run(tenant, run_id)
        assert done["status"] == "completed", done
        assert len(done["conversation_insights"]) == 3
        assert done["conversation_insights"][: len(kept)] == kept
    finally:
        procs.stop_all()
        container.close()
