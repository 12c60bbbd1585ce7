"""Usage metering of bucket ingestion and search (issue 18): the tokens an embedding task embeds are the
tenant's `embedding_tokens` per embedding model, as the embeddings API meters them, under the API key that
started the task (an auto-sync: the key whose write started it; a job queued without a key: key ""); a
similarity search meters its query's tokens under the searching key. Read through the admin usage endpoint
and `inferline usage`."""

from __future__ import annotations

import argparse
import json
import time

import boto3
import httpx
import pytest
import telnyx
from botocore.config import Config

from inferline.areas.buckets.ingest import JOB_KIND
from inferline.ops.cli import cmd_usage
from inferline.stores.embeddings_tables import EmbeddedBucket, EmbeddingTask
from tests.conftest import LiveServer, s3_auth

TENANT = "ops-ingest-usage"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
FINAL = {"success", "failure", "partial_success"}
FILES = {
    "late.txt": "My parcel arrived three days late and the box was crushed.",
    "refund.txt": "I would like a refund for the broken kettle, order 1182.",
}
LATER = "The courier left the parcel in the rain and the manual is soaked."


def _tenant_client(server: LiveServer, key: str) -> telnyx.Telnyx:
    return telnyx.Telnyx(api_key=key, base_url=server.v2, _strict_response_validation=True, max_retries=0)


def _s3(server: LiveServer, key: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(key),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def _tokens(client: telnyx.Telnyx, text: str) -> int:
    """What the embeddings API counts for `text` (tenant A's usage, not the tenant under test)."""
    return client.ai.openai.embeddings.create_embeddings(input=text, model=MINILM).usage.prompt_tokens


def _wait_idle(tenant: telnyx.Telnyx) -> None:
    """Until the tenant has no queued or processing task (auto-sync tasks included)."""
    deadline = time.monotonic() + 180
    while tenant.ai.embeddings.list().data:
        assert time.monotonic() < deadline, "the embedding tasks did not finish"
        time.sleep(0.2)


def _usage(server: LiveServer, tenant_id: str, by: str) -> list[tuple[str, int]]:
    """(grouping value, quantity) of the tenant's `embedding_tokens`, from the admin usage endpoint."""
    _, admin_key = server.container.keys.create("ops-ingest-admin", scope="admin")
    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
        response = admin.get("/admin/usage", params={"tenant_id": tenant_id, "by": by})
    assert response.status_code == 200
    field = "key_id" if by == "key" else by
    return [(r[field], r["quantity"]) for r in response.json()["data"] if r["metric"] == "embedding_tokens"]


def test_bucket_embedding_tokens_are_metered_under_the_key_that_started_the_task(
    server: LiveServer, client: telnyx.Telnyx, capsys: pytest.CaptureFixture[str]
) -> None:
    starter, key = server.container.keys.create(TENANT)
    writer, writer_key = server.container.keys.create(TENANT, name="writer")
    tenant = _tenant_client(server, key)
    s3 = _s3(server, key)
    s3.create_bucket(Bucket="metered-kb")
    for name, text in FILES.items():
        s3.put_object(Bucket="metered-kb", Key=name, Body=text.encode())
    expected = sum(_tokens(client, text) for text in FILES.values())

    task = tenant.ai.embeddings.create(bucket_name="metered-kb", embedding_model=MINILM)  # type: ignore[arg-type]
    deadline = time.monotonic() + 180
    while (status := tenant.ai.embeddings.retrieve(task.data.task_id).data.status) not in FINAL:
        assert time.monotonic() < deadline, "the embedding task did not finish"
        time.sleep(0.2)
    assert status == "success"
    assert _usage(server, TENANT, "model") == [(MINILM, expected)]
    assert _usage(server, TENANT, "key") == [(starter.id, expected)]

    # Another key's write starts an auto-sync: the file it embeds is that key's.
    _s3(server, writer_key).put_object(Bucket="metered-kb", Key="soaked.txt", Body=LATER.encode())
    _wait_idle(tenant)
    later = _tokens(client, LATER)
    assert _usage(server, TENANT, "key") == sorted([(starter.id, expected), (writer.id, later)])

    args = argparse.Namespace(tenant=TENANT, since=None, by="model", json=True)
    assert cmd_usage(server.container.settings, args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["quantity"] for r in printed if r["metric"] == "embedding_tokens"] == [expected + later]


def test_a_job_queued_without_a_key_is_metered_under_no_key(
    server: LiveServer, client: telnyx.Telnyx
) -> None:
    """A task queued before the key travelled with it (payload `{"task_id"}` only) still runs, key ""."""
    tenant_id = "ops-ingest-usage-old-job"
    _, key = server.container.keys.create(tenant_id)
    s3 = _s3(server, key)
    s3.create_bucket(Bucket="old-job")
    s3.put_object(Bucket="old-job", Key="late.txt", Body=FILES["late.txt"].encode())
    with server.container.db.session() as s:
        config = EmbeddedBucket(tenant_id=tenant_id, bucket="old-job", generation=0, embedding_model=MINILM)
        config.chunk_size, config.chunk_overlap = 1024, 512
        s.add(config)
        task = EmbeddingTask(tenant_id=tenant_id, bucket="old-job", task_name="embed_bucket", status="queued")
        s.add(task)
        s.flush()
        task_id = task.id
        server.container.jobs.enqueue(JOB_KIND, {"task_id": task_id}, tenant_id, session=s)
    tenant = _tenant_client(server, key)
    _wait_idle(tenant)
    assert tenant.ai.embeddings.retrieve(task_id).data.status == "success"
    assert _usage(server, tenant_id, "key") == [("", _tokens(client, FILES["late.txt"]))]


def test_similarity_search_meters_its_query_tokens(server: LiveServer, client: telnyx.Telnyx) -> None:
    tenant_id = "ops-search-usage"
    searcher, key = server.container.keys.create(tenant_id)
    tenant = _tenant_client(server, key)
    s3 = _s3(server, key)
    s3.create_bucket(Bucket="searched-kb")
    s3.put_object(Bucket="searched-kb", Key="late.txt", Body=FILES["late.txt"].encode())
    tenant.ai.embeddings.create(bucket_name="searched-kb", embedding_model=MINILM)  # type: ignore[arg-type]
    _wait_idle(tenant)
    ingested = _tokens(client, FILES["late.txt"])
    assert _usage(server, tenant_id, "key") == [(searcher.id, ingested)]

    query = "Where is my delayed parcel?"
    hits = tenant.ai.embeddings.similarity_search(bucket_name="searched-kb", query=query, num_of_docs=1)
    assert hits.data[0].document_chunk == FILES["late.txt"]
    searched = _tokens(client, query)
    assert _usage(server, tenant_id, "key") == [(searcher.id, ingested + searched)]
    assert _usage(server, tenant_id, "model") == [(MINILM, ingested + searched)]
