"""Clusters end to end through the telnyx SDK (strict): a bucket of documents on three topics is embedded and
clustered by a durable job; the clusters recover the topics and are named by the chat model; list, get with
nodes and sub-clusters, the PNG graph, files/prefix filters, delete, tenant isolation and bad input."""

from __future__ import annotations

import struct
import time
import zlib
from collections import Counter
from typing import Any

import boto3
import httpx
import numpy as np
import pytest
import telnyx
from botocore.client import BaseClient
from botocore.config import Config

from tests.conftest import LiveServer, s3_auth
from tests.test_foundation import assert_envelope
from tests.topic_corpus import documents

BUCKET = "clusters-topics"
TOPICS = ["baking", "astronomy", "football"]
PER_TOPIC = 10
FINAL = {"completed", "failed"}


def key(filename: str) -> str:
    """Baking and astronomy under `sky-and-oven/`, football under `pitch/` (for the prefix filter)."""
    return ("pitch/" if filename.startswith("football/") else "sky-and-oven/") + filename


def topic_of(filename: str) -> str:
    return filename.split("/")[1]


@pytest.fixture(scope="module")
def s3(server: LiveServer) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(server.key_a),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def wait_clusters(client: telnyx.Telnyx, task_id: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = client.ai.clusters.retrieve(task_id)
        if result.data.status in FINAL:
            return result.data
        time.sleep(0.3)
    raise AssertionError(f"clustering task {task_id} did not finish")


@pytest.fixture(scope="module")
def embedded(client: telnyx.Telnyx, s3: BaseClient) -> str:
    """The bucket, uploaded with boto3 and embedded (one chunk per document)."""
    s3.create_bucket(Bucket=BUCKET)
    for filename, text, _ in documents(TOPICS, PER_TOPIC):
        s3.put_object(Bucket=BUCKET, Key=key(filename), Body=text.encode())
    task = client.ai.embeddings.create(bucket_name=BUCKET, document_chunk_size=1024)
    deadline = time.monotonic() + 300
    while client.ai.embeddings.retrieve(task.data.task_id).data.status not in {"success", "failure"}:
        assert time.monotonic() < deadline, "embedding did not finish"
        time.sleep(0.2)
    assert client.ai.embeddings.retrieve(task.data.task_id).data.status == "success"
    return BUCKET


@pytest.fixture(scope="module")
def clustered(client: telnyx.Telnyx, embedded: str) -> str:
    """A completed clustering task over the whole bucket."""
    created = client.ai.clusters.compute(bucket=embedded, min_cluster_size=5, min_subcluster_size=3)
    assert wait_clusters(client, created.data.task_id).status == "completed"
    return created.data.task_id


def test_clusters_recover_the_topics_and_are_named(client: telnyx.Telnyx, clustered: str) -> None:
    result = client.ai.clusters.retrieve(clustered, top_n_nodes=100, show_subclusters=True).data
    assert result.status == "completed" and result.bucket == BUCKET
    assert len(result.clusters) == len(TOPICS)
    found = set()
    for n, cluster in enumerate(result.clusters):
        assert cluster.cluster_id == str(n)
        assert cluster.cluster_header and cluster.cluster_header.strip()
        assert cluster.cluster_summary.strip()
        assert cluster.nodes is not None and len(cluster.nodes) == cluster.total_number_of_nodes
        topics = Counter(topic_of(node.filename) for node in cluster.nodes)
        assert len(topics) == 1, topics  # every cluster is one topic
        assert cluster.total_number_of_nodes >= PER_TOPIC - 2
        found |= set(topics)
        for sub in cluster.subclusters or []:  # sub-clusters are parts of their cluster
            assert sub.cluster_id.startswith(f"{cluster.cluster_id}.")
            assert sub.cluster_summary.strip()
            assert {node.filename for node in sub.nodes or []} <= {node.filename for node in cluster.nodes}
    assert found == set(TOPICS)
    assert any(cluster.subclusters for cluster in result.clusters)  # min_subcluster_size=3 splits some topics

    # Nodes come most central first; top_n_nodes cuts that list; by default no nodes and no sub-clusters.
    top2 = client.ai.clusters.retrieve(clustered, top_n_nodes=2).data
    for full, cut in zip(result.clusters, top2.clusters, strict=True):
        assert [node.filename for node in cut.nodes or []] == [node.filename for node in full.nodes or []][:2]
        assert cut.subclusters is None
    bare = client.ai.clusters.retrieve(clustered).data
    assert all(not c.nodes and c.total_number_of_nodes for c in bare.clusters)


def test_list_and_tenant_isolation(client: telnyx.Telnyx, client_b: telnyx.Telnyx, clustered: str) -> None:
    listed = {task.task_id: task for task in client.ai.clusters.list(page_size=100)}
    task = listed[clustered]
    assert (task.status, task.bucket, task.min_cluster_size, task.min_subcluster_size) == (
        "completed",
        BUCKET,
        5,
        3,
    )
    assert task.finished_at >= task.created_at
    assert clustered not in {t.task_id for t in client_b.ai.clusters.list(page_size=100)}
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.clusters.retrieve(clustered)
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.clusters.fetch_graph(clustered)
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.clusters.delete(clustered)
    with pytest.raises(telnyx.NotFoundError):  # tenant B cannot cluster tenant A's bucket either
        client_b.ai.clusters.compute(bucket=BUCKET)
    assert client.ai.clusters.retrieve(clustered).data.status == "completed"


def _png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB, non-interlaced PNG whose rows all use filter 0 (what the server writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(tag + body)
        header = body if tag == b"IHDR" else header
        idat += body if tag == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) == (8, 2)
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + 3 * width)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 3)


