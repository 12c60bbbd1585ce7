"""For the areas that serve another API on top of chat (responses, anthropic): build the typed
`ChatCompletionRequest` from a translated request, and point chat's errors at the caller's own fields.

Chat names what it refuses with pointers into a chat request (`/messages/3/tool_call_id`, `/max_tokens`,
`/tools/0/function/parameters`); `Pointers` rewrites them into the pointers of the request the client sent
(`/input/5/call_id`, `/max_output_tokens`, `/tools/0/parameters`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from pydantic import ValidationError

from inferline.areas.chat.generation import Telemetry
from inferline.areas.chat.protocol import ChatCompletion, ChatCompletionRequest
from inferline.areas.chat.service import ChatStream
from inferline.errors import InferlineError, UnsupportedParameter, ValidationFailed


class ChatCompletions(Protocol):
    """What a translating area needs from chat (`container.chat`)."""

    async def complete(
        self,
        tenant_id: str,
        request: ChatCompletionRequest,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> tuple[ChatCompletion, Telemetry]: ...

    async def stream(self, tenant_id: str, request: ChatCompletionRequest) -> ChatStream: ...


_MESSAGE = re.compile(r"^/messages/(\d+)(?:/.*)?$")


class Pointers:
    """Where each chat message came from (`origin` per message, in order) and how chat's other field
    pointers read in the client's request (`fields`: (regex, replacement) pairs, first match wins)."""

    def __init__(self, fields: Sequence[tuple[str, str]] = ()) -> None:
        self.origins: list[str] = []
        self.fields = [(re.compile(pattern), replacement) for pattern, replacement in fields]

    def add(self, origin: str) -> None:
        """Record the origin of the next chat message."""
        self.origins.append(origin)

    def remap(self, pointer: str | None) -> str | None:
        if pointer is None:
            return None
        if found := _MESSAGE.match(pointer):
            index = int(found[1])
            return self.origins[index] if index < len(self.origins) else pointer
        for pattern, replacement in self.fields:
            new, count = pattern.subn(replacement, pointer)
            if count:
                return new
        return pointer

    @contextmanager
    def translated(self) -> Iterator[None]:
        """Re-raise chat's errors with their pointers rewritten into the client's request."""
        try:
            yield
        except InferlineError as exc:
            exc.pointer = self.remap(exc.pointer)
            raise

    def chat_request(self, fields: dict[str, Any]) -> ChatCompletionRequest:
        """The typed chat request; a value chat's wire model refuses is a 422 naming the client's field."""
        try:
            return ChatCompletionRequest.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "/" + "/".join(str(p) for p in first.get("loc", ()))
            pointer = self.remap(where) or where
            raise ValidationFailed(
                f"{pointer.strip('/') or 'body'}: {first['msg']}", pointer=pointer
            ) from exc


def chat_option(name: str, value: Any, pointer: str) -> dict[str, Any]:
    """`{name: value}` for the chat request when chat takes that option; a 400 naming `pointer` when it does
    not; nothing when `value` is None."""
    if value is None:
        return {}
    if name not in ChatCompletionRequest.model_fields:
        raise UnsupportedParameter(
            f"{pointer.strip('/')}: not supported by this server's chat engine.", pointer=pointer
        )
    return {name: value}
