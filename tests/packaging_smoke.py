"""The packaging smoke test: an installed inferline (offline bundle or container) driven over loopback with
the official clients, and the offline driver the bundle test runs inside a network namespace.

    python tests/packaging_smoke.py offline BUNDLE_DIR WORK_DIR [--registered MODEL_ID [--alias NAME]]

`offline` (run under `unshare -n`, as root): brings up the namespace's loopback, checks that it is the only
interface and that nothing outside answers, runs the bundle's `install.sh` (which installs with no network and
then execs `inferline serve`), waits for `/ready`, runs `smoke()` and prints one JSON line with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx
import telnyx
from botocore.config import Config

from inferline.keys import s3_credentials

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
KEY = "KEYpackaging-smoke-0123456789"
FINAL = {"success", "failure", "partial_success"}
DOCS = {
    "harbour.txt": "Harbour cranes lift shipping containers from a cargo vessel onto waiting trucks. " * 6,
    "bread.txt": "A sourdough starter ferments flour and water; the dough rises slowly before baking. " * 6,
}


def wait_ready(url: str, timeout: float, alive: Any = None) -> float:
    """Seconds until `GET /ready` answers 200; `alive()` false (the process ended) fails at once."""
    started = time.monotonic()
    while True:
        if alive is not None and not alive():
            raise RuntimeError("the server exited before it was ready")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{url}/ready did not answer 200 within {timeout:.0f} s")
        time.sleep(0.25)


def smoke(
    url: str, key: str = KEY, registered: str | None = None, alias: str | None = None
) -> dict[str, Any]:
    """Models, chat (also with the `registered` model and its `alias`), embeddings, and a bucket ingested by
    the job worker, through the telnyx SDK (strict) and boto3; returns what was seen. Raises on failure."""
    client = telnyx.Telnyx(api_key=key, base_url=f"{url}/v2", _strict_response_validation=True, max_retries=0)
    models = sorted(m.id for m in client.ai.openai.list_models().data)
    chat_models = {SMOL: SMOL}
    if registered:
        chat_models[registered] = registered
    if registered and alias:
        chat_models[alias] = registered
    replies = {}
    for asked, served in chat_models.items():
        result = client.ai.openai.chat.create_completion(
            messages=[{"role": "user", "content": "Say hello."}], model=asked, max_tokens=8, temperature=0
        )
        assert result["model"] == served, result
        replies[asked] = result["choices"][0]["message"]["content"]
    vectors = client.ai.openai.embeddings.create_embeddings(input="offline inference", model=MINILM)
    access_key_id, secret = s3_credentials(key)
    s3 = boto3.client(
        "s3",
        endpoint_url=f"{url}/s3",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    bucket = f"packaging-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    for name, text in DOCS.items():
        s3.put_object(Bucket=bucket, Key=name, Body=text.encode())
    task = client.ai.embeddings.create(
        bucket_name=bucket, document_chunk_size=400, document_chunk_overlap_size=50
    )
    deadline = time.monotonic() + 180
    status = ""
    while status not in FINAL:
        assert time.monotonic() < deadline, f"embedding task {task.data.task_id} still {status}"
        time.sleep(0.25)
        status = str(client.ai.embeddings.retrieve(task.data.task_id).data.status)
    hits = client.ai.embeddings.similarity_search(
        bucket_name=bucket, query="baking bread with a starter", num_of_docs=1
    )
    return {
        "models": models,
        "replies": replies,
        "dimensions": len(vectors.data[0].embedding),
        "bucket": bucket,
        "task": status,
        "top_hit": hits.data[0].metadata.filename,
    }


def _outside_unreachable() -> str | None:
    """None when no address outside this namespace answers; else what did."""
    for host in ("pypi.org", "1.1.1.1"):
        try:
            with socket.create_connection((host, 443), timeout=3):
                return host
        except OSError:
            continue
    return None


def offline(bundle: Path, work: Path, registered: str | None, alias: str | None) -> dict[str, Any]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    interfaces = sorted(name for _, name in socket.if_nameindex())
    reached = _outside_unreachable()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INFERLINE_", "PIP_"))}
    env.update(INFERLINE_API_KEY=KEY, INFERLINE_HOST="127.0.0.1", INFERLINE_PORT="8765")
    env["INFERLINE_LOG_LEVEL"] = "warning"
    log = (work / "install-and-serve.log").open("wb")
    started = time.monotonic()
    install = [str(bundle / "install.sh"), "--prefix", str(work / "prefix"), "--data-dir", str(work / "data")]
    proc = subprocess.Popen(
        [*install, "--write-units", str(work / "units")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_ready("http://127.0.0.1:8765", 600, alive=lambda: proc.poll() is None)
        ready_seconds = time.monotonic() - started
        result = smoke("http://127.0.0.1:8765", registered=registered, alias=alias)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"interfaces": interfaces, "reached": reached, "install_to_ready_seconds": ready_seconds, **result}


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("offline")
    run.add_argument("bundle", type=Path)
    run.add_argument("work", type=Path)
    run.add_argument("--registered", default=None, help="a registered model the bundle holds")
    run.add_argument("--alias", default=None, help="an alias of the registered model")
    args = parser.parse_args()
    try:
        report = offline(args.bundle, args.work, args.registered, args.alias)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
