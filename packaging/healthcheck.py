"""The container's HEALTHCHECK: `GET /ready` of the server in this container, or, for a container running
`inferline worker` (the same image with another command, which serves no HTTP), that its process lives."""

import os
import sys
import urllib.request
from pathlib import Path

command = Path("/proc/1/cmdline").read_bytes().split(b"\0")
if b"worker" in command:
    sys.exit(0)  # PID 1 is the worker itself: it is running
host = os.environ.get("INFERLINE_HOST", "127.0.0.1")
host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
host = f"[{host}]" if ":" in host else host
port = os.environ.get("INFERLINE_PORT", "8000")
try:
    with urllib.request.urlopen(f"http://{host}:{port}/ready", timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"not ready: {exc}")
    sys.exit(1)
