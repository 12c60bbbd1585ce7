"""The contract every area relies on: auth, error envelope, routing of the whole spec, model listing."""

from __future__ import annotations

import httpx
import pytest
import telnyx

from inferline.web.unbuilt import spec_operations
from tests.conftest import LiveServer


def assert_envelope(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    openai_path = "/ai/openai/" in response.request.url.path  # OpenAI's error object rides beside
    assert set(body) == ({"errors", "error"} if openai_path else {"errors"})
    (error,) = body["errors"]
    if openai_path:
        assert body["error"]["message"] == error["detail"] and body["error"]["code"] == error["code"]
    assert {"code", "title", "detail"} <= set(error)
    assert all(isinstance(error[k], str) and error[k] for k in ("code", "title", "detail"))
    return error


def test_models_list_through_sdk_strict(client: telnyx.Telnyx) -> None:
    models = client.ai.openai.list_models()
    ids = {m.id for m in models.data}
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in ids
    smol = next(m for m in models.data if m.id == "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert smol.organization == "HuggingFaceTB" and smol.parameters == 135_000_000
    assert smol.is_fine_tunable is True
    assert smol.created.year == 2026


def test_deprecated_models_path_gives_same_payload(http: httpx.Client) -> None:
    assert http.get("/ai/models").json() == http.get("/ai/openai/models").json()


def test_openai_sdk_lists_models(server: LiveServer) -> None:
    import openai

    oai = openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0)
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in {m.id for m in oai.models.list()}


def test_missing_key_is_401_envelope(server: LiveServer) -> None:
    error = assert_envelope(httpx.get(server.v2 + "/ai/openai/models"), 401)
    assert error["code"] == "10009"


def test_unknown_key_is_401_through_sdk(server: LiveServer) -> None:
    bad = telnyx.Telnyx(api_key="KEYnope", base_url=server.v2, max_retries=0)
    with pytest.raises(telnyx.AuthenticationError):
        bad.ai.openai.list_models()


def test_revoked_key_is_refused(server: LiveServer) -> None:
    info, secret = server.container.keys.create("tenant-c")
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(server.v2 + "/ai/openai/models", headers=headers).status_code == 200
    server.container.keys.revoke(info.id)
    assert_envelope(httpx.get(server.v2 + "/ai/openai/models", headers=headers), 401)


def test_unknown_route_is_404_envelope(http: httpx.Client) -> None:
    error = assert_envelope(http.get("/ai/no-such-thing"), 404)
    assert error["code"] == "10005"
    assert_envelope(httpx.get(str(http.base_url).replace("/v2", "/nope")), 404)


def test_wrong_method_is_405_envelope(http: httpx.Client) -> None:
    assert_envelope(http.delete("/ai/openai/models"), 405)


def test_oversized_body_is_413(http: httpx.Client) -> None:
    assert_envelope(http.post("/ai/conversations", content=b"x" * (3 * 1024 * 1024)), 413)


def test_every_spec_operation_is_routed(http: httpx.Client) -> None:
    """Each spec operation answers with its real handler or a 501 envelope; none falls through to 404/405."""
    for method, path in spec_operations():
        concrete = path.replace("{", "").replace("}", "")
        response = http.request(method, concrete)
        assert response.status_code not in (404, 405) or response.json()["errors"][0]["title"] not in (
            "Route not found",
            "Method not allowed",
        ), f"{method} {path} is not routed"
        if response.status_code == 501:
            assert_envelope(response, 501)


def test_unbuilt_endpoint_needs_auth(server: LiveServer) -> None:
    assert_envelope(httpx.post(server.v2 + "/ai/fine_tuning/jobs/x/cancel"), 401)


def test_request_id_is_echoed(http: httpx.Client) -> None:
    response = http.get("/ai/openai/models", headers={"x-request-id": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
