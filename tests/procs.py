"""Real inferline processes for tests: `inferline serve` and `inferline worker` subprocesses on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import MODELS_DIR, free_port

INFERLINE = [sys.executable, "-m", "inferline"]


def base_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test process: test profile, loopback, quiet logs, the given database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERLINE_")}
    env.update(
        INFERLINE_CONFIG="",  # no config file: only these settings
        INFERLINE_DATA_DIR=str(data_dir),
        INFERLINE_MODELS_DIR=str(MODELS_DIR),
        INFERLINE_DATABASE_URL=database_url,
        INFERLINE_PROFILE="test",
        INFERLINE_HOST="127.0.0.1",
        INFERLINE_LOG_LEVEL="warning",
        INFERLINE_WARMUP=os.environ.get("INFERLINE_WARMUP", "none"),  # as the in-process servers (conftest)
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class Proc:
    """One child process, its log file, and (for servers) its base URL."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


class Processes:
    """Starts inferline processes and makes sure every one of them is ended."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        log = self.log_dir / f"{name}.log"
        with open(log, "wb") as handle:
            popen = subprocess.Popen(
                [*INFERLINE, *args],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def serve(self, name: str, env: dict[str, str], timeout: float = 60.0) -> Proc:
        """`inferline serve` on a free loopback port; returns once `/health` answers."""
        return self.wait_healthy(self.spawn_server(name, env), timeout)

    def spawn_server(self, name: str, env: dict[str, str]) -> Proc:
        """Start `inferline serve` on a free loopback port without waiting for it."""
        port = free_port()
        proc = self._spawn(name, ["serve"], {**env, "INFERLINE_PORT": str(port)})
        proc.url = f"http://127.0.0.1:{port}"
        return proc

    @staticmethod
    def wait_healthy(proc: Proc, timeout: float = 60.0) -> Proc:
        assert proc.url is not None
        deadline = time.monotonic() + timeout
        while True:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.output()}")
            try:
                if httpx.get(proc.url + "/health", timeout=2).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not become healthy:\n{proc.output()}")
            time.sleep(0.2)

    def worker(self, name: str, env: dict[str, str], timeout: float = 60.0) -> Proc:
        """`inferline worker`; returns once it reports the job kinds it runs."""
        return self.wait_worker(self._spawn(name, ["worker"], env), timeout)

    def spawn_worker(self, name: str, env: dict[str, str]) -> Proc:
        return self._spawn(name, ["worker"], env)

    @staticmethod
    def wait_worker(proc: Proc, timeout: float = 60.0) -> Proc:
        name = proc.name
        deadline = time.monotonic() + timeout
        while "running job kinds" not in proc.output():
            if not proc.alive():
                raise RuntimeError(f"{name} exited:\n{proc.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{proc.output()}")
            time.sleep(0.1)
        return proc

    def cli(self, args: list[str], env: dict[str, str]) -> str:
        """Run a short `inferline …` command and return its stdout."""
        done = subprocess.run([*INFERLINE, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
