"""Bucket embedding end to end: boto3 uploads, tasks via the telnyx SDK (strict), per-file status, similarity
search, auto-sync after changes and deletes, embeddings deletion, failures that stay per file, tenancy."""

from __future__ import annotations

import hashlib
import json
import time

import boto3
import httpx
import openai
import pytest
import telnyx
from botocore.client import BaseClient
from botocore.config import Config

from tests.conftest import LiveServer, s3_auth
from tests.docs_fixtures import make_pdf

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
FINAL = {"success", "failure", "partial_success"}

TELNYX_TXT = (
    "Telnyx is a communications platform. It provides programmable voice, messaging and SIM cards over a "
    "private global IP network.\n\nDevelopers use its APIs to build call centres and notification systems."
)
PASTA_HTML = (
    "<!doctype html><html><head><title>Cooking pasta</title><script>var tracking = 'do not index';</script>"
    "</head><body><h1>Boiling spaghetti</h1><p>Bring salted water to a rolling boil and cook the spaghetti "
    "for nine minutes until al dente.</p></body></html>"
)


@pytest.fixture(scope="module")
def s3(server: LiveServer) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(server.key_a),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def wait_task(client: telnyx.Telnyx, task_id: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.ai.embeddings.retrieve(task_id).data.status
        if status in FINAL:
            return str(status)
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish")


def wait_idle(client: telnyx.Telnyx, bucket: str, timeout: float = 180) -> None:
    """Until no task of `bucket` is queued or processing (auto-sync tasks included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [t for t in client.ai.embeddings.list().data if t.bucket == bucket]:
            return
        time.sleep(0.2)
    raise AssertionError(f"bucket {bucket} kept having active tasks")


def statuses(client: telnyx.Telnyx, bucket: str) -> dict[str, tuple[str, str | None]]:
    return {
        f.filename: (f.status, f.error_reason) for f in client.ai.embeddings.buckets.retrieve(bucket).data
    }


def test_embed_search_sync_and_delete(client: telnyx.Telnyx, client_b: telnyx.Telnyx, s3: BaseClient) -> None:
    s3.create_bucket(Bucket="kbase")
    files = {
        "telnyx.txt": TELNYX_TXT.encode(),
        "pasta.html": PASTA_HTML.encode(),
        "report.pdf": make_pdf(["Quarterly report", "Revenue grew by twelve percent in the third quarter."]),
        "people.csv": b"name,role\nAda Lovelace,mathematician\nGrace Hopper,computer scientist\n",
        "config.json": b'{"service": {"region": "Chicago", "replicas": 3}}',
        "broken.pdf": b"%PDF-1.7\n this is not really a pdf",
    }
    for key, body in files.items():
        s3.put_object(Bucket="kbase", Key=key, Body=body)

    created = client.ai.embeddings.create(
        bucket_name="kbase", document_chunk_size=400, document_chunk_overlap_size=100
    )
    assert created.data.status == "queued" and created.data.finished_at is None
    assert wait_task(client, created.data.task_id) == "partial_success"

    assert "kbase" in client.ai.embeddings.buckets.list().data.buckets
    state = statuses(client, "kbase")
    assert {k: v[0] for k, v in state.items()} == {
        **{k: "success" for k in files if k != "broken.pdf"},
        "broken.pdf": "failed",
    }
    assert "PDF" in (state["broken.pdf"][1] or "")

    hits = client.ai.embeddings.similarity_search(
        bucket_name="kbase", query="Which company offers voice APIs?"
    ).data
    assert len(hits) == 3 and hits[0].metadata.filename == "telnyx.txt"
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    top = hits[0]
    assert 0 <= top.distance < 0.8 and 0.5 < (top.metadata.certainty or 0) <= 1
    assert top.metadata.checksum == hashlib.md5(files["telnyx.txt"]).hexdigest()
    assert top.metadata.embedding == MINILM and top.metadata.source == "s3://kbase/telnyx.txt"
    assert (top.metadata.loader_metadata or {})["loader"] == "text"
    pdf = client.ai.embeddings.similarity_search(
        bucket_name="kbase", query="revenue growth quarter", num_of_docs=1
    )
    assert pdf.data[0].metadata.filename == "report.pdf"
    pasta = client.ai.embeddings.similarity_search(
        bucket_name="kbase", query="how long to cook spaghetti", num_of_docs=5
    )
    assert pasta.data[0].metadata.filename == "pasta.html"
    assert all("tracking" not in h.document_chunk for h in pasta.data)

    # Auto-sync: a changed file is re-embedded, a deleted one leaves the index, a fixed one recovers.
    s3.put_object(
        Bucket="kbase", Key="telnyx.txt", Body=b"Penguins live in Antarctica and eat krill and fish."
    )
    s3.delete_object(Bucket="kbase", Key="pasta.html")
    s3.put_object(
        Bucket="kbase", Key="broken.pdf", Body=make_pdf(["The warehouse opens at six in the morning."])
    )
    time.sleep(0.5)
    wait_idle(client, "kbase")
    state = statuses(client, "kbase")
    assert "pasta.html" not in state and state["broken.pdf"] == ("success", None)
    birds = client.ai.embeddings.similarity_search(
        bucket_name="kbase", query="Antarctic birds", num_of_docs=10
    ).data
    assert birds[0].metadata.filename == "telnyx.txt" and "Penguins" in birds[0].document_chunk
    assert all(h.metadata.filename != "pasta.html" for h in birds)
    assert all("Telnyx" not in h.document_chunk for h in birds)
    done = client.ai.embeddings.list(status=["success", "partial_success"]).data
    assert {t.task_name for t in done if t.bucket == "kbase"} >= {"embed_bucket", "sync_bucket"}

    # Another tenant sees none of it.
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.embeddings.similarity_search(bucket_name="kbase", query="penguins")
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.embeddings.retrieve(created.data.task_id)
    with pytest.raises(telnyx.NotFoundError):
        client_b.ai.embeddings.buckets.retrieve("kbase")
    assert "kbase" not in client_b.ai.embeddings.buckets.list().data.buckets

    # Deleting the bucket's embeddings keeps its files.
    client.ai.embeddings.buckets.delete("kbase")
    with pytest.raises(telnyx.NotFoundError):
        client.ai.embeddings.similarity_search(bucket_name="kbase", query="penguins")
    with pytest.raises(telnyx.NotFoundError):
        client.ai.embeddings.buckets.retrieve("kbase")
    assert s3.get_object(Bucket="kbase", Key="telnyx.txt")["Body"].read().startswith(b"Penguins")
    s3.put_object(Bucket="kbase", Key="new.txt", Body=b"no auto-sync once embeddings are deleted")
    assert "kbase" not in client.ai.embeddings.buckets.list().data.buckets


def test_per_file_failures_and_limits(
    client: telnyx.Telnyx, s3: BaseClient, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.container.ingest, "max_file_bytes", 2000)
    s3.create_bucket(Bucket="bad-files")
    s3.put_object(Bucket="bad-files", Key="big.txt", Body=b"too large " * 300)
    s3.put_object(Bucket="bad-files", Key="blob.bin", Body=bytes(range(256)))
    s3.put_object(Bucket="bad-files", Key="empty.txt", Body=b"   \n")
    task = client.ai.embeddings.create(bucket_name="bad-files")
    assert wait_task(client, task.data.task_id) == "failure"
    state = statuses(client, "bad-files")
    assert all(status == "failed" for status, _ in state.values())
    assert "limit" in (state["big.txt"][1] or "") and "binary" in (state["blob.bin"][1] or "")
    assert "no text" in (state["empty.txt"][1] or "")


def test_create_validation(client: telnyx.Telnyx, http: httpx.Client, s3: BaseClient) -> None:
    with pytest.raises(telnyx.NotFoundError):
        client.ai.embeddings.create(bucket_name="does-not-exist")
    s3.create_bucket(Bucket="valid")
    cases = [
        ({"bucket_name": "valid", "document_chunk_size": 100, "document_chunk_overlap_size": 100}, 422),
        ({"bucket_name": "valid", "document_chunk_size": 0}, 422),
        ({"bucket_name": "valid", "loader": "bogus"}, 422),
        ({"bucket_name": "valid", "embedding_model": "no/such-model"}, 404),
        ({"bucket_name": "valid", "unknown": 1}, 422),
        ({}, 422),
    ]
    for body, status in cases:
        response = http.post("/ai/embeddings", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["errors"][0]["code"]
    assert http.get("/ai/embeddings", params={"status": "bogus"}).status_code == 422
    assert (
        http.post("/ai/embeddings/similarity-search", json={"bucket_name": "valid", "query": "x"}).status_code
        == 404
    )


def test_telnyx_model_names_are_aliases(client: telnyx.Telnyx, s3: BaseClient) -> None:
    s3.create_bucket(Bucket="alias")
    s3.put_object(Bucket="alias", Key="a.txt", Body=b"Aliases are served by the installed model.")
    task = client.ai.embeddings.create(bucket_name="alias", embedding_model="intfloat/multilingual-e5-large")
    assert wait_task(client, task.data.task_id) == "success"
    hit = client.ai.embeddings.similarity_search(bucket_name="alias", query="model", num_of_docs=1).data[0]
    assert hit.metadata.embedding == MINILM


def test_openai_sdk_on_ai_base_dispatches_by_body(server: LiveServer) -> None:
    oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai", max_retries=0)
    response = oai.embeddings.create(model=MINILM, input=["one", "two"])
    assert len(response.data) == 2 and len(response.data[0].embedding) == 384


def test_vector_index_matches_the_database(server: LiveServer) -> None:
    """pgvector does the search on PostgreSQL; HNSW graph files beside the database (exact when small)
    elsewhere."""
    from inferline.stores.vectors import LocalVectorIndex, PgVectorIndex

    expected = LocalVectorIndex if server.container.db.is_sqlite else PgVectorIndex
    assert type(server.container.vectors) is expected


@pytest.mark.slow
def test_audio_file_is_transcribed_and_searchable(client: telnyx.Telnyx, s3: BaseClient) -> None:
    """A spoken memo (Piper TTS) in a bucket is transcribed by Whisper while ingesting, then found."""
    speech = client.text_to_speech.with_raw_response.generate_speech(
        text="The quarterly planning meeting moves to Thursday afternoon.",
        voice="Telnyx.Piper.en_US-joe-medium",
    ).http_response.content
    s3.create_bucket(Bucket="voice-memos")
    s3.put_object(Bucket="voice-memos", Key="memo.mp3", Body=speech)
    s3.put_object(Bucket="voice-memos", Key="notes.txt", Body=b"Buy oat milk and coffee beans.")
    task = client.ai.embeddings.create(bucket_name="voice-memos")
    assert wait_task(client, task.data.task_id) == "success"
    hit = client.ai.embeddings.similarity_search(
        bucket_name="voice-memos", query="when is the meeting", num_of_docs=1
    )
    assert hit.data[0].metadata.filename == "memo.mp3"
    assert "thursday" in hit.data[0].document_chunk.lower()
    assert (hit.data[0].metadata.loader_metadata or {})["loader"] == "transcription"


def test_auto_sync_sees_writes_from_other_areas(
    client: telnyx.Telnyx, s3: BaseClient, server: LiveServer
) -> None:
    s3.create_bucket(Bucket="synced")
    s3.put_object(Bucket="synced", Key="a.txt", Body=b"Oak trees grow acorns.")
    assert wait_task(client, client.ai.embeddings.create(bucket_name="synced").data.task_id) == "success"
    server.container.objects.put_bytes("default", "synced", "b.txt", b"Giraffes have very long necks.")
    time.sleep(0.3)
    wait_idle(client, "synced")
    assert statuses(client, "synced")["b.txt"] == ("success", None)
    hit = client.ai.embeddings.similarity_search(bucket_name="synced", query="tall animal", num_of_docs=1)
    assert hit.data[0].metadata.filename == "b.txt"


def test_intercom_loader_splits_articles_by_paragraph(client: telnyx.Telnyx, s3: BaseClient) -> None:
    articles = {
        "type": "list",
        "data": [
            {
                "type": "article",
                "title": "Resetting your password",
                "url": "https://help.example.com/articles/1-reset",
                "body": "<p>Open the login page.</p><h2>Forgot your email?</h2><p>Contact support with your "
                "account number to recover the address.</p>",
            },
            {
                "type": "article",
                "title": "Billing",
                "url": "https://help.example.com/articles/2-billing",
                "body": "<p>Invoices are sent on the first day of every month.</p>",
            },
        ],
    }
    s3.create_bucket(Bucket="help-center")
    s3.put_object(Bucket="help-center", Key="articles.json", Body=json.dumps(articles).encode())
    task = client.ai.embeddings.create(bucket_name="help-center", loader="intercom")
    assert wait_task(client, task.data.task_id) == "success"
    hits = client.ai.embeddings.similarity_search(
        bucket_name="help-center", query="recover my email address"
    ).data
    assert len(hits) == 3
    top = hits[0]
    assert top.document_chunk.startswith("Contact support")
    assert top.metadata.loader_metadata == {
        **(top.metadata.loader_metadata or {}),
        "loader": "intercom",
        "article_url": "https://help.example.com/articles/1-reset",
        "heading": "Forgot your email?",
        "title": "Resetting your password",
    }


def test_one_task_per_bucket_at_a_time(server: LiveServer) -> None:
    """The bucket claim (shared by all worker processes) makes a second task wait; a dead one's expires."""
    import threading
    from datetime import timedelta

    from inferline.jobs import JobContext, JobView
    from inferline.stores.embeddings_tables import EmbeddedBucket
    from inferline.stores.tables import utcnow

    ingest, db = server.container.ingest, server.container.db
    with db.session() as s:
        s.add(
            EmbeddedBucket(
                tenant_id="claims",
                bucket="claimed",
                embedding_model=MINILM,
                chunk_size=100,
                chunk_overlap=0,
                loader="default",
                generation=0,
            )
        )
    now = utcnow()
    ctx = JobContext(JobView("j", "claims", "embed_bucket", {}, "running", 1, 3, None, False, now, None))
    entered: list[str] = []

    def second() -> None:
        with ingest._claim("claims", "claimed", "task-2", ctx) as ok:
            entered.append(f"task-2:{ok}")

    with ingest._claim("claims", "claimed", "task-1", ctx) as ok:
        assert ok
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(1.2)
        assert entered == []  # still waiting for task-1
    waiter.join(10)
    assert entered == ["task-2:True"]

    with db.session() as s:  # a holder that died: its claim lapses and the next task takes over
        row = s.query(EmbeddedBucket).filter_by(tenant_id="claims", bucket="claimed").one()
        row.busy_task, row.busy_until = "dead-task", utcnow() - timedelta(seconds=1)
    with ingest._claim("claims", "claimed", "task-3", ctx) as ok:
        assert ok


def test_vector_index_stays_exact_through_changes(server: LiveServer) -> None:
    """After replacements and deletions (cached matrix refreshed incrementally) search equals brute force."""
    import numpy as np

    from inferline.stores.embeddings_tables import EmbeddedBucket
    from inferline.stores.vectors import ChunkRecord

    index, db = server.container.vectors, server.container.db
    with db.session() as s:
        s.add(
            EmbeddedBucket(
                tenant_id="vec",
                bucket="exact",
                embedding_model=MINILM,
                chunk_size=100,
                chunk_overlap=0,
                loader="default",
                generation=0,
            )
        )
    rng = np.random.default_rng(7)
    truth: dict[str, np.ndarray] = {}

    def put(name: str, n: int) -> None:
        vectors = rng.standard_normal((n, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = [ChunkRecord(name, i, f"{name}#{i}", "0" * 32, "s3://x", MINILM) for i in range(n)]
        with db.session() as s:
            index.replace_file(s, "vec", "exact", name, chunks, vectors)
        truth[name] = vectors

    def check() -> None:
        query = rng.standard_normal(384).astype(np.float32)
        query /= np.linalg.norm(query)
        everything = [(f"{n}#{i}", float(v @ query)) for n, m in truth.items() for i, v in enumerate(m)]
        best = sorted(everything, key=lambda t: -t[1])[:5]
        hits = index.search("vec", "exact", query, 5)
        assert [h.chunk.text for h in hits] == [t for t, _ in best]
        assert np.allclose([h.similarity for h in hits], [sim for _, sim in best], atol=1e-5)

    put("a", 50)
    put("b", 30)
    check()
    put("a", 20)  # replaced: new ids, new vectors
    check()
    with db.session() as s:
        index.delete_file(s, "vec", "exact", "b")
    del truth["b"]
    put("c", 40)
    check()
