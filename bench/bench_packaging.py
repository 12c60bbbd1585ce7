"""Packaging: the container image's size, build time and cold start, or the offline bundle's install-to-ready.

* With figures from the last image build (dist/image-figures.json, written by `make image` /
  scripts/build_image.py, also run by tests/test_image.py): the image's size next to the bundle it was built
  from, its offline build time, and its cold start (a new container, fresh volume, `docker run` to `/ready`
  200) next to `inferline serve` started from the checkout's venv (the same server without the container).
* Without them (no container engine here): a test-profile bundle is built, installed with `install.sh` and
  started, and the seconds from running the installer to `/ready` are reported next to the same baseline.

`BENCH_SMOKE=1` does nothing heavy: only recorded figures are read and the baseline is started once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import BENCH_KEY, REPO, SMOKE, Row, free_port, server_process

FIGURES = REPO / "dist" / "image-figures.json"
BASELINE = "`inferline serve` from the checkout's venv"


def serve_cold_start() -> float:
    """Seconds from starting `inferline serve` (test profile, empty data dir) to `/ready` 200."""
    started = time.monotonic()
    with server_process() as (url, _pid):
        while httpx.get(url + "/ready", timeout=5).status_code != 200:
            time.sleep(0.1)
        return time.monotonic() - started


def image_rows(figures: dict[str, Any], baseline: float) -> list[Row]:
    tag = figures["image"]
    size, bundle = figures["size_bytes"] / 1e6, figures["bundle_bytes"] / 1e6
    rows = [
        Row(
            f"container image size ({tag})", size, bundle, "MB", "the offline bundle it is built from", False
        ),
        Row(
            f"image build, no network ({tag})",
            figures["build_seconds"],
            0.0,
            "s",
            "one-off, no baseline",
            False,
        ),
    ]
    if figures.get("ready_seconds") is not None:
        ready = figures["ready_seconds"]
        rows.append(Row(f"container cold start to /ready ({tag})", ready, baseline, "s", BASELINE, False))
    return rows


def bundle_install_to_ready() -> float:
    """Build the test-profile bundle, then time `install.sh` (offline install, then `inferline serve`) until
    `/ready` answers 200."""
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFERLINE_")}
        models = os.environ.get("INFERLINE_MODELS_DIR", str(REPO / "data" / "models"))
        build_env = {**env, "INFERLINE_CONFIG": "", "INFERLINE_DATA_DIR": tmp, "INFERLINE_MODELS_DIR": models}
        subprocess.run(
            [sys.executable, "-m", "inferline", "bundle", "--profile", "test", "--output", str(work / "out")],
            env=build_env, check=True, capture_output=True,
        )  # fmt: skip
        (tarball,) = (work / "out").glob("*.tar")
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(work)], check=True)
        (bundle,) = (p for p in work.iterdir() if p.name.startswith("inferline-"))
        port = free_port()
        serve_env = {**env, "INFERLINE_PORT": str(port), "INFERLINE_API_KEY": BENCH_KEY}
        serve_env["INFERLINE_LOG_LEVEL"] = "warning"
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(bundle / "install.sh"), "--prefix", str(work / "prefix"), "--data-dir", str(work / "data")],
            env=serve_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("install.sh ended before the server was ready")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
        finally:
            proc.terminate()
            proc.wait(30)


def run() -> list[Row]:
    baseline = serve_cold_start()
    if FIGURES.is_file():
        return image_rows(json.loads(FIGURES.read_text()), baseline)
    if SMOKE:
        name = "inferline serve cold start to /ready (no image figures recorded)"
        return [Row(name, baseline, baseline, "s", BASELINE, False)]
    seconds = bundle_install_to_ready()
    return [
        Row("offline bundle install.sh to /ready (test profile)", seconds, baseline, "s", BASELINE, False)
    ]
