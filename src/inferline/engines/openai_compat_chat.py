"""`OpenAICompatChatEngine`: chat on a remote OpenAI-compatible server (vLLM, llama.cpp's server, ...).

Requests are always streamed upstream, so a cancelled generation closes the connection. Constraints are
sent as OpenAI `response_format` plus vLLM's `guided_*` fields; since a server may ignore what it does not
know, the service checks every constrained output itself (`enforces_constraints = False`). Upstream errors
become 502, timeouts 504.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from inferline.engines.chat import ChatEngineError, Constraint, EngineRequest, OnChunk
from inferline.engines.llamacpp_chat import PASSTHROUGH


def constraint_fields(constraint: Constraint | None) -> dict[str, Any]:
    if constraint is None:
        return {}
    if constraint.kind == "json_schema":
        spec = {"name": "output", "schema": constraint.value, "strict": True}
        return {
            "response_format": {"type": "json_schema", "json_schema": spec},
            "guided_json": constraint.value,
        }
    if constraint.kind == "json_object":
        return {"response_format": {"type": "json_object"}}
    if constraint.kind == "regex":
        return {"guided_regex": constraint.value}
    return {"guided_choice": list(constraint.value)}


class OpenAICompatChatEngine:
    """One model on one upstream server; `url` is its OpenAI base (e.g. `http://vllm:8000/v1`)."""

    enforces_constraints = False
    native_tools = False  # a server may not parse tool calls: tools go as constrained JSON

    def __init__(
        self, name: str, url: str, upstream_model: str, *, api_key: str | None = None, timeout: float = 60.0
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.upstream_model = upstream_model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)

    def body(self, request: EngineRequest) -> dict[str, Any]:
        body: dict[str, Any] = {k: v for k, v in request.params.items() if k in PASSTHROUGH}
        body.update(
            model=self.upstream_model,
            messages=request.messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        body.update(constraint_fields(request.constraint))
        if request.enable_thinking is not None:
            body["chat_template_kwargs"] = {"enable_thinking": request.enable_thinking}
        return body

    def stream(self, request: EngineRequest, on_chunk: OnChunk) -> None:
        try:
            with self._client.stream(
                "POST", self.url + "/chat/completions", json=self.body(request)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    status = 429 if response.status_code == 429 else 502
                    raise ChatEngineError(
                        status, f"upstream answered {response.status_code}: {response.text[:300]}"
                    )
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise ChatEngineError(502, f"upstream error: {chunk['error']}")
                    if on_chunk(chunk):
                        return
        except httpx.TimeoutException as exc:
            raise ChatEngineError(504, f"upstream {self.url} did not answer in time") from exc
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise ChatEngineError(502, f"upstream {self.url} failed: {exc}") from exc

    def close(self) -> None:
        self._client.close()
