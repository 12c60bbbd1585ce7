"""The container image (issue 17), built from the test-profile bundle with `--network none`, on a base image
made locally (debootstrap's Debian bookworm with its python3.11, imported with `docker import`: no image
registry is reachable here), by a dockerd the test starts as root with no bridge network. Containers use the
host's network on loopback ports only; the telnyx SDK drives them. Then packaging/compose.yaml's production
layout: PostgreSQL + pgvector, two API replicas and two workers.

Skipped with the reason where no container engine exists (no docker CLI or dockerd, not root, or dockerd
cannot run in the sandbox).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import telnyx

from tests import packaging_support
from tests.conftest import REPO, free_port
from tests.packaging_smoke import KEY, SMOL, smoke, wait_ready
from tests.packaging_support import ALIAS, PG_BIN, REGISTERED, Docker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(os.environ.get("INFERLINE_TEST_DATABASE_URL")),
        reason="packaging does not depend on the test database: it runs once per CI run (the SQLite pass)",
    ),
]
offline_bundle = packaging_support.offline_bundle
docker = packaging_support.docker
base_image = packaging_support.base_image
pgvector_image = packaging_support.pgvector_image
TAG = "inferline:test"
FIGURES = REPO / "dist" / "image-figures.json"


@pytest.fixture(scope="module")
def image(docker: Docker, base_image: str, offline_bundle: Path) -> str:
    """inferline:test, built by scripts/build_image.py (`make image`), which records its figures."""
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_image.py"), str(offline_bundle), "--tag", TAG,
         "--base-image", base_image, "--figures", str(FIGURES)],
        env=docker.env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert out.returncode == 0, f"{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return TAG


def health(docker: Docker, container: str, timeout: float = 120) -> str:
    """The container's health once it is no longer `starting`."""
    deadline = time.monotonic() + timeout
    while True:
        status = docker.run("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()
        if status != "starting" or time.monotonic() > deadline:
            return status
        time.sleep(1)


@pytest.fixture
def volume(docker: Docker) -> Iterator[str]:
    name = f"inferline-test-{uuid.uuid4().hex[:8]}"
    docker.run("volume", "create", name)
    yield name
    docker.run("volume", "rm", "-f", name, check=False)


def test_image_serves_the_api_and_runs_the_worker_offline(docker: Docker, image: str, volume: str) -> None:
    figures = json.loads(FIGURES.read_text())
    assert figures["image"] == TAG and figures["size_bytes"] > figures["bundle_bytes"] > 0
    assert figures["build_seconds"] > 0 and figures["ready_seconds"] > 0
    config = json.loads(docker.run("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "inferline" and list(config["Volumes"]) == ["/var/lib/inferline"]
    assert config["Healthcheck"]["Test"][-1] == "/opt/inferline/healthcheck.py"
    assert config["Entrypoint"] == ["/opt/inferline/entrypoint.sh"] and config["Cmd"] == ["serve"]

    port = free_port()
    common = ["run", "-d", "--network", "host", "-v", f"{volume}:/var/lib/inferline"]
    api = docker.run(
        *common, "--name", f"{volume}-api", "-e", "INFERLINE_HOST=127.0.0.1", "-e", f"INFERLINE_PORT={port}",
        "-e", f"INFERLINE_API_KEY={KEY}", "-e", "INFERLINE_EMBEDDED_WORKER=false", image,
    ).stdout.strip()  # fmt: skip
    worker = docker.run(*common, "--name", f"{volume}-worker", image, "worker").stdout.strip()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, 300)
        # The API has no embedded worker: the bucket's embedding job can only run in the worker container.
        report = smoke(url, registered=REGISTERED, alias=ALIAS)
        assert set(report["replies"]) == {SMOL, REGISTERED, ALIAS} and all(report["replies"].values())
        assert report["task"] == "success" and report["top_hit"] == "bread.txt"
        for container in (api, worker):
            attrs = json.loads(docker.run("inspect", container).stdout)[0]
            assert attrs["HostConfig"]["NetworkMode"] == "host"
            assert docker.run("exec", container, "id", "-u").stdout.strip() == "10001"
            assert health(docker, container) == "healthy"
    finally:
        docker.run("rm", "-f", api, worker, check=False)


def compose_cli(docker: Docker) -> list[str] | None:
    if docker.run("compose", "version", check=False).returncode == 0:
        return [docker.cli, "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


def test_compose_runs_the_production_layout(docker: Docker, image: str, pgvector_image: str) -> None:
    cli = compose_cli(docker)
    if cli is None:
        pytest.skip("no compose: neither `docker compose` nor docker-compose (Debian: docker-compose)")
    project = f"inferline-test-{uuid.uuid4().hex[:8]}"
    ports = {
        name: free_port() for name in ("INFERLINE_API1_PORT", "INFERLINE_API2_PORT", "INFERLINE_DB_PORT")
    }
    env = {
        **docker.env,
        **{k: str(v) for k, v in ports.items()},
        "INFERLINE_IMAGE": image,
        "POSTGRES_IMAGE": pgvector_image,
        "INFERLINE_DB_PASSWORD": uuid.uuid4().hex,
        "INFERLINE_API_KEY": KEY,
        "INFERLINE_LOG_LEVEL": "warning",
    }
    compose = [*cli, "-p", project, "-f", str(REPO / "packaging" / "compose.yaml")]
    try:
        up = subprocess.run([*compose, "up", "-d"], env=env, capture_output=True, text=True, timeout=900)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        api_1 = f"http://127.0.0.1:{ports['INFERLINE_API1_PORT']}"
        api_2 = f"http://127.0.0.1:{ports['INFERLINE_API2_PORT']}"
        wait_ready(api_1, 300)
        wait_ready(api_2, 300)
        report = smoke(api_1, registered=REGISTERED, alias=ALIAS)
        assert report["task"] == "success" and REGISTERED in report["models"]
        # The other replica sees the same rows, objects and vector index (PostgreSQL + pgvector, one volume).
        other = telnyx.Telnyx(
            api_key=KEY, base_url=f"{api_2}/v2", _strict_response_validation=True, max_retries=0
        )
        hits = other.ai.embeddings.similarity_search(
            bucket_name=report["bucket"], query="harbour cranes and containers", num_of_docs=1
        )
        assert hits.data[0].metadata.filename == "harbour.txt"
        ps = subprocess.run([*compose, "ps", "-q"], env=env, capture_output=True, text=True, check=True)
        containers = ps.stdout.split()
        assert len(containers) == 5
        for container in containers:
            attrs = json.loads(docker.run("inspect", container).stdout)[0]
            assert attrs["HostConfig"]["NetworkMode"] == "host", attrs["Name"]
        (database,) = subprocess.run(
            [*compose, "ps", "-q", "db"], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        vector = docker.run(
            "exec", "-e", f"PGPASSWORD={env['INFERLINE_DB_PASSWORD']}", database, f"{PG_BIN}/psql",
            "-h", "127.0.0.1", "-p", str(ports["INFERLINE_DB_PORT"]), "-U", "inferline", "-d", "inferline",
            "-tAc", "SELECT extname FROM pg_extension",
        )  # fmt: skip
        assert "vector" in vector.stdout.split()
    finally:
        subprocess.run([*compose, "down", "-v"], env=env, capture_output=True, timeout=300)
