"""Issue 14's new-user walkthrough, end to end: a fresh clone of the committed HEAD, `make serve` there, every
Python snippet of the clone's README against it, the CLI from another folder (keys, a bucket upload with its
progress and embedding, models list, fine-tuning list), then the mistakes a new user makes, each answered by
one line and a non-zero exit, never a traceback.

The clone builds its `.venv` on the packages of the environment running the tests (`make BASE_VENV=...`) and
serves the test profile's installed models, so it needs no network.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from inferline import catalog
from inferline.areas.conversations.webhooks import WebhookSigner
from inferline.stores.db import Database
from tests.conftest import MODELS_DIR, REPO, free_port
from tests.test_first_hour import assert_one_line_error
from tests.test_readme_snippets import python_snippets, reader_session, run_snippet

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(os.environ.get("INFERLINE_TEST_DATABASE_URL")),
        reason="the clone's server keeps its own SQLite data: it runs once per CI run (the SQLite pass)",
    ),
]


@dataclass
class Walk:
    """The clone, its `make serve` (a process group), and the new user's shell: HOME, the folder they work
    in (not the clone), and their environment."""

    clone: Path
    home: Path
    elsewhere: Path
    env: dict[str, str]
    url: str
    make: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`<clone>/.venv/bin/inferline ARGS` run in the other folder."""
        return subprocess.run(
            [str(self.clone / ".venv" / "bin" / "inferline"), *args],
            cwd=self.elsewhere,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def stop(self) -> None:
        """Ctrl-C's effect: SIGTERM to make and the server; returns once the port no longer answers."""
        if self.make.poll() is None:
            os.killpg(self.make.pid, signal.SIGTERM)
            try:
                self.make.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.make.pid, signal.SIGKILL)
                self.make.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/health", timeout=2)
            except httpx.TransportError:
                return
            time.sleep(0.2)
        os.killpg(self.make.pid, signal.SIGKILL)  # the server outlived make: end the group


def _user_env(home: Path, port: int) -> dict[str, str]:
    """A shell with no INFERLINE_*/XDG_*/PYTHONPATH settings (nor an outer make's), but for the port and the
    test profile the user exported; BASE_VENV and the models folder let `make serve` work offline."""
    drop = ("INFERLINE_", "XDG_", "MAKE", "MFLAGS", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        HOME=str(home),
        INFERLINE_PORT=str(port),
        INFERLINE_PROFILE="test",
        INFERLINE_MODELS_DIR=str(MODELS_DIR),
        BASE_VENV=sys.prefix,
        PYTHONUNBUFFERED="1",
        # One llama.cpp thread, as the test server has: its spinning threads slow down sharply when the cores
        # are oversubscribed (this server, the test server's workers and the snippets share them).
        INFERLINE_CHAT_THREADS="1",
    )
    return env


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    root = tmp_path_factory.mktemp("walkthrough")
    clone, home, elsewhere = root / "inferline", root / "home", root / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    port = free_port()
    env = _user_env(home, port)
    log = root / "make-serve.log"
    with open(log, "wb") as out:
        make = subprocess.Popen(
            ["make", "serve"],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: make, the shell and the server end together
        )
    walk = Walk(clone, home, elsewhere, env, f"http://127.0.0.1:{port}", make, log)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert make.poll() is None, f"make serve exited {make.returncode}:\n{log.read_text()}"
            try:
                if httpx.get(walk.url + "/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"make serve is not ready:\n{log.read_text()}"
            time.sleep(0.5)
        yield walk
    finally:
        walk.stop()


@pytest.fixture(scope="module")
def key(walk: Walk) -> str:
    """The first key, made by the CLI from the other folder: the server takes it."""
    created = walk.cli("keys", "create", "--tenant", "walk")
    assert created.returncode == 0, created.stderr
    assert "created data directory" not in created.stderr  # the CLI found `make serve`'s data
    assert f"sqlite:///{walk.clone / 'data' / 'inferline.db'}" in created.stderr
    assert not (walk.elsewhere / "data").exists()
    return next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("key:"))


def test_make_serve_builds_and_serves_the_clone(walk: Walk) -> None:
    cloned = subprocess.run(["git", "rev-parse", "HEAD"], cwd=walk.clone, capture_output=True, text=True)
    committed = ["git", "merge-base", "--is-ancestor", cloned.stdout.strip(), "HEAD"]
    assert subprocess.run(committed, cwd=REPO).returncode == 0  # a commit of this checkout's branch
    python = walk.clone / ".venv" / "bin" / "python"
    code = "import inferline; print(inferline.__file__)"
    served = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=walk.env).stdout
    assert served.strip() == str(walk.clone / "src" / "inferline" / "__init__.py")  # the clone's code
    log = walk.log.read_text()
    for entry in catalog.for_profile("test"):
        assert f"{entry.id}: up to date" in log
    assert f"data directory: {walk.clone / 'data'}" in log
    assert f"API: {walk.url}/v2" in log and "Traceback" not in log


def test_every_readme_snippet_runs_against_make_serve(walk: Walk, key: str) -> None:
    snippets = python_snippets((walk.clone / "README.md").read_text())
    assert len(snippets) >= 6
    db = Database(f"sqlite:///{walk.clone / 'data' / 'inferline.db'}")  # the server's, for its webhook key
    folder = walk.elsewhere / "reader"
    folder.mkdir()
    try:
        with reader_session(walk.url, key, WebhookSigner(db), folder) as session:
            for number, snippet in enumerate(snippets, 1):
                run_snippet(snippet, number, session)
    finally:
        db.dispose()


