"""Request log lines (issue 18): one line per request with tenant, key id, route template, status, model and
units; never the API key or the prompt."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
import telnyx

from inferline.ops.middleware import OpsMiddleware
from tests.conftest import LiveServer
from tests.databases import DatabaseFactory
from tests.procs import Processes, base_env

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SECRET_TEXT = "the launch code is swordfish-4242"


def test_request_line_has_the_fields_and_no_key_or_prompt(
    server: LiveServer, client: telnyx.Telnyx, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="inferline"):
        client.ai.openai.embeddings.create_embeddings(input=SECRET_TEXT, model=MINILM)
    lines = [r.getMessage() for r in caplog.records if r.name == "inferline.requests"]
    line = next(x for x in lines if "/v2/ai/openai/embeddings" in x)
    assert "POST /v2/ai/openai/embeddings 200" in line
    assert "tenant=default" in line and "key_id=" in line and f"model={MINILM}" in line
    assert "embedding_tokens=" in line and "latency_ms=" in line
    everything = caplog.text
    assert server.key_a not in everything and "swordfish" not in everything


def test_json_format_is_one_object_per_request(caplog: pytest.LogCaptureFixture) -> None:
    from inferline.keys import Principal
    from inferline.ops.context import RequestOps

    ops = RequestOps(units={("chat_prompt_tokens", "m"): 3.0}, model="m")
    state = {"request_id": "r1", "principal": Principal("t", "k")}
    logger = logging.getLogger("inferline.requests")
    middleware = OpsMiddleware(app=None, log_format="json")  # type: ignore[arg-type]
    logger.addHandler(caplog.handler)
    try:
        middleware._log(state, state["principal"], "POST", "/v2/x", 200, 0.5, ops)
    finally:  # back to the text format of the test server
        logger.removeHandler(caplog.handler)
        for handler in [h for h in logger.handlers if getattr(h, "inferline_json", False)]:
            logger.removeHandler(handler)
        logger.propagate = True
    record = json.loads(caplog.records[-1].getMessage())
    assert record["request_id"] == "r1" and record["tenant"] == "t" and record["key_id"] == "k"
    assert record["route"] == "/v2/x" and record["status"] == 200 and record["latency_ms"] == 500.0
    assert record["model"] == "m" and record["chat_prompt_tokens"] == 3.0 and "time" in record


def test_json_mode_writes_one_line_per_request(
    tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory
) -> None:
    """`inferline serve` with INFERLINE_LOG_FORMAT=json at info level: the request's JSON object is its only
    line (uvicorn's access line is off)."""
    key = "KEYjson-logs-0123456789abcdef"
    procs = Processes(tmp_path_factory.mktemp("json-logs"))
    env = base_env(
        tmp_path_factory.mktemp("json-api"),
        databases.new("json_logs"),
        INFERLINE_API_KEY=key,
        INFERLINE_LOG_FORMAT="json",
        INFERLINE_LOG_LEVEL="info",
        INFERLINE_EMBEDDED_WORKER="false",
    )
    try:
        api = procs.serve("api", env)
        got = httpx.get(f"{api.url}/v2/ai/models", headers={"Authorization": f"Bearer {key}"})
        assert got.status_code == 200
        request_id = got.headers["x-request-id"]
        deadline = time.monotonic() + 30
        while request_id not in api.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = [line for line in api.output().splitlines() if "/v2/ai/models" in line]
    finally:
        procs.stop_all()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["request_id"] == request_id and record["route"] == "/v2/ai/models"
    assert record["status"] == 200 and key not in lines[0]
