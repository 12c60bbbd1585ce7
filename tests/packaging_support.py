"""Fixtures of the packaging tests (tests/offline_bundle.py, tests/test_image.py): the test-profile bundle, a
Docker daemon started by the test, and base images made locally (no image registry is reachable).

Downloads are cached under $INFERLINE_PACKAGING_CACHE (default /var/tmp/inferline-packaging): the Debian
root file system of the base image, the pgserver wheel, and the Docker daemon's data (so images built once
are reused). The project's wheels come through pip's own cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import MODELS_DIR

CACHE = Path(os.environ.get("INFERLINE_PACKAGING_CACHE", "/var/tmp/inferline-packaging"))
SMOL_DIR = MODELS_DIR / "HuggingFaceTB--SmolLM2-135M-Instruct"
REGISTERED = "local/smol-copy"
ALIAS = "smol-alias"
BASE_IMAGE = "inferline-test-base:bookworm"
PG_IMAGE = "inferline-test-pgvector:16"
PG_BIN = "/opt/pgserver/pgserver/pginstall/bin"  # the pgserver wheel's PostgreSQL, in the test's image


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without INFERLINE_* settings or a config file, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERLINE_")}
    env.update(INFERLINE_CONFIG="", **extra)
    return env


def build_test_bundle(work: Path) -> Path:
    """The test profile's bundle plus a registered model (a copy of SmolLM2 registered as REGISTERED with an
    alias and a setting): built by `inferline bundle` from this checkout; returns the tarball."""
    models = work / "build-models"
    models.mkdir(parents=True)
    for entry in MODELS_DIR.iterdir():  # the installed catalog models, so nothing is downloaded again
        if entry.is_dir() and not entry.name.startswith("."):
            (models / entry.name).symlink_to(entry.resolve())
    env = clean_env(INFERLINE_DATA_DIR=str(work / "build-data"), INFERLINE_MODELS_DIR=str(models))
    inferline = [sys.executable, "-m", "inferline"]
    subprocess.run(
        [*inferline, "models", "add", str(SMOL_DIR / "model.gguf"), "--id", REGISTERED, "--alias", ALIAS,
         "--set", "context=2048"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    out = subprocess.run(
        [*inferline, "bundle", "--profile", "test", "--model", REGISTERED, "--output", str(work / "out")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (tarball,) = (work / "out").glob("inferline-*-test-*.tar")
    return tarball


def extract(tarball: Path, into: Path) -> Path:
    """The bundle's top folder, extracted into `into`."""
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="tar")
    (top,) = into.iterdir()
    return top


