"""Clusters: do the clusters of `POST /v2/ai/clusters` recover the topics of a bucket?

A bucket is filled with a labelled corpus (tests/topic_corpus.py) and embedded through the API, then
clustered through the API (HDBSCAN, chunks named by the chat model). The figure is the adjusted Rand index of
the clusters against the true topics (chunks left as noise count as one more label), next to KMeans given the
true number of topics, run on the same vectors read back from the database. Corpora: documents of three
sentences of one topic, single sentences (harder: less text per chunk), and 2,500 documents (over 2,000 chunks
the vectors are reduced by PCA before HDBSCAN).

`BENCH_SMOKE=1` runs a small version (3 topics, few documents) to check the benchmark itself works.
"""

from __future__ import annotations

import os
import time

import httpx
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from bench.common import BENCH_KEY, Row, live_server
from inferline.areas.clusters.chunks import read_chunks
from inferline.container import Container
from tests.topic_corpus import TOPICS, documents

SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")
TENANT = "default"


def _sentences(topics: list[str]) -> list[tuple[str, str, str]]:
    return [(f"{t}/sentence-{n:03d}.txt", text, t) for t in topics for n, text in enumerate(TOPICS[t])]


def _wait(http: httpx.Client, path: str, done: set[str], key: str = "status", timeout: float = 1800) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = http.get(path).json()["data"][key]
        if status in done:
            return str(status)
        time.sleep(0.2)
    raise TimeoutError(path)


def _measure(
    http: httpx.Client,
    container: Container,
    bucket: str,
    corpus: list[tuple[str, str, str]],
    min_size: int,
) -> tuple[float, float, int]:
    """(ARI of the API's clusters, ARI of KMeans with the true k, clusters found) on `corpus`."""
    container.objects.create_bucket(TENANT, bucket)
    for filename, text, _ in corpus:
        container.objects.put_bytes(TENANT, bucket, filename, text.encode(), "text/plain")
    task = http.post("/ai/embeddings", json={"bucket_name": bucket, "document_chunk_size": 1024}).json()
    assert _wait(http, f"/ai/embeddings/{task['data']['task_id']}", {"success", "failure"}) == "success"
    # Sub-clusters are not scored: a min_subcluster_size above half the corpus skips them (and their naming).
    body = {"bucket": bucket, "min_cluster_size": min_size, "min_subcluster_size": len(corpus)}
    task_id = http.post("/ai/clusters", json=body).json()["data"]["task_id"]
    assert _wait(http, f"/ai/clusters/{task_id}", {"completed", "failed"}) == "completed"
    clusters = http.get(f"/ai/clusters/{task_id}", params={"top_n_nodes": 1000}).json()["data"]["clusters"]
    predicted = {node["filename"]: c["cluster_id"] for c in clusters for node in c["nodes"]}
    truth = {filename: topic for filename, _, topic in corpus}
    names = sorted(truth)
    ours = adjusted_rand_score([truth[f] for f in names], [predicted.get(f, "noise") for f in names])
    chunks = read_chunks(container.db, TENANT, bucket, None, None)
    k = len(set(truth.values()))
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(chunks.vectors)
    baseline = adjusted_rand_score([truth[f] for f in chunks.filenames], kmeans)
    return ours, baseline, len(clusters)


def run() -> list[Row]:
    topics = list(TOPICS)[:3] if SMOKE else list(TOPICS)
    corpora = [
        ("documents", documents(topics, 10 if SMOKE else 40), 5 if SMOKE else 10),
        ("sentences", _sentences(topics), 5),
    ]
    if not SMOKE:
        corpora.append(("documents-2500", documents(topics, 500), 25))
    rows = []
    with (
        live_server() as (base, container),
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=120) as http,
    ):
        for name, corpus, min_size in corpora:
            bucket = f"bench-clusters-{name}"
            ours, baseline, found = _measure(http, container, bucket, corpus, min_size)
            what = f"{len(topics)} topics, {len(corpus)} {name.split('-')[0]}"
            rows.append(
                Row(
                    f"clusters ARI, {what} ({found} clusters found)",
                    ours,
                    baseline,
                    "ARI",
                    f"KMeans with the true k={len(topics)}, same vectors",
                )
            )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
