"""Runs tests/js/*.test.mjs (the seed's JavaScript examples) with node against the live server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LiveServer, s3_auth

JS_DIR = Path(__file__).parent / "js"


@pytest.mark.node
def test_seed_javascript_examples(server: LiveServer) -> None:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "telnyx").is_dir():
        pytest.fail("node and tests/js/node_modules are required: run `make test`, which installs them")
    env = {
        **os.environ,
        "INFERLINE_URL": server.v2,
        "INFERLINE_KEY": server.key_a,
        "INFERLINE_KEY_B": server.key_b,
        "INFERLINE_S3_ACCESS_KEY_ID": s3_auth(server.key_a)["aws_access_key_id"],
        "INFERLINE_S3_SECRET": s3_auth(server.key_a)["aws_secret_access_key"],
    }
    files = sorted(str(p.name) for p in JS_DIR.glob("*.test.mjs"))
    result = subprocess.run(
        [node, "--test", "--test-reporter=spec", *files],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
