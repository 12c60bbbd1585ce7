"""Usage metering of bucket ingestion (issue 18): the tokens an embedding task embeds are the tenant's
`embedding_tokens` (key "": a background job) per embedding model, as the embeddings API meters them, in the
admin usage endpoint and `inferline usage`."""

from __future__ import annotations

import argparse
import json
import time

import boto3
import httpx
import pytest
import telnyx
from botocore.config import Config

from inferline.ops.cli import cmd_usage
from tests.conftest import LiveServer, s3_auth

TENANT = "ops-ingest-usage"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
FINAL = {"success", "failure", "partial_success"}
FILES = {
    "late.txt": "My parcel arrived three days late and the box was crushed.",
    "refund.txt": "I would like a refund for the broken kettle, order 1182.",
}


def test_bucket_embedding_tokens_are_metered(
    server: LiveServer, client: telnyx.Telnyx, capsys: pytest.CaptureFixture[str]
) -> None:
    _, key = server.container.keys.create(TENANT)
    _, admin_key = server.container.keys.create("ops-ingest-admin", scope="admin")
    tenant = telnyx.Telnyx(api_key=key, base_url=server.v2, _strict_response_validation=True, max_retries=0)
    s3 = boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(key),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    s3.create_bucket(Bucket="metered-kb")
    for name, text in FILES.items():
        s3.put_object(Bucket="metered-kb", Key=name, Body=text.encode())
    # What the embeddings API counts for the same texts (tenant A's usage, not this tenant's).
    expected = sum(
        client.ai.openai.embeddings.create_embeddings(input=text, model=MINILM).usage.prompt_tokens
        for text in FILES.values()
    )

    task = tenant.ai.embeddings.create(bucket_name="metered-kb", embedding_model=MINILM)  # type: ignore[arg-type]
    deadline = time.monotonic() + 180
    while (status := tenant.ai.embeddings.retrieve(task.data.task_id).data.status) not in FINAL:
        assert time.monotonic() < deadline, "the embedding task did not finish"
        time.sleep(0.2)
    assert status == "success"

    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
        by_model = admin.get("/admin/usage", params={"tenant_id": TENANT, "by": "model"})
        by_key = admin.get("/admin/usage", params={"tenant_id": TENANT, "by": "key"})
    assert by_model.status_code == 200 and by_key.status_code == 200
    tokens = [r for r in by_model.json()["data"] if r["metric"] == "embedding_tokens"]
    assert tokens == [
        {
            "tenant_id": TENANT,
            "metric": "embedding_tokens",
            "unit": "tokens",
            "model": MINILM,
            "quantity": expected,
        }
    ]
    assert [
        (r["key_id"], r["quantity"]) for r in by_key.json()["data"] if r["metric"] == "embedding_tokens"
    ] == [("", expected)]

    args = argparse.Namespace(tenant=TENANT, since=None, by="model", json=True)
    assert cmd_usage(server.container.settings, args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["quantity"] for r in printed if r["metric"] == "embedding_tokens"] == [expected]
