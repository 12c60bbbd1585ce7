"""Values a database cannot store are the client's 400, never a 500, and leave nothing half-written.

PostgreSQL refuses NUL characters in text; SQLite stores them. Either way the answer is not a 5xx, and a
refused request stores nothing (found by tests/test_schemathesis.py in the PostgreSQL pass).
"""

from __future__ import annotations

import httpx
import pytest

NUL = "before\u0000after"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/ai/conversations/insights", {"name": "nul", "instructions": NUL}),
        ("/ai/conversations/insight-groups", {"name": NUL}),
        ("/ai/conversations", {"name": NUL}),
    ],
)
def test_nul_characters_are_never_a_server_error(http: httpx.Client, path: str, body: dict) -> None:
    before = http.get(path).json()
    response = http.post(path, json=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        (error,) = response.json()["errors"]
        assert error["code"] == "10015" and "cannot be stored" in error["detail"]
        assert http.get(path).json() == before  # nothing was stored


def test_nul_in_a_message_is_not_half_written(http: httpx.Client) -> None:
    conv = http.post("/ai/conversations", json={"name": "nul messages"}).json()
    response = http.post(f"/ai/conversations/{conv['id']}/message", json={"role": "user", "content": NUL})
    assert response.status_code < 500, response.text
    messages = http.get(f"/ai/conversations/{conv['id']}/messages").json()["data"]
    assert len(messages) == (1 if response.status_code < 300 else 0)
