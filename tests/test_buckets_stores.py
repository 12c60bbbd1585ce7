"""One contract, every ObjectStore: the local filesystem store and `S3ObjectStore` over a real S3 protocol
server (inferline's own S3 endpoint); then a whole inferline server whose objects live on S3."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import telnyx
import uvicorn

from inferline.app import create_app
from inferline.config import Settings
from inferline.container import build_container
from inferline.keys import s3_credentials
from inferline.stores.objects import (
    BucketAlreadyExists,
    BucketNotEmpty,
    InvalidBucketName,
    LocalObjectStore,
    NoSuchBucket,
    NoSuchKey,
    ObjectStore,
    S3ObjectStore,
)
from tests.conftest import LiveServer, free_port, s3_auth
from tests.databases import DatabaseFactory


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, server: LiveServer) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    backing = f"backing-{time.monotonic_ns()}"
    access_key, secret_key = s3_credentials(server.key_a)
    return S3ObjectStore(server.url + "/s3", bucket=backing, access_key=access_key, secret_key=secret_key)


def test_object_store_contract(store: ObjectStore) -> None:
    assert not store.bucket_exists("t1", "docs")
    with pytest.raises(NoSuchBucket):
        store.put_bytes("t1", "docs", "a.txt", b"x")
    store.create_bucket("t1", "docs")
    with pytest.raises(BucketAlreadyExists):
        store.create_bucket("t1", "docs")
    with pytest.raises(InvalidBucketName):
        store.create_bucket("t1", "No_Good")
    info = store.put_bytes("t1", "docs", "dir/a.txt", b"alpha", "text/plain")
    assert (info.size, info.etag) == (5, "2c1743a391305fbf367df8e4f069f9f9")
    store.put_stream("t1", "docs", "b.bin", iter([b"be", b"ta"]))
    assert store.get_bytes("t1", "docs", "dir/a.txt") == b"alpha"
    assert store.head("t1", "docs", "b.bin").size == 4
    assert [o.key for o in store.list_objects("t1", "docs")] == ["b.bin", "dir/a.txt"]
    assert [o.key for o in store.list_objects("t1", "docs", prefix="dir/")] == ["dir/a.txt"]
    store.put_bytes("t1", "docs", "dir/a.txt", b"alpha v2")
    _, chunks = store.open("t1", "docs", "dir/a.txt")
    assert b"".join(chunks) == b"alpha v2"
    with pytest.raises(NoSuchKey):
        store.get_bytes("t1", "docs", "missing")
    # Tenants: same bucket name, different bucket.
    assert not store.bucket_exists("t2", "docs") and store.list_buckets("t2") == []
    with pytest.raises(NoSuchBucket):
        store.get_bytes("t2", "docs", "dir/a.txt")
    assert [b.name for b in store.list_buckets("t1")] == ["docs"]
    with pytest.raises(BucketNotEmpty):
        store.delete_bucket("t1", "docs")
    assert store.delete("t1", "docs", "dir/a.txt") and not store.delete("t1", "docs", "dir/a.txt")
    store.delete("t1", "docs", "b.bin")
    store.delete_bucket("t1", "docs")
    assert not store.bucket_exists("t1", "docs")


@pytest.fixture(scope="module")
def s3_backed(
    server: LiveServer, databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A second inferline whose object store is the first server's S3 endpoint."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("s3-backed"),
        INFERLINE_MODELS_DIR=server.container.settings.models_dir,
        database_url=databases.new("s3backed"),
        profile="test",
        api_key="KEYs3-backed-tenant-0123456789",
        s3_endpoint=server.url + "/s3",
        s3_bucket="inferline-objects",
        s3_access_key=s3_credentials(server.key_a)[0],
        s3_secret_key=s3_credentials(server.key_a)[1],
        log_level="warning",
    )
    container = build_container(settings)
    uv = uvicorn.Server(
        uvicorn.Config(create_app(settings, container), port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{uv.config.port}"
    uv.should_exit = True
    thread.join(timeout=10)
    container.close()


def test_server_on_s3_backend_ingests_and_searches(s3_backed: str, server: LiveServer) -> None:
    key = "KEYs3-backed-tenant-0123456789"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_backed + "/s3",
        **s3_auth(key),
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="remote-docs")
    s3.put_object(Bucket="remote-docs", Key="moon.txt", Body=b"The Moon orbits the Earth every 27 days.")
    # The bytes really live on the backing S3 service, under the tenant's prefix.
    backing = server.container.objects.list_objects(
        server.container.keys.authenticate(server.key_a).tenant_id, "inferline-objects"
    )
    assert "default/remote-docs/moon.txt" in [o.key for o in backing]
    client = telnyx.Telnyx(
        api_key=key, base_url=s3_backed + "/v2", _strict_response_validation=True, max_retries=0
    )
    task = client.ai.embeddings.create(bucket_name="remote-docs")
    deadline = time.monotonic() + 120
    while client.ai.embeddings.retrieve(task.data.task_id).data.status not in (
        "success",
        "failure",
        "partial_success",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.ai.embeddings.retrieve(task.data.task_id).data.status == "success"
    hit = client.ai.embeddings.similarity_search(
        bucket_name="remote-docs", query="lunar orbit", num_of_docs=1
    )
    assert hit.data[0].metadata.filename == "moon.txt"
