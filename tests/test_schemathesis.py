"""Schemathesis against the bundled official spec subset: no generated request may cause a 5xx.

Every operation the server routes, of every spec file in `src/inferline/spec/` (and of any file named in
`INFERLINE_FUZZ_EXTRA_SPECS`, e.g. the extended spec whose endpoints are not all built; a file none of whose
operations is routed is left out), gets `FUZZ_EXAMPLES` schema-valid and schema-invalid requests
(deterministic, so CI is reproducible) against a real server process on loopback. Operations answering 501
(not implemented) would be left out; `test_every_spec_operation_is_fuzzed` names them. Every 4xx must be the
Telnyx error envelope. Generated bodies are bounded (`max_tokens` <= 8, `n` <= 2) to keep it fast; the server
runs no job worker, so accepted jobs only queue. `HOSTILE` adds hand-written requests no schema generates
(bodies too deep, not UTF-8 or chunked past the limit, filters nested 1,000 deep, paging past 64 bits).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode

import inferline
from inferline.app import PREFIX, create_app
from inferline.config import Settings
from inferline.web.unbuilt import METHODS, spec_operations
from tests.conftest import API_KEY
from tests.databases import DatabaseFactory
from tests.procs import Proc, Processes, base_env

SPEC_DIR = Path(inferline.__file__).parent / "spec"
EXTRA_SPECS = [Path(p) for p in os.environ.get("INFERLINE_FUZZ_EXTRA_SPECS", "").split(os.pathsep) if p]
FUZZ_EXAMPLES = int(os.environ.get("INFERLINE_FUZZ_EXAMPLES", "25"))
BOUNDS = {"max_tokens": 8, "max_completion_tokens": 8, "n": 2, "best_of": 2, "num_of_docs": 5}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


# (METHOD, path shape) of every operation an area router serves: those in the app's own OpenAPI document
# (the 501 fallback routes are not in it).
SERVED = {
    (method.upper(), _shape(path))
    for path, item in create_app(Settings()).openapi()["paths"].items()
    for method in item
}


def served(method: str, path: str) -> bool:
    return (method.upper(), _shape(PREFIX + path)) in SERVED


IMPLEMENTED = {(m, p) for m, p in spec_operations() if served(m, p)}


def routed_operations(path: Path) -> int:
    spec = json.loads(path.read_text())
    return sum(served(m, p) for p, item in spec["paths"].items() for m in item if m in METHODS)


def load(path: Path) -> Any:
    schema = schemathesis.openapi.from_path(path)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=FUZZ_EXAMPLES,
        deterministic=True,
        database="none",
    )
    # The spec's examples, then random valid and invalid requests; the exhaustive per-field coverage phase
    # is left out to keep the suite's time bounded.
    schema.config.phases.update(phases=["examples", "fuzzing"])
    schema = schema.include(lambda ctx: served(ctx.operation.method, ctx.operation.path))

    @schema.hook
    def map_body(context: Any, body: Any) -> Any:
        if isinstance(body, dict):
            for field, bound in BOUNDS.items():
                value = body.get(field)
                if isinstance(value, int) and not isinstance(value, bool) and value > bound:
                    body[field] = bound
        return body

    return schema


SPEC_FILES = [p for p in [*sorted(SPEC_DIR.glob("*.json")), *EXTRA_SPECS] if routed_operations(p)]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Iterator[Proc]:
    procs = Processes(tmp_path_factory.mktemp("fuzz-logs"))
    env = base_env(
        tmp_path_factory.mktemp("fuzz"),
        databases.new("fuzz"),
        INFERLINE_API_KEY=API_KEY,
        INFERLINE_EMBEDDED_WORKER="false",
        INFERLINE_MAX_REQUEST_BYTES=str(2 * 1024 * 1024),
    )
    try:
        yield procs.serve("fuzz", env)
    finally:
        procs.stop_all()


def call(case: schemathesis.Case, server: Proc) -> Any:
    if isinstance(case.body, dict) and "messages" in case.body and "max_tokens" not in case.body:
        case.body["max_tokens"] = BOUNDS["max_tokens"]  # a chat request without it would decode for long
    if case.path == "/ai/openai/responses" and isinstance(case.body, dict):
        case.body.setdefault("max_output_tokens", BOUNDS["max_tokens"])  # the same for a Responses request
    if os.environ.get("INFERLINE_FUZZ_TRACE"):
        print(case.method, case.formatted_path, str(case.body)[:300], flush=True)
    response = case.call(
        base_url=f"{server.url}/v2", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120
    )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}\n"
        f"reproduce: {case.as_curl_command()}"
    )
    assert_telnyx_4xx(response, f"{case.method} {case.formatted_path}")
    return response


def assert_telnyx_4xx(response: Any, what: str) -> None:
    """A 4xx is JSON holding the Telnyx envelope: `errors`, each with a 5-digit code, a title, a detail."""
    if not 400 <= response.status_code < 500:
        return
    problem = f"{what} -> {response.status_code} without the Telnyx envelope: {response.text[:300]}"
    content_type = response.headers.get("content-type", "")  # schemathesis gives a list of values
    assert "json" in str(content_type), problem
    errors = response.json().get("errors")
    assert isinstance(errors, list) and errors, problem
    assert all({"code", "title", "detail"} <= set(e) and re.fullmatch(r"\d{5}", e["code"]) for e in errors), (
        problem
    )


SETTINGS = hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))


def fuzz_test(schema: Any) -> Any:
    @schema.parametrize()
    @SETTINGS
    def test(case: schemathesis.Case, fuzz_server: Proc) -> None:
        call(case, fuzz_server)

    return test


for _path in SPEC_FILES:  # test_telnyx_ai_never_5xx, test_telnyx_ai_adjacent_never_5xx, ...
    _name = "test_" + re.sub(r"\W", "_", _path.name.removesuffix(".openapi.json")) + "_never_5xx"
    globals()[_name] = fuzz_test(load(_path))


def _chunks() -> Iterator[bytes]:
    """3 MB sent chunked (no Content-Length), past the fuzz server's 2 MiB body limit."""
    for _ in range(30):
        yield b"x" * 100_000


