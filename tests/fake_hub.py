"""A loopback server answering as the Hugging Face hub does, so the real `huggingface_hub` client runs on it.

It serves what `HfApi.model_info` and `hf_hub_download` ask for: `GET /api/models/{repo}[/revision/{rev}]`
(the commit sha and the file list), `HEAD`/`GET /{repo}/resolve/{rev}/{file}` (with `X-Repo-Commit`, `ETag`
and `Content-Length`, ranges for resumed downloads) and the agent-harness registry its user agent reads.
A repository may require a token (`Authorization: Bearer …`), as private ones do.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """`repos`: repo id -> {path in repo: local file}; `tokens`: repo id -> the token it requires."""

    def __init__(self, repos: dict[str, dict[str, Path]], tokens: dict[str, str] | None = None) -> None:
        self.repos = repos
        self.tokens = tokens or {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                headers = {"Content-Length": str(len(body)), **(headers or {})}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _refused(self, repo: str) -> bool:
                token = hub.tokens.get(repo)
                if repo not in hub.repos or (
                    token and self.headers.get("Authorization") != f"Bearer {token}"
                ):
                    body = json.dumps({"error": "Repository not found"}).encode()
                    self._send(
                        404, body, {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"}
                    )
                    return True
                return False

            def _route(self) -> None:
                hub.requests.append((self.command, self.path))
                path = self.path.split("?")[0]
                if path == "/api/agent-harnesses":
                    body = json.dumps({"standardEnvVars": [], "harnesses": {}}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"})
                if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path):
                    if self._refused(m.group(1)):
                        return None
                    siblings = [{"rfilename": name} for name in hub.repos[m.group(1)]]
                    body = json.dumps({"id": m.group(1), "sha": COMMIT, "siblings": siblings}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"})
                if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
                    if self._refused(m.group(1)):
                        return None
                    source = hub.repos[m.group(1)].get(m.group(3))
                    if source is None:
                        return self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
                    data = source.read_bytes()
                    headers = {
                        "X-Repo-Commit": COMMIT,
                        "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                        "Accept-Ranges": "bytes",
                    }
                    if (r := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")) is not None:
                        start = int(r.group(1))
                        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                        return self._send(206, data[start:], headers)
                    return self._send(200, data, headers)
                return self._send(404)

            def do_GET(self) -> None:
                self._route()

            def do_HEAD(self) -> None:
                self._route()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def downloads(self, name: str) -> int:
        """How many times the content of `name` was sent (GET of its resolve URL)."""
        return sum(1 for method, path in self.requests if method == "GET" and path.endswith(f"/{name}"))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
