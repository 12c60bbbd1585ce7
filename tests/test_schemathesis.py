"""Schemathesis against the bundled official spec subset: no generated request may cause a 5xx.

Every implemented operation of `src/inferline/spec/*.json` gets `FUZZ_EXAMPLES` schema-valid and
schema-invalid requests (deterministic, so CI is reproducible) against a real server process on loopback.
Operations answering 501 (not implemented) would be left out; `test_every_spec_operation_is_fuzzed` names
them. Any 4xx of the Telnyx API must be the Telnyx error envelope. Generated bodies are bounded
(`max_tokens` <= 8, `n` <= 2) to keep it fast; the server runs no job worker, so accepted jobs only queue.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode

import inferline
from inferline.api.unbuilt import spec_operations
from inferline.app import PREFIX, create_app
from inferline.config import Settings
from tests.conftest import API_KEY
from tests.databases import DatabaseFactory
from tests.procs import Proc, Processes, base_env

SPEC_DIR = Path(inferline.__file__).parent / "spec"
FUZZ_EXAMPLES = int(os.environ.get("INFERLINE_FUZZ_EXAMPLES", "25"))
BOUNDS = {"max_tokens": 8, "max_completion_tokens": 8, "n": 2, "best_of": 2, "num_of_docs": 5}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def implemented_operations() -> set[tuple[str, str]]:
    """(METHOD, spec path) of every spec operation an area router serves: those in the app's own OpenAPI
    document (the 501 fallback routes are not in it)."""
    served = {
        (method.upper(), _shape(path))
        for path, item in create_app(Settings()).openapi()["paths"].items()
        for method in item
    }
    return {(m, p) for m, p in spec_operations() if (m, _shape(PREFIX + p)) in served}


IMPLEMENTED = implemented_operations()


def load(name: str) -> Any:
    schema = schemathesis.openapi.from_path(SPEC_DIR / name)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=FUZZ_EXAMPLES,
        deterministic=True,
        database="none",
    )
    # The spec's examples, then random valid and invalid requests; the exhaustive per-field coverage phase
    # is left out to keep the suite's time bounded.
    schema.config.phases.update(phases=["examples", "fuzzing"])
    schema = schema.include(lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in IMPLEMENTED)

    @schema.hook
    def map_body(context: Any, body: Any) -> Any:
        if isinstance(body, dict):
            for field, bound in BOUNDS.items():
                value = body.get(field)
                if isinstance(value, int) and not isinstance(value, bool) and value > bound:
                    body[field] = bound
        return body

    return schema


ai_schema = load("telnyx-ai.openapi.json")
adjacent_schema = load("telnyx-ai-adjacent.openapi.json")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Iterator[Proc]:
    procs = Processes(tmp_path_factory.mktemp("fuzz-logs"))
    env = base_env(
        tmp_path_factory.mktemp("fuzz"),
        databases.new("fuzz"),
        INFERLINE_API_KEY=API_KEY,
        INFERLINE_EMBEDDED_WORKER="false",
    )
    try:
        yield procs.serve("fuzz", env)
    finally:
        procs.stop_all()


def call(case: schemathesis.Case, server: Proc) -> Any:
    if isinstance(case.body, dict) and "messages" in case.body and "max_tokens" not in case.body:
        case.body["max_tokens"] = BOUNDS["max_tokens"]  # a chat request without it would decode for long
    if os.environ.get("INFERLINE_FUZZ_TRACE"):
        print(case.method, case.formatted_path, str(case.body)[:300], flush=True)
    response = case.call(
        base_url=f"{server.url}/v2", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120
    )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}\n"
        f"reproduce: {case.as_curl_command()}"
    )
    return response


SETTINGS = hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))


@ai_schema.parametrize()
@SETTINGS
def test_ai_spec_operations_never_5xx(case: schemathesis.Case, fuzz_server: Proc) -> None:
    response = call(case, fuzz_server)
    if 400 <= response.status_code < 500 and "json" in response.headers.get("content-type", ""):
        errors = response.json().get("errors")
        assert isinstance(errors, list) and errors and {"code", "title", "detail"} <= set(errors[0]), (
            f"{case.method} {case.formatted_path} -> {response.status_code} without the Telnyx envelope: "
            f"{response.text[:300]}"
        )


@adjacent_schema.parametrize()
@SETTINGS
def test_adjacent_spec_operations_never_5xx(case: schemathesis.Case, fuzz_server: Proc) -> None:
    call(case, fuzz_server)


def test_every_spec_operation_is_fuzzed() -> None:
    """Every spec operation is fuzzed except the WebSocket speech stream, which plain HTTP cannot drive
    (a plain GET is a 400 naming the upgrade; tests/test_tts_stream.py covers the WebSocket)."""
    assert sorted(set(spec_operations()) - IMPLEMENTED) == [("GET", "/text-to-speech/speech")]
