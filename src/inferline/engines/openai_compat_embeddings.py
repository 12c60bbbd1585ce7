"""`OpenAICompatEmbeddingEngine`: embeddings from a remote OpenAI-compatible server (vLLM in production).

It speaks `POST {base_url}/embeddings` and `GET {base_url}/models`. Failures are explicit: an unreachable
server or an upstream 5xx is a 502 (`UpstreamError`), no answer within the timeout is a 504
(`UpstreamTimeout`), and an upstream 400/413/422 about the input is our 400.

Token counts come from the upstream's own `usage` (OpenAI-compatible servers have no common tokenize call):
`count_tokens` embeds each text alone (concurrently) and keeps the vectors for the `embed` that follows in
the same thread, so a request costs the upstream one pass per text, not two.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from inferline.errors import BadRequest, UpstreamError, UpstreamTimeout

INPUT_ERRORS = {400, 413, 422}


def upstream_message(response: httpx.Response) -> str:
    """The error text of an OpenAI, vLLM or Telnyx style error body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if body.get("message"):
            return str(body["message"])
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("detail") or errors[0].get("title") or errors[0])
    return str(body)[:300]


class OpenAICompatEmbeddingEngine:
    """Serves `model_id` by calling `upstream_model` on the OpenAI-compatible server at `base_url`."""

    def __init__(
        self,
        model_id: str,
        base_url: str,
        *,
        upstream_model: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float = 30.0,
        max_tokens: int = 512,
        dimensions: int | None = None,
        concurrency: int = 8,
    ) -> None:
        self.model_id = model_id
        self.base_url = base_url.rstrip("/")
        self.upstream_model = upstream_model or model_id
        self.max_tokens = max_tokens
        self.timeout_seconds = timeout_seconds
        self.concurrency = concurrency
        self._dimensions = dimensions
        self._api_key = api_key
        self._client: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._memo = threading.local()

    # -- the EmbeddingEngine protocol ---------------------------------------------------------------

    @property
    def dimensions(self) -> int:
        """Vector width: configured, or learnt from the upstream with one probe on first use."""
        if self._dimensions is None:
            vectors, _ = self._request(["dimension probe"])
            self._dimensions = int(vectors.shape[1])
        return self._dimensions

    def count_tokens(self, texts: list[str]) -> list[int]:
        results = list(self._executor().map(lambda text: self._request([text]), texts))
        pairs = zip(texts, results, strict=True)
        self._memo.pending = {text: (vectors[0], tokens) for text, (vectors, tokens) in pairs}
        return [tokens for _, tokens in results]

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        pending: dict[str, tuple[np.ndarray, int]] = getattr(self._memo, "pending", None) or {}
        self._memo.pending = None
        if all(text in pending for text in texts):
            return np.stack([pending[text][0] for text in texts])
        vectors, _ = self._request(texts)
        return vectors

    # -- operations ---------------------------------------------------------------------------------

    def health(self, timeout_seconds: float = 5.0) -> dict[str, Any]:
        """Ask the upstream which models it serves; raises a 502/504 error unless it serves ours."""
        response = self._call("GET", "/models", timeout_seconds=timeout_seconds)
        try:
            served = {m["id"] for m in response.json()["data"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"{self._where()} answered GET /models with an unexpected body") from exc
        if self.upstream_model not in served:
            raise UpstreamError(f"{self._where()} does not serve {self.upstream_model!r}")
        return {"model": self.model_id, "upstream": self.base_url, "status": "ok"}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    # -- internals ----------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"the upstream server for {self.model_id} ({self.base_url})"

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="inferline-remote-emb")
            return self._pool

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
                self._client = httpx.Client(
                    base_url=self.base_url,
                    headers=headers,
                    timeout=httpx.Timeout(self.timeout_seconds, connect=min(5.0, self.timeout_seconds)),
                    limits=httpx.Limits(max_connections=self.concurrency * 2),
                )
            return self._client

    def _call(
        self, method: str, path: str, json: dict[str, Any] | None = None, timeout_seconds: float | None = None
    ) -> httpx.Response:
        limit = timeout_seconds or self.timeout_seconds
        try:
            response = self._http().request(
                method, path, json=json, timeout=httpx.Timeout(limit, connect=min(5.0, limit))
            )
        except httpx.TimeoutException as exc:
            waited = f"{limit:g} s"
            raise UpstreamTimeout(f"{self._where()} did not answer within {waited}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self._where()} is unreachable: {exc}") from exc
        if response.status_code in INPUT_ERRORS:
            raise BadRequest(
                f"{self._where()} rejected the input: {upstream_message(response)}", pointer="/input"
            )
        if response.status_code >= 400:
            raise UpstreamError(
                f"{self._where()} answered {response.status_code}: {upstream_message(response)}"
            )
        return response

    def _request(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """L2-normalised vectors in input order, and the upstream's prompt token count."""
        body = {"model": self.upstream_model, "input": texts, "encoding_format": "float"}
        response = self._call("POST", "/embeddings", body)
        try:
            payload = response.json()
            rows = sorted(payload["data"], key=lambda item: item["index"])
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
            tokens = int(payload.get("usage", {}).get("prompt_tokens", 0))
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"{self._where()} answered with a malformed embeddings body") from exc
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise UpstreamError(f"{self._where()} returned {len(vectors)} vectors for {len(texts)} inputs")
        if self._dimensions is not None and vectors.shape[1] != self._dimensions:
            raise UpstreamError(
                f"{self._where()} returned {vectors.shape[1]}-d vectors, configured for {self._dimensions}"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32), tokens