def test_the_cli_from_another_folder(walk: Walk, key: str) -> None:
    listed = walk.cli("keys", "list")
    assert listed.returncode == 0 and " walk " in listed.stdout, listed.stderr
    head = subprocess.run(
        f"set -o pipefail; '{walk.clone}/.venv/bin/inferline' models list | head -n 3",
        shell=True,
        executable="/bin/bash",
        cwd=walk.elsewhere,
        env=walk.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert head.stdout.splitlines()[0].split()[:2] == ["MODEL", "KIND"] and len(head.stdout.splitlines()) == 3
    assert head.returncode in (0, 141) and head.stderr == ""  # 141: the list outlived `head`, quietly
    jobs = walk.cli("fine-tuning", "list", "--api-key", key)  # INFERLINE_PORT, exported, finds the server
    assert jobs.returncode == 0, jobs.stderr
    assert jobs.stdout.split()[:4] == ["JOB", "STATUS", "PROGRESS", "MODEL"]


def test_bucket_upload_shows_each_files_progress_then_its_embedding(walk: Walk, key: str) -> None:
    handbook = walk.elsewhere / "handbook"
    handbook.mkdir()
    policy = "Refunds take five business days.\n\nShipping is free over 50 euros.\n"
    (handbook / "policy.txt").write_text(policy)
    size = catalog.human_bytes(len(policy))
    (handbook / "blob.bin").write_bytes(bytes(range(256)) * 12_000)  # 3 MB, three chunks: not a document
    done = walk.cli("bucket", "upload", "handbook", "./handbook/", "--key", key, "--embed")
    assert done.returncode == 1, done.stderr  # one file could not be embedded
    assert "Traceback" not in done.stderr and "\r" not in done.stderr  # not a terminal: one line per update
    assert done.stdout.split()[-1] == "handbook/policy.txt" and len(done.stdout.splitlines()) == 2
    lines = done.stderr.splitlines()
    assert lines[0] == "upload handbook/blob.bin: 0 B of 3.1 MB (0%)"
    assert "upload handbook/blob.bin: 3.1 MB of 3.1 MB (100%)" in lines
    assert lines.index(f"upload handbook/policy.txt: 0 B of {size} (0%)") < lines.index(
        f"upload handbook/policy.txt: {size} of {size} (100%)"
    )
    assert "uploaded 2 file(s) to handbook (tenant walk)" in lines
    queued = next(i for i, line in enumerate(lines) if re.fullmatch(r"embed handbook: task \S+ queued", line))
    embedding = lines[queued + 1 :]
    assert "embed handbook/policy.txt: success" in embedding
    assert "embed handbook/blob.bin: failed: unsupported binary file" in "\n".join(embedding)
    assert embedding[-1] == "embed handbook: partial_success: 1 of 2 file(s) failed"

    # What the CLI showed is what the API says, and the text is searchable.
    auth = {"Authorization": f"Bearer {key}"}
    files = httpx.get(f"{walk.url}/v2/ai/embeddings/buckets/handbook", headers=auth, timeout=60)
    statuses = {f["filename"]: f["status"] for f in files.json()["data"]}
    assert statuses == {"blob.bin": "failed", "policy.txt": "success"}
    found = httpx.post(
        f"{walk.url}/v2/ai/embeddings/similarity-search",
        headers=auth,
        json={"bucket_name": "handbook", "query": "How long do refunds take?", "num_of_docs": 1},
        timeout=60,
    )
    assert found.status_code == 200 and "five business days" in found.text


def test_the_mistakes_are_one_line_each(walk: Walk, key: str) -> None:
    # A key the server does not know: 401 with a hint, over HTTP and through the CLI.
    wrong = httpx.get(f"{walk.url}/v2/ai/models", headers={"Authorization": "Bearer KEYwrong"}, timeout=30)
    assert wrong.status_code == 401 and "inferline keys create" in wrong.json()["errors"][0]["detail"]
    assert_one_line_error(walk.cli("fine-tuning", "list", "--api-key", "KEYwrong"), "401", "keys create")
    # Revoking a key that does not exist.
    assert_one_line_error(walk.cli("keys", "revoke", "no-such-key"), "no-such-key")
    # A second server on the port `make serve` holds.
    clash = walk.cli("serve")
    assert clash.returncode != 0 and "Traceback" not in clash.stderr + clash.stdout
    (refused,) = [x for x in (clash.stderr + clash.stdout).splitlines() if "error" in x.lower()]
    assert "address already in use" in refused
    # `inferline models list | head`: the reader has gone before the list is written.
    proc = subprocess.Popen(
        [str(walk.clone / ".venv" / "bin" / "inferline"), "models", "list"],
        cwd=walk.elsewhere,
        env=walk.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    assert proc.wait(120) == 141 and proc.stderr.read() == b""
    # The server stopped: the CLI names where it looked.
    walk.stop()
    down = walk.cli("fine-tuning", "list", "--api-key", key)
    assert_one_line_error(down, f"{walk.url}/v2", "inferline serve")
