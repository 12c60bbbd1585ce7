"""Shared pieces of the benchmarks: a result row and a live server started on a free port."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import uvicorn

from inferline.app import create_app
from inferline.config import Settings
from inferline.container import Container, build_container

REPO = Path(__file__).resolve().parent.parent
BENCH_KEY = "KEYbench-0123456789"
T = TypeVar("T")
# `BENCH_SMOKE=1`: every benchmark runs once, small sizes (CI checks that none breaks; figures mean nothing).
SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")


def pick(full: T, smoke: T) -> T:
    """`full` normally, `smoke` under `BENCH_SMOKE=1`."""
    return smoke if SMOKE else full


@dataclass
class Row:
    """One measurement through inferline next to the same measurement on the baseline."""

    name: str
    value: float
    baseline: float
    unit: str
    baseline_label: str
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        """inferline relative to baseline, >1 means inferline is better."""
        if not self.value or not self.baseline:
            return 0.0
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value


@contextmanager
def live_server(profile: str = "test") -> Iterator[tuple[str, Container]]:
    """A real inferline server on a free loopback port, with a throwaway data dir, once it is ready (its
    start-up warm-up done: measured beside it, the warm-up's loads and llama.cpp's thread-count measurement
    would take the cores from the benchmark, and the measurement would pick its count under that load)."""
    with tempfile.TemporaryDirectory() as tmp:
        models = os.environ.get("INFERLINE_MODELS_DIR", str(REPO / "data" / "models"))
        settings = Settings(
            data_dir=Path(tmp),
            INFERLINE_MODELS_DIR=Path(models),
            profile=profile,
            api_key=BENCH_KEY,
            log_level="warning",
        )
        container = build_container(settings)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings, container), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            wait_ready(f"http://127.0.0.1:{port}")
            yield f"http://127.0.0.1:{port}/v2", container
        finally:
            server.should_exit = True
            thread.join(10)
            container.close()


def wait_ready(url: str, timeout: float = 900, alive: Callable[[], bool] | None = None) -> None:
    """Wait until `GET {url}/ready` answers 200: the server's models are loaded (`ops.warmup`)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/ready", timeout=30).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if (alive is not None and not alive()) or time.monotonic() > deadline:
            raise RuntimeError(f"{url}/ready did not answer 200")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hammer(url: str, path: str, headers: dict[str, str], seconds: float, connections: int = 4) -> float:
    """Requests/s of `GET path` over `connections` keep-alive loopback connections for `seconds`.

    A minimal HTTP/1.1 client on raw asyncio streams (a few µs per request), so the figure is the server's
    and not the client's. Every response must be a 200 with a `content-length` body.
    """
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path.rstrip('/')}{path} HTTP/1.1", f"Host: {host}:{port}"]
    request = "\r\n".join([*lines, *(f"{k}: {v}" for k, v in headers.items()), "", ""]).encode()

    async def one(until: float) -> int:
        reader, writer = await asyncio.open_connection(host, port)
        done = 0
        try:
            while time.perf_counter() < until:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"GET {path}: {head.splitlines()[0].decode()}")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()
        return done

    async def main() -> float:
        started = time.perf_counter()
        counts = await asyncio.gather(*(one(started + seconds) for _ in range(connections)))
        return sum(counts) / (time.perf_counter() - started)

    return asyncio.run(main())