@pytest.fixture(scope="session")
def offline_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tarball of the test-profile bundle (with the registered model)."""
    work = tmp_path_factory.mktemp("bundle-build")
    yield build_test_bundle(work)
    shutil.rmtree(work, ignore_errors=True)


# ---- a Docker daemon of the test's own -----------------------------------------------------------------


@dataclass
class Docker:
    """A reachable Docker daemon: `run()` its CLI with DOCKER_HOST set."""

    host: str
    cli: str

    @property
    def env(self) -> dict[str, str]:
        """DOCKER_HOST, and docker's classic builder unless the CLI has BuildKit's front end (buildx)."""
        env = {**os.environ, "DOCKER_HOST": self.host}
        if (
            "DOCKER_BUILDKIT" not in env
            and subprocess.run([self.cli, "buildx", "version"], capture_output=True).returncode
        ):
            env["DOCKER_BUILDKIT"] = "0"
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([self.cli, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
        return out

    def has_image(self, name: str) -> bool:
        return self.run("image", "inspect", name, check=False).returncode == 0


def engine_skip_reason() -> str | None:
    """Why the container tests cannot run here, or None."""
    if not shutil.which("docker"):
        return "no container engine: the docker CLI is not installed (Debian: apt-get install docker.io)"
    if os.environ.get("DOCKER_HOST"):
        return None
    if os.geteuid() != 0:
        return "starting dockerd needs root (or set DOCKER_HOST to a running daemon)"
    if not shutil.which("dockerd"):
        return "no container engine: dockerd is not installed (Debian: apt-get install docker.io)"
    return None


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    """DOCKER_HOST's daemon when set; else a dockerd started here as root with no bridge network at all
    (`--bridge=none`, no iptables): containers can only use the host's network, on loopback addresses."""
    if reason := engine_skip_reason():
        pytest.skip(reason)
    cli = shutil.which("docker") or "docker"
    if host := os.environ.get("DOCKER_HOST"):
        yield Docker(host, cli)
        return
    run_dir = Path(tempfile.mkdtemp(prefix="inferline-dockerd-"))
    sock = run_dir / "docker.sock"
    log = (run_dir / "dockerd.log").open("wb")
    daemon = subprocess.Popen(
        ["dockerd", "--data-root", str(CACHE / "docker"), "--exec-root", str(run_dir / "exec"),
         "--pidfile", str(run_dir / "dockerd.pid"), "-H", f"unix://{sock}",
         "--bridge=none", "--iptables=false", "--ip6tables=false"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    found = Docker(f"unix://{sock}", cli)
    try:
        deadline = time.monotonic() + 60
        while found.run("info", check=False).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                tail = (run_dir / "dockerd.log").read_text(errors="replace")[-1500:]
                pytest.skip(f"dockerd cannot run in this sandbox; its log ends:\n{tail}")
            time.sleep(0.5)
        yield found
        found.run("image", "prune", "-f", check=False)  # the builds' dangling images, in this daemon's cache
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        for mount in run_dir.glob("exec/netns/*"):  # dockerd's network namespace stays bind-mounted
            subprocess.run(["umount", str(mount)], capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)


def debian_rootfs() -> Path:
    """A Debian bookworm root file system with Debian's python3.11 (debootstrap, cached as a tarball)."""
    cached = CACHE / "bookworm-python3.11.tar"
    if cached.is_file():
        return cached
    if not shutil.which("debootstrap"):
        pytest.skip(f"no base image: {BASE_IMAGE} is missing and debootstrap is not installed")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "root"
        out = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3.11", "bookworm", str(root),
             "http://deb.debian.org/debian"],
            capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        if out.returncode != 0:
            pytest.skip(
                f"debootstrap of Debian bookworm failed (network?): {out.stdout[-800:]}{out.stderr[-800:]}"
            )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(root / junk, ignore_errors=True)
        partial = cached.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(cached)
    return cached


@pytest.fixture(scope="session")
def base_image(docker: Docker) -> str:
    """A slim Debian image with Python 3.11, made locally: $INFERLINE_TEST_BASE_IMAGE when set, else
    debootstrap's bookworm imported with `docker import`."""
    if named := os.environ.get("INFERLINE_TEST_BASE_IMAGE"):
        return named
    if not docker.has_image(BASE_IMAGE):
        with debian_rootfs().open("rb") as rootfs:
            subprocess.run(
                [docker.cli, "import", "-", BASE_IMAGE], stdin=rootfs, env=docker.env, check=True,
                capture_output=True,
            )  # fmt: skip
    return BASE_IMAGE


PG_ENTRYPOINT = r"""#!/bin/sh
# The official postgres image's interface: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGPORT, PGDATA.
set -eu
export PATH=/opt/pgserver/pgserver/pginstall/bin:$PATH PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "$POSTGRES_PASSWORD" > /tmp/pw
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/pw -A scram-sha-256 -E UTF8 --no-locale >/dev/null
    rm /tmp/pw
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432} -k /tmp" -w start >/dev/null
    PGPASSWORD=$POSTGRES_PASSWORD psql -h /tmp -p "${PGPORT:-5432}" -U "$POSTGRES_USER" -d postgres -q \
        -c "CREATE DATABASE \"$POSTGRES_DB\""
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
[ "$1" = postgres ] && shift && exec postgres -k /tmp "$@"
exec "$@"
"""


@pytest.fixture(scope="session")
def pgvector_image(docker: Docker, base_image: str) -> str:
    return build_pgvector_image(docker, base_image)


def build_pgvector_image(docker: Docker, base_image: str) -> str:
    """PostgreSQL 16 + pgvector (from the pinned pgserver wheel) on the base image, behaving like the
    official pgvector/pgvector image for what compose.yaml uses."""
    if docker.has_image(PG_IMAGE):
        return PG_IMAGE
    wheels = CACHE / "pgserver"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(wheels), "pgserver==0.1.4"],
        check=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("pgserver-0.1.4-*.whl")
    with tempfile.TemporaryDirectory() as context:
        import zipfile

        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(Path(context) / "pgserver")  # the binaries find their libraries relative to it
        (Path(context) / "entrypoint.sh").write_text(PG_ENTRYPOINT)
        (Path(context) / "Dockerfile").write_text(
            f"FROM {base_image}\n"
            "COPY pgserver /opt/pgserver\n"
            "COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
            f"RUN chmod -R a+rX /opt/pgserver && chmod a+x {PG_BIN}/* /usr/local/bin/docker-entrypoint.sh"
            f" && ln -s {PG_BIN}/pg_isready /usr/local/bin/pg_isready"
            " && useradd --system --home-dir /var/lib/postgresql postgres"
            " && mkdir -p /var/lib/postgresql/data && chown -R postgres /var/lib/postgresql\n"
            "USER postgres\n"
            'ENTRYPOINT ["docker-entrypoint.sh"]\n'
            'CMD ["postgres"]\n'
        )
        docker.run("build", "--network", "none", "-t", PG_IMAGE, context)
    return PG_IMAGE
