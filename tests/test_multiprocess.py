"""Scale-out with real processes: two API replicas and two workers share one database and one S3 store.

Two `inferline serve` processes (INFERLINE_EMBEDDED_WORKER=false, started at the same moment) and two
`inferline worker` processes use one database (PostgreSQL in the PostgreSQL pass of `make test`) and one
S3-compatible object store: a third inferline process's `/s3` endpoint, reached by `INFERLINE_S3_ENDPOINT`.
Each process has its own data directory, so the database and the store are all they share. The job is the real
bucket embedding ingestion (`embed_bucket`); a worker killed with SIGKILL mid-job loses no accepted job.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
import telnyx
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import text

from inferline.areas.buckets.ingest import JOB_KIND
from inferline.stores.db import Database
from tests.conftest import s3_auth
from tests.databases import DatabaseFactory
from tests.procs import Proc, Processes, base_env

STORE_KEY = "KEYstore-0123456789abcdef"
KEY_A = "KEYscale-tenant-a-0123456789"
LEASE_SECONDS = 4
FINAL = {"success", "failure", "partial_success"}
TOPICS = ["harbour cranes", "orbital mechanics", "sourdough baking", "glacier melt", "jazz harmony"]


@dataclass
class Cluster:
    apis: list[Proc]
    workers: list[Proc]
    db: Database
    key_b: str
    procs: Processes
    worker_env: dict[str, str]

    def telnyx(self, n: int, key: str = KEY_A) -> telnyx.Telnyx:
        return telnyx.Telnyx(
            api_key=key, base_url=f"{self.apis[n].url}/v2", _strict_response_validation=True, max_retries=0
        )

    def s3(self, n: int, key: str = KEY_A) -> BaseClient:
        return boto3.client(
            "s3",
            endpoint_url=f"{self.apis[n].url}/s3",
            **s3_auth(key),
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
        )

    def job_rows(self) -> list[tuple[str, str, str | None, int, dict]]:
        with self.db.session() as s:
            rows = s.execute(
                text("SELECT id, status, lease_owner, attempts, payload FROM jobs WHERE kind = :k"),
                {"k": JOB_KIND},
            ).all()
        return [(r[0], r[1], r[2], r[3], r[4] if isinstance(r[4], dict) else json.loads(r[4])) for r in rows]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Iterator[Cluster]:
    procs = Processes(tmp_path_factory.mktemp("scale-logs"))
    try:
        store_dir = tmp_path_factory.mktemp("store")
        store = procs.serve(
            "store", base_env(store_dir, f"sqlite:///{store_dir / 'store.db'}", INFERLINE_API_KEY=STORE_KEY)
        )
        url = databases.new("cluster")

        def env(name: str) -> dict[str, str]:
            return base_env(
                tmp_path_factory.mktemp(name),
                url,
                INFERLINE_API_KEY=KEY_A,
                INFERLINE_EMBEDDED_WORKER="false",
                INFERLINE_JOB_LEASE_SECONDS=str(LEASE_SECONDS),
                INFERLINE_S3_ENDPOINT=f"{store.url}/s3",
                INFERLINE_S3_ACCESS_KEY=s3_auth(STORE_KEY)["aws_access_key_id"],
                INFERLINE_S3_SECRET_KEY=s3_auth(STORE_KEY)["aws_secret_access_key"],
                INFERLINE_S3_BUCKET="cluster-objects",
            )

        # Replicas start together on an empty database: migrations and key seeding must not race.
        starting = [procs.spawn_server(f"api{n}", env(f"api{n}")) for n in (1, 2)]
        starting += [procs.spawn_worker(f"worker{n}", env(f"worker{n}")) for n in (1, 2)]
        apis = [procs.wait_healthy(p) for p in starting[:2]]
        workers = [procs.wait_worker(p) for p in starting[2:]]
        created = procs.cli(["keys", "create", "--tenant", "tenant-b"], env("cli"))
        key_b = re.search(r"key:\s+(\S+)", created).group(1)  # type: ignore[union-attr]
        db = Database(url)
        yield Cluster(apis, workers, db, key_b, procs, env("spare-worker"))
        db.dispose()
    finally:
        procs.stop_all()


def document(topic: str, lines: int) -> bytes:
    return "\n".join(
        f"Note {i} on {topic}: observation {i * 7 % 101} was made in sector {i % 13} of the {topic} survey."
        for i in range(lines)
    ).encode()


def wait_tasks(client: telnyx.Telnyx, task_ids: list[str], timeout: float = 240) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    done: dict[str, str] = {}
    while time.monotonic() < deadline:
        for task_id in task_ids:
            if task_id not in done:
                status = str(client.ai.embeddings.retrieve(task_id).data.status)
                if status in FINAL:
                    done[task_id] = status
        if len(done) == len(task_ids):
            return done
        time.sleep(0.2)
    raise AssertionError(f"tasks did not finish: {set(task_ids) - set(done)}")


def wait_job(cluster: Cluster, task_id: str, timeout: float = 30) -> tuple[str, int]:
    """(status, attempts) of the task's job once final (the task is marked before its job is)."""
    deadline = time.monotonic() + timeout
    while True:
        (job,) = [(st, a) for _, st, _, a, p in cluster.job_rows() if p.get("task_id") == task_id]
        if job[0] not in ("queued", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_replicas_share_one_database_and_one_store(cluster: Cluster) -> None:
    s3_1, s3_2 = cluster.s3(0), cluster.s3(1)
    s3_1.create_bucket(Bucket="shared-docs")
    for topic in TOPICS[:3]:
        s3_1.put_object(Bucket="shared-docs", Key=f"{topic}.txt", Body=document(topic, 12))
    listed = {o["Key"] for o in s3_2.list_objects_v2(Bucket="shared-docs")["Contents"]}
    assert listed == {f"{topic}.txt" for topic in TOPICS[:3]}

    # Accepted by one replica, run by a worker process, read back through the other replica.
    task = cluster.telnyx(1).ai.embeddings.create(
        bucket_name="shared-docs", document_chunk_size=400, document_chunk_overlap_size=50
    )
    assert wait_tasks(cluster.telnyx(0), [task.data.task_id]) == {task.data.task_id: "success"}
    hits = cluster.telnyx(0).ai.embeddings.similarity_search(
        bucket_name="shared-docs", query="baking bread with a sourdough starter", num_of_docs=1
    )
    assert hits.data[0].metadata.filename == "sourdough baking.txt"

    # The other tenant sees none of it, through either replica and either API.
    with pytest.raises(telnyx.NotFoundError):
        cluster.telnyx(0, cluster.key_b).ai.embeddings.similarity_search(bucket_name="shared-docs", query="x")
    with pytest.raises(ClientError):
        cluster.s3(1, cluster.key_b).list_objects_v2(Bucket="shared-docs")
    assert "shared-docs" not in [b["Name"] for b in cluster.s3(0, cluster.key_b).list_buckets()["Buckets"]]


def test_jobs_are_spread_over_both_workers(cluster: Cluster) -> None:
    owners: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            owners.update(owner.split(":")[1] for _, _, owner, _, _ in cluster.job_rows() if owner)
            time.sleep(0.05)

    task_ids = []
    for n, topic in enumerate(TOPICS[:4]):
        bucket = f"spread-{n}"
        s3 = cluster.s3(n % 2)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="notes.txt", Body=document(topic, 80))
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for n in range(4):
            created = cluster.telnyx(n % 2).ai.embeddings.create(
                bucket_name=f"spread-{n}", document_chunk_size=400, document_chunk_overlap_size=50
            )
            task_ids.append(created.data.task_id)
        assert set(wait_tasks(cluster.telnyx(0), task_ids).values()) == {"success"}
    finally:
        stop.set()
        watcher.join()
    assert owners == {str(w.pid) for w in cluster.workers}, owners


