"""uvicorn's WebSocket protocol, with a refused handshake counted as complete.

uvicorn 0.54's `websockets-sansio` implementation (its default) never marks the handshake complete after a
denial response (`websocket.http.response.*`, Starlette's `send_denial_response`), so every refused handshake
logs "ASGI callable returned without completing handshake." at error level although the client got the
response. `inferline serve` runs this subclass instead; every other uvicorn error is still logged.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """`WebSocketsSansIOProtocol` whose denial response completes the handshake."""

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            self.handshake_complete = True
