"""Signed webhook delivery against a local receiver: Ed25519 signatures verified by the telnyx SDK's
`webhooks.unwrap`, retries with backoff on non-2xx and connection errors, attempts recorded, URL guard."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import telnyx

from inferline.areas.conversations.webhooks import WebhookService
from tests.conftest import LiveServer, free_port


class Receiver:
    """An http.server on 127.0.0.1 that answers with scripted statuses and records every request."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                receiver.requests.append((dict(self.headers.items()), body))
                n = len(receiver.requests) - 1
                status = receiver.statuses[min(n, len(receiver.statuses) - 1)]
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/insights"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"receiver got {len(self.requests)} of {count} requests"
            time.sleep(0.05)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver_factory() -> Iterator:  # type: ignore[type-arg]
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.close()


def public_key(http: httpx.Client) -> str:
    return http.get("/ai/conversations/webhook-public-key").json()["data"]["public_key"]


def enqueue(server: LiveServer, url: str, body: dict, *, max_attempts: int = 5) -> str:
    container = server.container
    service = WebhookService(
        container.db, container.jobs, container.webhooks.signer, max_attempts=max_attempts
    )
    run_id = str(uuid.uuid4())
    with container.db.session() as s:
        service.enqueue(
            s,
            tenant_id="default",
            url=url,
            event_type="call.conversation_insights.generated",
            body=body,
            run_id=run_id,
        )
    return run_id  # the queue wakes the worker after the commit


def wait_delivery(server: LiveServer, run_id: str, status: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        (delivery,) = server.container.webhooks.deliveries("default", run_id)
        if delivery["status"] == status:
            return delivery
        assert time.monotonic() < deadline, delivery
        time.sleep(0.05)


EVENT = {
    "data": {
        "record_type": "event",
        "event_type": "call.conversation_insights.generated",
        "id": "4f8b8f9e-1c1d-4e55-9d9c-2f6a1b0c3d4e",
        "occurred_at": "2026-11-25T21:00:00Z",
        "payload": {"insight_group_id": "g", "results": [{"insight_id": "i", "result": {"score": 3}}]},
    }
}


def test_signed_delivery_retried_after_500_and_verified_by_sdk(
    server: LiveServer, client: telnyx.Telnyx, http: httpx.Client, receiver_factory
) -> None:
    receiver = receiver_factory([500, 200])
    run_id = enqueue(server, receiver.url, EVENT)
    receiver.wait(2)
    key = public_key(http)
    for headers, body in receiver.requests:
        event = client.webhooks.unwrap(body, headers=headers, key=key)
        assert event.data is not None and event.data.event_type == "call.conversation_insights.generated"
        assert event.data.payload is not None and event.data.payload.results[0].result == {"score": 3}
        assert headers["content-type"] == "application/json"
        assert json.loads(body) == EVENT
    headers, body = receiver.requests[1]
    with pytest.raises(ValueError, match="Signature"):
        client.webhooks.unwrap(body.replace('"score":3', '"score":4'), headers=headers, key=key)
    with pytest.raises(ValueError):
        stale = {**headers, "telnyx-timestamp": str(int(headers["telnyx-timestamp"]) - 3600)}
        client.webhooks.unwrap(body, headers=stale, key=key)
    delivery = wait_delivery(server, run_id, "delivered")
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2]
    assert delivery["delivered_at"] is not None


def test_unreachable_receiver_fails_with_reason_after_retries(server: LiveServer) -> None:
    url = f"http://127.0.0.1:{free_port()}/closed"
    run_id = enqueue(server, url, EVENT, max_attempts=2)
    delivery = wait_delivery(server, run_id, "failed")
    assert len(delivery["attempts"]) == 2
    assert all(a["status_code"] is None and "Connect" in a["error"] for a in delivery["attempts"])
    assert "failed" in delivery["last_error"]


def test_private_target_is_refused_at_delivery(server: LiveServer) -> None:
    run_id = enqueue(server, "http://10.255.255.1/hook", EVENT)
    delivery = wait_delivery(server, run_id, "failed")
    assert len(delivery["attempts"]) == 1 and "private, loopback" in delivery["last_error"]


def test_signature_is_over_timestamp_and_body(server: LiveServer, http: httpx.Client) -> None:
    import base64

    from nacl.signing import VerifyKey

    headers = server.container.webhooks.signer.headers('{"a":1}', timestamp=1700000000)
    assert headers["telnyx-timestamp"] == "1700000000"
    VerifyKey(base64.b64decode(public_key(http))).verify(
        b'1700000000|{"a":1}', base64.b64decode(headers["telnyx-signature-ed25519"])
    )


def test_cli_prints_the_same_public_key(server: LiveServer, http: httpx.Client) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "INFERLINE_DATABASE_URL": server.container.settings.resolved_database_url,
        "INFERLINE_DATA_DIR": str(server.container.settings.data_dir),
    }
    out = subprocess.run(
        [sys.executable, "-m", "inferline", "webhooks", "public-key"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == public_key(http)
