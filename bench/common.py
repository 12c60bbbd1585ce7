"""Shared pieces of the benchmarks: a result row and a live server started on a free port."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from inferline.app import create_app
from inferline.config import Settings
from inferline.container import Container, build_container

REPO = Path(__file__).resolve().parent.parent
BENCH_KEY = "KEYbench-0123456789"


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
    """A real inferline server on a free loopback port, with a throwaway data dir."""
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
            yield f"http://127.0.0.1:{port}/v2", container
        finally:
            server.should_exit = True
            thread.join(10)
            container.close()
