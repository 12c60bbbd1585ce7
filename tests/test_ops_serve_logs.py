"""`inferline serve` logs in the default text format (issue 18): one readable line per request (ours, with the
request id; uvicorn's access line is off), and a WebSocket handshake refused with 403 logs no error."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client

from tests.databases import DatabaseFactory
from tests.procs import INFERLINE, Proc, Processes, base_env

KEY = "KEYtext-logs-0123456789abcdef"


@pytest.fixture(scope="module")
def text_server(
    tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory
) -> Iterator[tuple[Proc, dict[str, str]]]:
    procs = Processes(tmp_path_factory.mktemp("text-logs"))
    env = base_env(
        tmp_path_factory.mktemp("text-api"),
        databases.new("text_logs"),
        INFERLINE_API_KEY=KEY,
        INFERLINE_LOG_LEVEL="info",
        INFERLINE_EMBEDDED_WORKER="false",
    )
    env.pop("INFERLINE_LOG_FORMAT", None)  # the default: text
    try:
        yield procs.serve("api", env), env
    finally:
        procs.stop_all()


def _wait_for(proc: Proc, text: str) -> str:
    deadline = time.monotonic() + 30
    while text not in proc.output():
        assert time.monotonic() < deadline, proc.output()[-3000:]
        time.sleep(0.1)
    return proc.output()


def test_text_mode_writes_one_line_per_request(text_server: tuple[Proc, dict[str, str]]) -> None:
    api, _ = text_server
    got = httpx.get(
        f"{api.url}/v2/ai/models?page=1",
        headers={"Authorization": f"Bearer {KEY}", "x-request-id": "text-line-1"},
    )
    assert got.status_code == 200
    missing = httpx.get(f"{api.url}/v2/no/such/thing", headers={"x-request-id": "text-line-2"})
    assert missing.status_code == 404
    output = _wait_for(api, "request_id=text-line-2")
    lines = [line for line in output.splitlines() if "/v2/ai/models" in line]
    assert len(lines) == 1, lines
    line = lines[0]
    assert "GET /v2/ai/models 200 request_id=text-line-1 " in line, line
    assert "tenant=default" in line and "key_id=" in line and "latency_ms=" in line
    assert KEY not in output
    unmatched = [line for line in output.splitlines() if "text-line-2" in line]
    assert len(unmatched) == 1 and "GET /v2/no/such/thing 404 " in unmatched[0], unmatched  # the real path


def test_refused_websocket_handshake_logs_no_error(text_server: tuple[Proc, dict[str, str]]) -> None:
    api, env = text_server
    created = subprocess.run(
        [*INFERLINE, "keys", "create", "--scope", "read"], env=env, capture_output=True, text=True, timeout=60
    )
    assert created.returncode == 0, created.stderr
    read = next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("key:"))
    url = (
        api.url.replace("http://", "ws://") + "/v2/text-to-speech/speech?voice=Telnyx.Piper.en_US-joe-medium"
    )
    with (
        pytest.raises(websockets.exceptions.InvalidStatus) as refused,
        websockets.sync.client.connect(url, additional_headers={"Authorization": f"Bearer {read}"}),
    ):
        pass
    assert refused.value.response.status_code == 403
    assert b"10010" in refused.value.response.body
    _wait_for(api, '"WebSocket /v2/text-to-speech/speech?voice=Telnyx.Piper.en_US-joe-medium" 403')
    time.sleep(1)  # uvicorn logs a handshake error just after the app returns
    output = api.output()
    assert "ASGI callable returned" not in output and "ERROR" not in output, output[-3000:]