def test_kill9_of_a_worker_mid_job_loses_no_accepted_job(cluster: Cluster) -> None:
    api = cluster.telnyx(0)
    s3 = cluster.s3(1)
    for bucket, lines in (("big", 700), ("after-1", 30), ("after-2", 30)):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="doc.txt", Body=document(bucket, lines))
    big = api.ai.embeddings.create(
        bucket_name="big", document_chunk_size=400, document_chunk_overlap_size=50
    ).data.task_id

    deadline = time.monotonic() + 60
    owner = None
    while owner is None:
        assert time.monotonic() < deadline, "the big job was never claimed"
        owner = next(
            (o for _, st, o, _, p in cluster.job_rows() if p.get("task_id") == big and st == "running" and o),
            None,
        )
        time.sleep(0.02)
    victim = next(w for w in cluster.workers if str(w.pid) == owner.split(":")[1])
    victim.kill9()
    survivor = next(w for w in cluster.workers if w is not victim)
    (state,) = [(st, a) for _, st, _, a, p in cluster.job_rows() if p.get("task_id") == big]
    assert state == ("running", 1), f"the job was not mid-run when its worker died: {state}"

    # Jobs accepted after the kill, while only one worker is left, are not lost either.
    later = [api.ai.embeddings.create(bucket_name=b).data.task_id for b in ("after-1", "after-2")]
    assert wait_tasks(api, [big, *later]) == dict.fromkeys([big, *later], "success")
    assert survivor.alive()

    big_job = wait_job(cluster, big)
    assert big_job == ("succeeded", 2)  # taken over after the lease expired, run once more, not duplicated
    with cluster.db.session() as s:
        rows, distinct = s.execute(
            text(
                "SELECT count(*), count(DISTINCT chunk_index) FROM embedding_chunks "
                "WHERE bucket = 'big' AND filename = 'doc.txt'"
            )
        ).one()
        recorded = s.execute(
            text("SELECT chunks, status FROM embedded_files WHERE bucket = 'big' AND filename = 'doc.txt'")
        ).one()
    assert rows == distinct == recorded[0] > 100 and recorded[1] == "success"

    # A replacement worker joins the same queue.
    cluster.workers = [survivor, cluster.procs.worker("worker3", cluster.worker_env)]
    s3.create_bucket(Bucket="after-3")
    s3.put_object(Bucket="after-3", Key="doc.txt", Body=document("after-3", 20))
    task = cluster.telnyx(1).ai.embeddings.create(bucket_name="after-3").data.task_id
    assert wait_tasks(api, [task]) == {task: "success"}


