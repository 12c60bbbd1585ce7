#!/usr/bin/env python3
"""`make image`: build the container image from an offline bundle with no network, then time a cold start.

    scripts/build_image.py [BUNDLE.tar] [--profile P] [--tag TAG] [--base-image IMAGE] [--no-measure]

BUNDLE defaults to the newest dist/inferline-*-<profile>-*.tar (`make bundle`). The build runs with
`--network none` (packaging/Containerfile; the base image must already be present). Then, unless --no-measure,
a container of the image starts on a free loopback port (`--network host`, INFERLINE_HOST=127.0.0.1, a fresh
volume) and the seconds until its `/ready` answers 200 are its cold start. The figures (image size, build
seconds, cold-start-to-ready seconds) go to dist/image-figures.json, read by bench/bench_packaging.py.

Environment: ENGINE (docker or podman; default the first on the PATH), DOCKER_HOST as usual.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "dist" / "image-figures.json"


def engine() -> str:
    """The container engine's command: $ENGINE, else docker, else podman."""
    chosen = os.environ.get("ENGINE") or shutil.which("docker") or shutil.which("podman")
    if not chosen:
        raise SystemExit("build_image.py: no container engine (install docker.io or podman, or set ENGINE)")
    return chosen


def engine_env(cmd: str) -> dict[str, str]:
    """The environment for `cmd`: docker's legacy builder where its BuildKit front end (buildx) is missing."""
    env = dict(os.environ)
    if Path(cmd).name == "docker" and "DOCKER_BUILDKIT" not in env:
        has_buildx = subprocess.run([cmd, "buildx", "version"], capture_output=True).returncode == 0
        if not has_buildx:
            env["DOCKER_BUILDKIT"] = "0"
    return env


def newest_bundle(profile: str) -> Path:
    found = sorted((REPO / "dist").glob(f"inferline-*-{profile}-*.tar"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(
            f"build_image.py: no dist/inferline-*-{profile}-*.tar (`make bundle PROFILE={profile}`)"
        )
    return found[-1]


def build(cmd: str, bundle: Path, tag: str, base_image: str | None) -> float:
    """Build the image from `bundle` with no network; the seconds it took."""
    with tempfile.TemporaryDirectory(prefix=".image-context-", dir=bundle.parent) as context:
        try:
            os.link(bundle, Path(context) / "bundle.tar")
        except OSError:
            shutil.copyfile(bundle, Path(context) / "bundle.tar")
        args = [cmd, "build", "--network", "none", "-f", str(REPO / "packaging" / "Containerfile"), "-t", tag]
        if base_image:
            args += ["--build-arg", f"BASE_IMAGE={base_image}"]
        started = time.monotonic()
        subprocess.run([*args, context], check=True, env=engine_env(cmd))
        return time.monotonic() - started


def image_size(cmd: str, tag: str) -> int:
    out = subprocess.run(
        [cmd, "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float, running: object = None) -> float:
    """Seconds until `url` answers 200 (`running()` false: the container ended, fail at once)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if callable(running) and not running():
            raise RuntimeError("the container exited before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


def cold_start(cmd: str, tag: str, timeout: float = 300) -> float:
    """Seconds from `run` to `/ready` of a new container (fresh volume) on a loopback port (host network)."""
    port = free_port()
    args = [cmd, "run", "-d", "--rm", "--network", "host", "-e", "INFERLINE_HOST=127.0.0.1"]
    args += ["-e", f"INFERLINE_PORT={port}", "-e", "INFERLINE_LOG_LEVEL=warning", tag]
    started = time.monotonic()
    container = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()

    def running() -> bool:
        out = subprocess.run(
            [cmd, "inspect", "--format", "{{.State.Running}}", container], capture_output=True
        )
        return out.stdout.strip() == b"true"

    try:
        wait_ready(f"http://127.0.0.1:{port}/ready", timeout, running)
        return time.monotonic() - started
    finally:
        subprocess.run([cmd, "rm", "-f", "-v", container], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", nargs="?", type=Path)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--tag", default=None, help="the image tag (default inferline:<profile>)")
    parser.add_argument("--base-image", default=os.environ.get("BASE_IMAGE") or None)
    parser.add_argument("--no-measure", action="store_true", help="do not time a cold start")
    parser.add_argument("--figures", type=Path, default=FIGURES)
    args = parser.parse_args(argv)
    cmd = engine()
    bundle = (args.bundle or newest_bundle(args.profile)).resolve()
    tag = args.tag or f"inferline:{args.profile}"
    seconds = build(cmd, bundle, tag, args.base_image)
    figures = {
        "image": tag,
        "engine": Path(cmd).name,
        "base_image": args.base_image or "python:3.11-slim-bookworm",
        "bundle": bundle.name,
        "bundle_bytes": bundle.stat().st_size,
        "size_bytes": image_size(cmd, tag),
        "build_seconds": round(seconds, 2),
        "ready_seconds": None if args.no_measure else round(cold_start(cmd, tag), 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.figures.parent.mkdir(parents=True, exist_ok=True)
    args.figures.write_text(json.dumps(figures, indent=1) + "\n")
    ready = (
        f", ready {figures['ready_seconds']} s after start" if figures["ready_seconds"] is not None else ""
    )
    print(f"built {tag}: {figures['size_bytes'] / 1e6:.0f} MB in {seconds:.0f} s{ready} ({args.figures})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
