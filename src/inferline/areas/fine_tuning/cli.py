"""`inferline fine-tuning list|watch`: follow fine-tuning jobs through the HTTP API, with a progress bar."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, TextIO

import httpx

from inferline.config import Settings

TERMINAL = ("succeeded", "failed", "cancelled")


def _client(settings: Settings, args: argparse.Namespace) -> httpx.Client:
    key = args.api_key or settings.api_key or os.environ.get("TELNYX_API_KEY")
    if not key:
        raise SystemExit(
            "inferline: error: an API key is needed: --api-key, INFERLINE_API_KEY or TELNYX_API_KEY"
        )
    base = args.base_url or settings.base_url + "/v2"
    return httpx.Client(base_url=base.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    if response.status_code != 200:
        try:
            detail = response.json()["errors"][0]["detail"]
        except (ValueError, KeyError, IndexError, TypeError):
            detail = response.text.strip()[:200] or response.reason_phrase
        raise SystemExit(
            f"inferline: error: {response.request.url} answered {response.status_code}: {detail}"
        )
    return response.json()  # type: ignore[no-any-return]


def bar(step: int, total: int | None, width: int = 30) -> str:
    """`[#########.....]  9/15` (an empty bar while the total is unknown)."""
    if not total:
        return "[" + "." * width + "]"
    filled = min(width, round(width * step / total))
    return "[" + "#" * filled + "." * (width - filled) + f"] {step}/{total}"


def watch(client: httpx.Client, job_id: str, out: TextIO, poll_seconds: float = 1.0) -> int:
    """Print events as they come and a progress bar of the steps; returns 0 once the job succeeded."""
    after: int | None = None
    tty = out.isatty()
    while True:
        job = _get(client, f"/ai/fine_tuning/jobs/{job_id}")
        page = _get(client, f"/ai/fine_tuning/jobs/{job_id}/events", **({"after": after} if after else {}))
        for event in page["data"]:
            after = event["id"]
            if event["type"] == "metrics":
                data = event["data"]
                line = f"{bar(data['step'], data['total_steps'])}  loss {data['loss']:.4f}"
                out.write(("\r" + line) if tty else line + "\n")
            else:
                out.write(("\n" if tty else "") + event["message"] + "\n")
            out.flush()
        if job["status"] in TERMINAL and not page["has_more"]:
            break
        time.sleep(poll_seconds)
    summary = f"{job['status']}"
    if job["status"] == "succeeded":
        summary += f": model {job['fine_tuned_model']}, {job['trained_tokens']} trained tokens"
    elif job.get("error"):
        summary += f": {job['error']['message']}"
    out.write(("\n" if tty else "") + summary + "\n")
    return 0 if job["status"] == "succeeded" else 1


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    with _client(settings, args) as client:
        jobs = _get(client, "/ai/fine_tuning/jobs")["data"]
    print(f"{'JOB':36}  {'STATUS':10}  {'PROGRESS':40}  MODEL")
    for job in jobs:
        progress = job.get("progress") or {}
        model = job.get("fine_tuned_model") or job["model"]
        steps = bar(progress.get("step", 0), progress.get("total_steps"), 20)
        print(f"{job['id']:36}  {job['status']:10}  {steps:40}  {model}")
    return 0


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    with _client(settings, args) as client:
        return watch(client, args.job_id, sys.stdout)


def add_commands(sub: Any) -> None:
    """Register `fine-tuning list` and `fine-tuning watch JOB_ID` on the top-level subparsers."""
    group = sub.add_parser("fine-tuning", help="follow fine-tuning jobs of a running server")
    commands = group.add_subparsers(dest="fine_tuning_command", required=True)
    for name, func, helptext in (
        ("list", cmd_list, "list your fine-tuning jobs"),
        ("watch", cmd_watch, "follow a job's events with a progress bar until it ends"),
    ):
        command = commands.add_parser(name, help=helptext)
        if name == "watch":
            command.add_argument("job_id")
        command.add_argument("--base-url", default=None, help="server API base (default http://HOST:PORT/v2)")
        command.add_argument("--api-key", default=None, help="API key (default $INFERLINE_API_KEY)")
        command.set_defaults(func=func)