def test_worker_stops_cleanly_on_sigterm(
    tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory
) -> None:
    procs = Processes(tmp_path_factory.mktemp("sigterm-logs"))
    try:
        worker = procs.worker("lonely", base_env(tmp_path_factory.mktemp("lonely"), databases.new("sigterm")))
        worker.popen.terminate()
        assert worker.popen.wait(30) == 0, worker.output()
    finally:
        procs.stop_all()


# Loaded by the worker's Python at start-up (`sitecustomize`): it pauses right after the worker reports its
# job kinds, the moment an orchestrator or a test may send SIGTERM.
PAUSE_AFTER_REPORT = """
import builtins, sys, time
_print = builtins.print
def print(*args, **kwargs):
    _print(*args, **kwargs)
    if args and "running job kinds" in str(args[0]):
        sys.stdout.flush()
        time.sleep(5)
builtins.print = print
"""


def test_a_sigterm_right_after_the_worker_reports_stops_it_cleanly(
    tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory
) -> None:
    """Its SIGTERM handler is in place before it says it runs (the report came first once: killed, -15)."""
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(PAUSE_AFTER_REPORT)
    env = base_env(tmp_path_factory.mktemp("prompt"), databases.new("sigterm_prompt"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    procs = Processes(tmp_path_factory.mktemp("sigterm-prompt-logs"))
    try:
        worker = procs.worker("prompt", env)
        worker.popen.terminate()
        assert worker.popen.wait(30) == 0, worker.output()
        assert "Traceback" not in worker.output()
    finally:
        procs.stop_all()