def test_graph_is_a_png_of_the_cluster_map(client: telnyx.Telnyx, clustered: str) -> None:
    response = client.ai.clusters.fetch_graph(clustered)
    assert response.http_response.headers["content-type"] == "image/png"
    pixels = _png_pixels(response.read())
    colours = {tuple(p) for p in pixels.reshape(-1, 3)}
    assert (255, 255, 255) in colours
    assert len(colours) >= 1 + len(TOPICS)  # the background and one colour per cluster at least
    one = _png_pixels(client.ai.clusters.fetch_graph(clustered, cluster_id=0).read())
    assert one.shape == pixels.shape and not np.array_equal(one, pixels)
    with pytest.raises(telnyx.NotFoundError):
        client.ai.clusters.fetch_graph(clustered, cluster_id=99)


def test_files_and_prefix_filters(client: telnyx.Telnyx, embedded: str) -> None:
    by_prefix = client.ai.clusters.compute(bucket=embedded, prefix="sky-and-oven/", min_cluster_size=5)
    data = wait_clusters(client, by_prefix.data.task_id)
    assert data.status == "completed"
    nodes = [
        n.filename
        for c in client.ai.clusters.retrieve(by_prefix.data.task_id, top_n_nodes=100).data.clusters
        for n in c.nodes or []
    ]
    assert nodes and all(f.startswith("sky-and-oven/") for f in nodes)
    assert {topic_of(f) for f in nodes} == {"baking", "astronomy"}

    football = [key(f) for f, _, topic in documents(TOPICS, PER_TOPIC) if topic == "football"]
    baking = [key(f) for f, _, topic in documents(TOPICS, PER_TOPIC) if topic == "baking"]
    by_files = client.ai.clusters.compute(bucket=embedded, files=football + baking, min_cluster_size=5)
    assert wait_clusters(client, by_files.data.task_id).status == "completed"
    clusters = client.ai.clusters.retrieve(by_files.data.task_id, top_n_nodes=100).data.clusters
    assert sorted(sorted({topic_of(n.filename) for n in c.nodes or []}) for c in clusters) == [
        ["baking"],
        ["football"],
    ]
    client.ai.clusters.delete(by_prefix.data.task_id)
    client.ai.clusters.delete(by_files.data.task_id)


def test_delete(client: telnyx.Telnyx, embedded: str) -> None:
    created = client.ai.clusters.compute(bucket=embedded, min_cluster_size=5)
    client.ai.clusters.delete(created.data.task_id)  # queued or running: cancelled and gone
    with pytest.raises(telnyx.NotFoundError):
        client.ai.clusters.retrieve(created.data.task_id)
    with pytest.raises(telnyx.NotFoundError):
        client.ai.clusters.delete(created.data.task_id)
    assert created.data.task_id not in {t.task_id for t in client.ai.clusters.list(page_size=100)}


def test_a_task_matching_no_chunk_fails_with_its_reason(http: httpx.Client, embedded: str) -> None:
    created = http.post("/ai/clusters", json={"bucket": embedded, "files": ["no/such/file.txt"]})
    assert created.status_code == 200, created.text
    task_id = created.json()["data"]["task_id"]
    deadline = time.monotonic() + 60
    while (data := http.get(f"/ai/clusters/{task_id}").json()["data"])["status"] not in FINAL:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert data["status"] == "failed" and data["clusters"] == []
    assert "no embedded chunks" in data["error"]
    error = assert_envelope(http.get(f"/ai/clusters/{task_id}/graph"), 400)
    assert "failed" in error["detail"]


def test_bad_input_is_a_telnyx_error(http: httpx.Client, s3: BaseClient, embedded: str) -> None:
    error = assert_envelope(http.post("/ai/clusters", json={"bucket": "no-such-bucket"}), 404)
    assert error["source"] == {"pointer": "/bucket"}
    s3.create_bucket(Bucket="clusters-not-embedded")
    error = assert_envelope(http.post("/ai/clusters", json={"bucket": "clusters-not-embedded"}), 422)
    assert error["code"] == "10004" and "not embedded" in error["detail"]
    for body, pointer in [
        ({"bucket": embedded, "min_cluster_size": 1}, "/min_cluster_size"),
        ({"bucket": embedded, "min_cluster_size": "many"}, "/min_cluster_size"),
        ({"bucket": embedded, "min_subcluster_size": 0}, "/min_subcluster_size"),
        ({"bucket": embedded, "files": []}, "/files"),
        ({"bucket": embedded, "prefix": "a\u0000b"}, "/prefix"),
        ({"bucket": embedded, "colour": "blue"}, "/colour"),
        ({}, "/bucket"),
    ]:
        error = assert_envelope(http.post("/ai/clusters", json=body), 422)
        assert error["code"] == "10004" and error["source"]["pointer"] == pointer, (body, error)
    assert_envelope(http.get("/ai/clusters/no-such-task"), 404)
    assert_envelope(http.get("/ai/clusters/no-such-task/graph"), 404)
    assert_envelope(http.delete("/ai/clusters/no-such-task"), 404)
    assert_envelope(http.get("/ai/clusters/x", params={"top_n_nodes": -1}), 422)
    assert_envelope(http.get("/ai/clusters/x/graph", params={"cluster_id": "one"}), 422)
    assert_envelope(http.get("/ai/clusters", params={"page[size]": 0}), 422)
