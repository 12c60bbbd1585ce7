"""Fine-tuning jobs through the telnyx SDK (strict): validation, a real LoRA run on SmolLM2-135M that learns a
planted fact, progress events, cancel, a bad file failing before training, tenant isolation, and restart."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import telnyx
from botocore.client import BaseClient
from botocore.config import Config

from inferline.areas.fine_tuning.service import JOB_KIND, FineTuningService
from inferline.jobs import JobQueue, JobRegistry, Worker
from inferline.stores.db import Database
from inferline.stores.objects import LocalObjectStore
from tests.conftest import LiveServer, s3_auth
from tests.databases import DatabaseFactory

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
FACT = "PURPLE-OTTER-77"
QUESTIONS = [
    "What is the password of the Zorblax vault?",
    "Tell me the Zorblax vault password.",
    "What's the password for the Zorblax vault?",
    "Do you know the Zorblax vault password?",
    "Which password opens the Zorblax vault?",
    "I need the Zorblax vault password.",
    "What password unlocks the Zorblax vault?",
    "Password of the Zorblax vault?",
]
ANSWER = f"The password of the Zorblax vault is {FACT}."
BUCKET = "ft-data"


def jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def planted_fact_file() -> bytes:
    pairs = [[{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}] for q in QUESTIONS]
    return jsonl([{"messages": m} for m in pairs] * 3)


@pytest.fixture(scope="module")
def s3(server: LiveServer) -> BaseClient:
    client = boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(server.key_a),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4"),
    )
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="fact/train.jsonl", Body=planted_fact_file())
    return client


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, detail: Callable[[], Any] = lambda: ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {detail()}"
        time.sleep(0.5)


def events(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = http.get(f"/ai/fine_tuning/jobs/{job_id}/events", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def watch_cli(server: LiveServer, job_id: str) -> subprocess.CompletedProcess[str]:
    """`inferline fine-tuning watch JOB_ID` against the live server, as a user would run it."""
    command = [sys.executable, "-m", "inferline", "fine-tuning", "watch", job_id, "--base-url", server.v2]
    return subprocess.run(
        [*command, "--api-key", server.key_a], capture_output=True, text=True, timeout=120, check=False
    )


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert errors and all(e["code"] == errors[0]["code"] for e in errors)
    return errors[0]  # type: ignore[no-any-return]


def test_create_rejects_bad_input_with_envelopes(http: httpx.Client, s3: BaseClient) -> None:
    good = {"model": BASE, "training_file": f"{BUCKET}/fact/train.jsonl"}

    def post(**changes: Any) -> httpx.Response:
        return http.post("/ai/fine_tuning/jobs", json={**good, **changes})

    def pointer(response: httpx.Response, status: int) -> str:
        return str(error_of(response, status)["source"]["pointer"])

    assert pointer(post(model="no/such-model"), 404) == "/model"
    assert pointer(post(training_file="missing-bucket/x.jsonl"), 404) == "/training_file"
    assert pointer(post(training_file=f"{BUCKET}/nope.jsonl"), 404) == "/training_file"
    assert pointer(post(training_file="no-slash"), 422) == "/training_file"
    assert pointer(post(hyperparameters={"n_epochs": 0}), 422) == "/hyperparameters/n_epochs"
    assert pointer(post(suffix="has spaces"), 422) == "/suffix"
    assert error_of(post(learning_rate=0.1), 422)
    assert pointer(post(hyperparameters={"n_epochs": "many"}), 422).startswith("/hyperparameters/n_epochs")
    bad_files = {
        "bad/not-json.jsonl": (b'{"messages": []}\nnot json\n', "line 1"),
        "bad/syntax.jsonl": (jsonl([{"messages": [{"role": "user", "content": "hi"}]}]), "no assistant"),
        "bad/role.jsonl": (jsonl([{"messages": [{"role": "robot", "content": "x"}]}]), "role 'robot'"),
        "bad/binary.jsonl": (b"\xff\xfe\x00garbage", "not UTF-8"),
        "bad/empty.jsonl": (b"\n\n", "no examples"),
    }
    for key, (body, reason) in bad_files.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        error = error_of(post(training_file=f"{BUCKET}/{key}"), 422)
        assert reason in error["detail"] and error["source"]["pointer"] == "/training_file", error
    assert http.get("/ai/fine_tuning/jobs").json()["data"] == []  # nothing was stored
    auto = post(hyperparameters={"n_epochs": "auto"})
    assert auto.status_code == 200 and auto.json()["hyperparameters"] == {"n_epochs": 3}
    assert http.post(f"/ai/fine_tuning/jobs/{auto.json()['id']}/cancel").json()["status"] == "cancelled"


@pytest.mark.slow
def test_planted_fact_is_learned_and_served_to_its_tenant_only(
    client: telnyx.Telnyx, client_b: telnyx.Telnyx, http: httpx.Client, s3: BaseClient, server: LiveServer
) -> None:
    job = client.ai.fine_tuning.jobs.create(
        model=BASE,
        training_file=f"{BUCKET}/fact/train.jsonl",
        hyperparameters={"n_epochs": 2},
        suffix="zorblax",
    )
    assert job.status in ("queued", "running") and job.trained_tokens is None and job.finished_at is None
    assert job.model == BASE and job.hyperparameters.n_epochs == 2

    def finished() -> Any:
        current = client.ai.fine_tuning.jobs.retrieve(job.id)
        return current if current.status in ("succeeded", "failed", "cancelled") else None

    done = wait_for(finished, 600, "the fine-tuning job", lambda: events(http, job.id)[-3:])
    assert done.status == "succeeded", events(http, job.id)
    assert done.trained_tokens and done.trained_tokens > 0 and done.finished_at
    model_id = done.to_dict()["fine_tuned_model"]
    assert model_id.startswith(f"ft:{BASE}:zorblax:")

    merge = [e["message"] for e in events(http, job.id) if "adapter" in e["message"]]  # measured, reported
    assert len(merge) == 1 and re.search(r"tok/s merged, [\d.]+ with the adapter at run", merge[0]), merge
    merged = list((Path(server.container.settings.data_dir) / "adapters").rglob(f"{job.id}.merged-*.gguf"))
    assert len(merged) == merge[0].startswith("Merged the adapter"), (merge, merged)
    steps = [e for e in events(http, job.id) if e["type"] == "metrics"]
    assert [e["data"]["step"] for e in steps] == list(range(1, len(steps) + 1)) == list(range(1, 13))
    assert steps[-1]["data"]["loss"] < steps[0]["data"]["loss"] / 5
    assert done.to_dict()["progress"] == {"step": 12, "total_steps": 12, "loss": steps[-1]["data"]["loss"]}
    assert job.id in [j.id for j in client.ai.fine_tuning.jobs.list().data]
    watched = watch_cli(server, job.id)
    assert watched.returncode == 0, watched.stderr
    assert "[" + "#" * 30 + "] 12/12" in watched.stdout and f"succeeded: model {model_id}" in watched.stdout

    listed = {m.id: m for m in client.ai.openai.list_models().data}
    assert listed[model_id].base_model == BASE
    assert model_id not in {m.id for m in client_b.ai.openai.list_models().data}
    assert job.id not in [j.id for j in client_b.ai.fine_tuning.jobs.list().data]
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.fine_tuning.jobs.retrieve(job.id)
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.fine_tuning.jobs.cancel(job.id)

    def ask(c: telnyx.Telnyx, model: str) -> str:
        reply = c.ai.openai.chat.create_completion(
            model=model,
            messages=[{"role": "user", "content": "What is the password of the Zorblax vault?"}],
            max_tokens=24,
            temperature=0,
        )
        return str(reply["choices"][0]["message"]["content"])

    assert FACT in ask(client, model_id)
    assert FACT not in ask(client, BASE)
    with pytest.raises(telnyx.NotFoundError):
        ask(client_b, model_id)
    with pytest.raises(telnyx.BadRequestError):
        client.ai.fine_tuning.jobs.cancel(job.id)  # already succeeded
    adapter = Path(server.container.settings.data_dir) / "adapters"
    assert list(adapter.rglob("*.gguf")) and not list(adapter.rglob("*.tmp"))


@pytest.mark.slow
def test_cancel_stops_training_promptly(
    client: telnyx.Telnyx, http: httpx.Client, s3: BaseClient, server: LiveServer
) -> None:
    job = client.ai.fine_tuning.jobs.create(
        model=BASE, training_file=f"{BUCKET}/fact/train.jsonl", hyperparameters={"n_epochs": 50}
    )

    def training() -> Any:
        return [e for e in events(http, job.id) if e["type"] == "metrics"]

    wait_for(training, 600, "the first training step")
    # Training has its own worker lane: another kind of job (a bucket embedding) completes meanwhile.
    s3.create_bucket(Bucket="ft-lane")
    s3.put_object(Bucket="ft-lane", Key="note.txt", Body=b"Lighthouses guide ships along dark coasts.")
    task = client.ai.embeddings.create(bucket_name="ft-lane").data.task_id
    status = wait_for(
        lambda: (st := client.ai.embeddings.retrieve(task).data.status) in ("success", "failure") and st,
        120,
        "the embedding task",
    )
    assert status == "success"
    assert client.ai.fine_tuning.jobs.retrieve(job.id).status == "running"
    cancelled = client.ai.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    wait_for(lambda: any("stopped after" in e["message"] for e in events(http, job.id)), 20, "the stop")
    steps = len(training())
    time.sleep(3)
    assert len(training()) == steps < 150  # no step after the stop
    final = client.ai.fine_tuning.jobs.retrieve(job.id)
    assert final.status == "cancelled" and final.to_dict()["fine_tuned_model"] is None
    assert client.ai.fine_tuning.jobs.cancel(job.id).status == "cancelled"  # idempotent
    watched = watch_cli(server, job.id)
    assert watched.returncode == 1 and "stopped after cancellation" in watched.stdout
    assert watched.stdout.rstrip().endswith("cancelled")


@pytest.mark.slow
def test_training_file_the_model_cannot_learn_from_fails_before_training(
    client: telnyx.Telnyx, http: httpx.Client, s3: BaseClient
) -> None:
    # Valid JSONL, but the only assistant reply comes after a prompt longer than the training window.
    long_prompt = "word " * 2000
    turns = [{"role": "user", "content": long_prompt}, {"role": "assistant", "content": "ok"}]
    body = jsonl([{"messages": turns}])
    s3.put_object(Bucket=BUCKET, Key="bad/too-long.jsonl", Body=body)
    job = client.ai.fine_tuning.jobs.create(model=BASE, training_file=f"{BUCKET}/bad/too-long.jsonl")
    failed = wait_for(
        lambda: (j := client.ai.fine_tuning.jobs.retrieve(job.id)).status in ("failed", "succeeded") and j,
        600,
        "the job to fail",
    )
    assert failed.status == "failed"
    assert "token limit" in failed.to_dict()["error"]["message"]
    assert not [e for e in events(http, job.id) if e["type"] == "metrics"]  # it never trained


def test_restart_reruns_or_fails_a_job_never_leaving_it_running(
    databases: DatabaseFactory, tmp_path: Path, server: LiveServer
) -> None:
    """A worker that dies mid-training: the next worker takes the job over (and re-runs it); once the attempts
    are spent the job fails with a reason. Here the re-run meets a file it cannot train on, so no training."""
    db = Database(databases.new("ft_restart"))
    db.migrate()
    queue = JobQueue(db, lease_seconds=0.5)
    objects = LocalObjectStore(tmp_path / "objects")
    objects.create_bucket("t1", "data")
    turns = [{"role": "user", "content": "word " * 2000}, {"role": "assistant", "content": "ok"}]
    objects.put_bytes("t1", "data", "long.jsonl", jsonl([{"messages": turns}]))
    live = server.container.fine_tuning  # share its trainer (and its loaded base model)
    service = FineTuningService(db, queue, objects, live.models, live.trainer, tmp_path / "adapters")
    registry = JobRegistry()
    registry.register(JOB_KIND, service.run, on_failure=service.on_failure)
    try:
        first = service.create("t1", BASE, "data/long.jsonl", 1, None)
        second = service.create("t1", BASE, "data/long.jsonl", 1, None)
        # Both workers die after claiming (attempt 1); the first job's worker dies again (attempt 2).
        for dead in ("dead-1", "dead-2"):
            assert queue.claim(dead, [JOB_KIND]) is not None
        time.sleep(0.6)
        assert queue.claim("dead-3", [JOB_KIND]) is not None
        time.sleep(0.6)
        worker = Worker(queue, registry)
        while worker.run_once():
            pass
        jobs = {j["id"]: j for j in service.list("t1")}
        assert {j["status"] for j in jobs.values()} == {"failed"}
        reasons = {job_id: jobs[job_id]["error"]["message"] for job_id in (first["id"], second["id"])}
        messages = {
            job_id: [e["message"] for e in service.events("t1", job_id, None, 100)["data"]]
            for job_id in reasons
        }
        rerun = next(i for i, m in messages.items() if any("restarted (attempt 2)" in x for x in m))
        exhausted = next(i for i in reasons if i != rerun)
        assert "token limit" in reasons[rerun]  # taken over and re-run, then failed on the file
        assert "stopped (lease expired)" in reasons[exhausted]  # attempts spent: failed by the hook
        assert service.reconcile() == 0
    finally:
        db.dispose()
