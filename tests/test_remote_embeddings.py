"""Embedding models routed to a remote OpenAI-compatible server, with real processes on loopback.

The upstream is a second, real inferline process serving MiniLM at `/v2/ai/openai` (the same OpenAI wire that
vLLM speaks). The gateway under test routes `remote/minilm` there by `INFERLINE_REMOTE_EMBEDDING_MODELS`, and
other ids to a stalled socket (504), a closed port (502), a model the upstream does not serve (502) and a bad
upstream key (502).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import numpy as np
import openai
import pytest
import telnyx
from botocore.config import Config

from inferline.engines.openai_compat_embeddings import OpenAICompatEmbeddingEngine
from inferline.errors import UpstreamError
from tests.conftest import API_KEY, free_port, s3_auth
from tests.databases import DatabaseFactory
from tests.procs import Proc, Processes, base_env

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
UPSTREAM_KEY = "KEYupstream-0123456789abcdef"
FINAL = {"success", "failure", "partial_success"}
TEXTS = ["The cat sits on the mat.", "Quarterly revenue grew by five percent."]


@pytest.fixture(scope="module")
def stalled_port() -> Iterator[int]:
    """A port whose listener accepts connections (kernel backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    processes = Processes(tmp_path_factory.mktemp("remote-logs"))
    yield processes
    processes.stop_all()


@pytest.fixture(scope="module")
def upstream(procs: Processes, tmp_path_factory: pytest.TempPathFactory) -> Proc:
    data = tmp_path_factory.mktemp("upstream")
    env = base_env(data, f"sqlite:///{data / 'up.db'}", INFERLINE_API_KEY=UPSTREAM_KEY)
    return procs.serve("upstream", env)


@pytest.fixture(scope="module")
def gateway(
    procs: Processes,
    upstream: Proc,
    stalled_port: int,
    databases: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Proc:
    base = f"{upstream.url}/v2/ai/openai"
    routes = {
        "remote/minilm": {"url": base, "model": MINILM, "api_key": UPSTREAM_KEY, "max_tokens": 256},
        "remote/stalled": {
            "url": f"http://127.0.0.1:{stalled_port}/v1",
            "timeout_seconds": 1,
            "dimensions": 8,
        },
        "remote/down": {"url": f"http://127.0.0.1:{free_port()}/v1", "dimensions": 8},
        "remote/unserved": {"url": base, "model": "no/such-model", "api_key": UPSTREAM_KEY},
        "remote/badkey": {"url": base, "model": MINILM, "api_key": "KEYwrong", "dimensions": 384},
    }
    env = base_env(
        tmp_path_factory.mktemp("gateway"),
        databases.new("gateway"),
        INFERLINE_API_KEY=API_KEY,
        INFERLINE_REMOTE_EMBEDDING_MODELS=json.dumps(routes),
        INFERLINE_REMOTE_CHAT_MODELS=json.dumps(
            {
                "remote/smol": {"url": base, "model": SMOL, "api_key": UPSTREAM_KEY, "timeout_seconds": 60},
                "remote/chat-down": {"url": f"http://127.0.0.1:{free_port()}/v1"},
            }
        ),
    )
    return procs.serve("gateway", env)


@pytest.fixture(scope="module")
def oai(gateway: Proc) -> openai.OpenAI:
    return openai.OpenAI(api_key=API_KEY, base_url=f"{gateway.url}/v2/ai/openai", max_retries=0)


def test_remote_model_matches_the_same_model_run_locally(oai: openai.OpenAI) -> None:
    remote = oai.embeddings.create(model="remote/minilm", input=TEXTS, encoding_format="float")
    local = oai.embeddings.create(model=MINILM, input=TEXTS, encoding_format="float")
    assert remote.model == "remote/minilm" and [d.index for d in remote.data] == [0, 1]
    for r, loc in zip(remote.data, local.data, strict=True):
        np.testing.assert_allclose(r.embedding, loc.embedding, atol=1e-5)
    assert remote.usage.prompt_tokens == local.usage.prompt_tokens > 10
    b64 = oai.embeddings.create(model="remote/minilm", input=TEXTS[0])  # the SDK's default base64
    np.testing.assert_allclose(b64.data[0].embedding, local.data[0].embedding, atol=1e-5)


def test_remote_model_through_telnyx_sdk_strict(gateway: Proc) -> None:
    client = telnyx.Telnyx(
        api_key=API_KEY, base_url=f"{gateway.url}/v2", _strict_response_validation=True, max_retries=0
    )
    response = client.ai.openai.embeddings.create_embeddings(input=TEXTS[1], model="remote/minilm")
    assert response.model == "remote/minilm" and len(response.data[0].embedding) == 384
    listed = {m.id for m in client.ai.openai.embeddings.list_embedding_models().data}
    assert {"remote/minilm", MINILM} <= listed


def test_remote_dimensions_are_truncated_and_renormalised(oai: openai.OpenAI) -> None:
    full = oai.embeddings.create(model="remote/minilm", input=TEXTS[0], encoding_format="float").data[0]
    small = oai.embeddings.create(
        model="remote/minilm", input=TEXTS[0], dimensions=32, encoding_format="float"
    ).data[0]
    assert len(small.embedding) == 32 and abs(np.linalg.norm(small.embedding) - 1) < 1e-4
    direction = np.asarray(full.embedding[:32]) / np.linalg.norm(full.embedding[:32])
    np.testing.assert_allclose(small.embedding, direction, atol=1e-5)


@pytest.mark.parametrize(
    ("model", "status", "code", "words"),
    [
        ("remote/stalled", 504, "10008", "did not answer within 1 s"),
        ("remote/down", 502, "10007", "unreachable"),
        ("remote/unserved", 502, "10007", "answered 404"),
        ("remote/badkey", 502, "10007", "answered 401"),
    ],
)
def test_upstream_failures_are_502_or_504_envelopes(
    gateway: Proc, model: str, status: int, code: str, words: str
) -> None:
    response = httpx.post(
        f"{gateway.url}/v2/ai/openai/embeddings",
        json={"model": model, "input": "hello", "encoding_format": "float"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    (error,) = response.json()["errors"]
    assert error["code"] == code and words in error["detail"] and model in error["detail"]


def test_upstream_input_rejection_is_our_400(gateway: Proc) -> None:
    response = httpx.post(
        f"{gateway.url}/v2/ai/openai/embeddings",
        json={"model": "remote/minilm", "input": "word " * 400},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["source"]["pointer"] == "/input" and "256" in error["detail"]


def test_health_check_names_what_the_upstream_serves(upstream: Proc, tmp_path: Path) -> None:
    base = f"{upstream.url}/v2/ai/openai"
    healthy = OpenAICompatEmbeddingEngine("remote/minilm", base, upstream_model=MINILM, api_key=UPSTREAM_KEY)
    missing = OpenAICompatEmbeddingEngine("remote/x", base, upstream_model="no/such", api_key=UPSTREAM_KEY)
    try:
        assert healthy.health()["status"] == "ok"
        assert healthy.dimensions == 384  # probed from the upstream on first use
        with pytest.raises(UpstreamError, match="does not serve 'no/such'"):
            missing.health()
    finally:
        healthy.close()
        missing.close()


def test_readiness_names_each_failing_upstream(gateway: Proc, upstream: Proc) -> None:
    assert httpx.get(f"{upstream.url}/ready", timeout=30).status_code == 200
    response = httpx.get(f"{gateway.url}/ready", timeout=30)
    assert response.status_code == 503
    checks = {c["name"]: c for c in response.json()["checks"]}
    assert checks["database"]["status"] == "ok"
    assert checks["engine:remote/minilm"]["status"] == "ok"
    assert checks["engine:remote/smol"]["status"] == "ok"
    for broken in ("remote/stalled", "remote/down", "remote/unserved", "remote/badkey", "remote/chat-down"):
        assert (
            checks[f"engine:{broken}"]["status"] == "error" and broken in checks[f"engine:{broken}"]["detail"]
        )


def test_remote_model_embeds_a_bucket(gateway: Proc) -> None:
    """A bucket embedded with a routed model: ingestion and query both go to the upstream."""
    s3 = boto3.client(
        "s3",
        endpoint_url=f"{gateway.url}/s3",
        **s3_auth(API_KEY),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    s3.create_bucket(Bucket="remote-kb")
    s3.put_object(Bucket="remote-kb", Key="ships.txt", Body=b"Container ships carry goods between harbours.")
    s3.put_object(Bucket="remote-kb", Key="bread.txt", Body=b"Sourdough bread rises slowly with wild yeast.")
    client = telnyx.Telnyx(
        api_key=API_KEY, base_url=f"{gateway.url}/v2", _strict_response_validation=True, max_retries=0
    )
    task = client.ai.embeddings.create(bucket_name="remote-kb", embedding_model="remote/minilm")  # type: ignore[arg-type]
    deadline = time.monotonic() + 120
    while (status := client.ai.embeddings.retrieve(task.data.task_id).data.status) not in FINAL:
        assert time.monotonic() < deadline, "the ingestion task did not finish"
        time.sleep(0.2)
    assert status == "success"
    hits = client.ai.embeddings.similarity_search(
        bucket_name="remote-kb", query="baking with yeast", num_of_docs=1
    ).data
    assert hits[0].metadata.filename == "bread.txt" and hits[0].metadata.embedding == "remote/minilm"


def test_remote_chat_model_answers_through_the_gateway(oai: openai.OpenAI) -> None:
    """A chat model routed to the upstream process: the gateway relays its completion."""
    reply = oai.chat.completions.create(
        model="remote/smol", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
    )
    assert reply.model == "remote/smol" and reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0