DEEP_FILTER = "(" + "or(" * 1000 + "name.eq.x" + ")" * 1000 + ")"
JSON = {"content-type": "application/json"}
PRESIGNED_BAD_EXPIRES = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=abc&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
)
# (id, method, path, httpx keyword arguments, the status expected; None: any 4xx, for S3's own errors)
HOSTILE: list[tuple[str, str, str, dict[str, Any], int | None]] = [
    ("filter-1000-deep", "GET", "/ai/conversations", {"params": {"or": DEEP_FILTER}}, 400),
    ("filter-1500-terms", "GET", "/ai/conversations", {"params": [("name", "neq.x")] * 1500}, 400),
    ("offset-1e20", "GET", "/ai/conversations", {"params": {"offset": str(10**20)}}, 422),
    ("limit-1e20", "GET", "/ai/conversations", {"params": {"limit": str(10**20)}}, 422),
    ("page-number-1e18", "GET", "/ai/conversations/insights", {"params": {"page[number]": str(10**18)}}, 422),
    ("page-size-negative", "GET", "/ai/conversations/insight-groups", {"params": {"page[size]": "-1"}}, 422),
    ("events-after-1e20", "GET", "/ai/fine_tuning/jobs/x/events", {"params": {"after": str(10**20)}}, 422),
    ("json-100000-deep", "POST", "/ai/conversations", {"content": b"[" * 100_000 + b"]" * 100_000}, 400),
    ("body-not-utf8", "POST", "/ai/chat/completions", {"content": b'{"model":"\xff\xfe"}'}, 400),
    ("integer-5000-digits", "POST", "/ai/conversations", {"content": b'{"name":' + b"9" * 5000 + b"}"}, 400),
    ("nan", "POST", "/ai/conversations", {"content": b'{"name":"x","metadata":{"a":NaN}}'}, 422),
    ("duplicate-keys", "POST", "/ai/conversations", {"content": b'{"name":"x","name":"y"}'}, 200),
    ("chunked-past-limit", "POST", "/ai/conversations", {"content": _chunks}, 413),
    ("s3-bad-expires", "GET", "/s3/bucket/key?X-Amz-Expires=abc", {}, None),
    ("s3-presigned-bad-expires", "GET", "/s3/bucket/key?" + PRESIGNED_BAD_EXPIRES, {}, None),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_requests_never_5xx(
    fuzz_server: Proc, method: str, path: str, kwargs: dict[str, Any], status: int | None
) -> None:
    kwargs = {**kwargs, "content": kwargs["content"]()} if callable(kwargs.get("content")) else kwargs
    base = fuzz_server.url if path.startswith("/s3") else f"{fuzz_server.url}/v2"
    headers = {"Authorization": f"Bearer {API_KEY}", **JSON}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        response = http.request(method, path, **kwargs)
    if status is None:  # S3 answers S3 XML errors
        assert 400 <= response.status_code < 500, response.text[:500]
        assert "<Error>" in response.text, response.text[:500]
        return
    assert response.status_code == status, response.text[:500]
    assert_telnyx_4xx(response, f"{method} {path[:80]}")


def test_every_spec_operation_is_fuzzed() -> None:
    """Every spec operation is fuzzed except the WebSocket speech stream, which plain HTTP cannot drive
    (a plain GET is a 400 naming the upgrade; tests/test_tts_stream.py covers the WebSocket)."""
    assert sorted(set(spec_operations()) - IMPLEMENTED) == [("GET", "/text-to-speech/speech")]