class RawHttp:
    """A minimal blocking HTTP/1.1 client on one keep-alive loopback connection (a few µs of Python per
    request), for latencies that are the server's: the benchmarks run the server in their own process, where
    a client library's Python work (httpx: ~0.5 ms a request) would share the GIL and the 2 cores with it.
    POSTs send JSON, GETs a query string; replies carry a `content-length` or are chunked (`stream`). A
    connection the server closed while idle (uvicorn's keep-alive timeout) is opened again."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.base = parts.path.rstrip("/")
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": parts.netloc, **headers}.items())
        self.sock: socket.socket | None = None

    def _send(self, path: str, body: object, method: str = "POST") -> tuple[bytes, bytes]:
        """Send the request (a GET when `body` is None); (the reply's head, the body bytes read with it)."""
        import json

        if body is None:
            message = f"{method} {self.base}{path} HTTP/1.1\r\n{self.head}\r\n".encode()
        else:
            data = json.dumps(body).encode()
            request = f"{method} {self.base}{path} HTTP/1.1\r\n{self.head}Content-Type: application/json\r\n"
            message = f"{request}Content-Length: {len(data)}\r\n\r\n".encode() + data
        for attempt in range(2):
            if self.sock is None:
                self.sock = socket.create_connection(self.address)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = b""
            try:
                self.sock.sendall(message)
                while b"\r\n\r\n" not in buffer:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        raise ConnectionResetError("closed by the server")
                    buffer += chunk
            except OSError:
                self.close()
                if buffer or attempt:
                    raise
                continue
            head, _, rest = buffer.partition(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0]
            if not status.split()[1].startswith(b"2"):
                self.close()
                raise RuntimeError(f"{method} {path}: {status.decode()}")
            return head, rest
        raise AssertionError("unreachable")

    def _recv(self) -> bytes:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            self.close()
            raise ConnectionResetError("the server closed the connection mid-reply")
        return chunk

    def post(self, path: str, body: object) -> bytes:
        """POST `body` as JSON; the reply's body (a non-2xx status raises)."""
        return self._body(*self._send(path, body))

    def get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        """GET `path` with `params` as its query string; the reply's body (a non-2xx status raises)."""
        from urllib.parse import urlencode

        query = f"?{urlencode(params)}" if params else ""
        return self._body(*self._send(path + query, None, "GET"))

    def _body(self, head: bytes, rest: bytes) -> bytes:
        fields = (line.partition(b":") for line in head.split(b"\r\n")[1:])
        length = next(int(v) for k, _, v in fields if k.strip().lower() == b"content-length")
        while len(rest) < length:
            rest += self._recv()
        return rest

    def stream(self, path: str, body: object, on_event: Callable[[bytes], None]) -> None:
        """POST `body` as JSON and call `on_event` with the data of each server-sent event as it arrives
        (a chunked reply, read to its last chunk)."""
        head, buffer = self._send(path, body)
        assert b"chunked" in head.lower(), "a streamed reply is chunked"
        text = b""  # the decoded body not yet split into events
        while True:
            size_end = buffer.find(b"\r\n")
            if size_end < 0 or len(buffer) < size_end + 2 + int(buffer[:size_end], 16) + 2:
                buffer += self._recv()
                continue
            size = int(buffer[:size_end], 16)
            text += buffer[size_end + 2 : size_end + 2 + size]
            buffer = buffer[size_end + 2 + size + 2 :]
            *events, text = text.split(b"\n\n")
            for event in events:
                for line in event.split(b"\n"):
                    if line.startswith(b"data: "):
                        on_event(line[6:])
            if size == 0:
                return

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@contextmanager
def server_process(env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """An `inferline serve` process (test profile unless `env` says otherwise, throwaway data dir) on a free
    port, once it is ready (as `live_server`).

    Yields (its URL without `/v2`, its pid).
    """
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        child = {k: v for k, v in os.environ.items() if not k.startswith("INFERLINE_")}
        child.update(
            INFERLINE_CONFIG="",
            INFERLINE_DATA_DIR=tmp,
            INFERLINE_MODELS_DIR=os.environ.get("INFERLINE_MODELS_DIR", str(REPO / "data" / "models")),
            INFERLINE_PROFILE="test",
            INFERLINE_API_KEY=BENCH_KEY,
            INFERLINE_PORT=str(port),
            INFERLINE_LOG_LEVEL="warning",
        )
        child.update(env or {})  # `env` may override any of these
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferline", "serve"], env=child, stdin=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, alive=lambda: proc.poll() is None)  # also fails at once if the process exits
            yield url, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
