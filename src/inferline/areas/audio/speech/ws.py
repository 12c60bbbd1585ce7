"""WebSocket text-to-speech, `GET /v2/text-to-speech/speech` (the telnyx SDKs' `text_to_speech.stream()`).

Query: `voice` (or `provider` + `model_id` + `voice_id`), `audio_format` (`mp3` default, `pcm` 24 kHz 16-bit,
`wav`, or any REST format). The client sends `{"text": " ", "voice_settings": {...}}` first (optional), then
`{"text": "..."}` frames; `{"force": true}` interrupts the current synthesis. For each text the server sends
`audio_chunk` frames (base64 audio, sentence by sentence, the first clause first; an encoded format sends a
sentence's first encoded bytes, then the rest; the first frame carries `timeToFirstAudioFrameMs`) and
then a `final` frame. A problem is an `error` frame, after which the socket closes. Mounted outside the HTTP
router because authentication reads the WebSocket handshake's `Authorization: Bearer` header. A `read` key is
refused at the handshake (HTTP 403, Telnyx error envelope); the characters spoken are metered for the key when
the socket closes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from inferline.areas.audio.speech.service import SpeechRequest, SpeechService
from inferline.errors import BadRequest, Forbidden, InferlineError
from inferline.ops.context import CURRENT, RequestOps
from inferline.ops.guard import check_websocket_scope
from inferline.web.deps import TenantDep

ws_router = APIRouter()
FINAL = {"type": "final", "audio": None, "text": "", "isFinal": True}


class _Session:
    """One connection: a queue of texts synthesised in order, interruptible with `force`."""

    def __init__(self, websocket: WebSocket, speech: SpeechService, voice: str, audio_format: str) -> None:
        self.ws = websocket
        self.speech = speech
        self.voice = voice
        self.audio_format = audio_format
        self.settings: dict[str, Any] = {}
        self.texts: asyncio.Queue[str | None] = asyncio.Queue()
        self.cancel = asyncio.Event()

    async def error(self, detail: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_json({"type": "error", "error": detail})
            await self.ws.close(code=1008)

    def request(self, text: str) -> SpeechRequest:
        unknown = set(self.settings) - {"voice_speed", "speed", "volume"}
        return SpeechRequest(
            text=text,
            voice=self.voice,
            response_format=self.audio_format,
            speed=float(self.settings.get("voice_speed") or self.settings.get("speed") or 1.0),
            volume=float(self.settings.get("volume") or 1.0),
            unsupported=tuple(f"voice_settings/{k}" for k in sorted(unknown)),
        )

    async def synthesise(self) -> None:
        while (text := await self.texts.get()) is not None:
            self.cancel.clear()
            started = time.monotonic()
            try:
                chunks = self.speech.speak(self.request(text)).chunks
            except (InferlineError, ValueError) as exc:
                await self.error(getattr(exc, "detail", str(exc)))
                return
            first = True
            try:
                while not self.cancel.is_set():
                    data = await run_in_threadpool(next, chunks, None)
                    if data is None:
                        break
                    frame: dict[str, Any] = {
                        "type": "audio_chunk",
                        "audio": base64.b64encode(data).decode(),
                        "text": text,
                        "isFinal": False,
                        "cached": False,
                    }
                    if first:
                        frame["timeToFirstAudioFrameMs"] = int((time.monotonic() - started) * 1000)
                        first = False
                    await self.ws.send_json(frame)
            finally:
                with contextlib.suppress(Exception):
                    await run_in_threadpool(chunks.close)  # type: ignore[attr-defined]
            if not self.cancel.is_set():
                await self.ws.send_json(FINAL)

    async def receive(self) -> None:
        handshake = True
        while True:
            try:
                message = json.loads(await self.ws.receive_text())
            except json.JSONDecodeError:
                await self.error('Frames must be JSON objects such as {"text": "Hello"}.')
                return
            if not isinstance(message, dict):
                await self.error('Frames must be JSON objects such as {"text": "Hello"}.')
                return
            if message.get("force"):
                self.cancel.set()
                while not self.texts.empty():
                    self.texts.get_nowait()
            text = message.get("text")
            if handshake and isinstance(message.get("voice_settings"), dict):
                self.settings = dict(message["voice_settings"])
            handshake = False
            if isinstance(text, str) and text.strip():
                self.texts.put_nowait(text)


@ws_router.get("/text-to-speech/speech", include_in_schema=False)
def speech_stream_needs_upgrade(_: TenantDep) -> None:
    """A plain HTTP GET of the streaming path: it only speaks WebSocket."""
    raise BadRequest(
        "GET /v2/text-to-speech/speech is a WebSocket endpoint: connect with an Upgrade: websocket handshake "
        "(the telnyx SDKs' text_to_speech.stream()); use POST for a one-shot synthesis.",
        headers={"Upgrade": "websocket"},
    )


@ws_router.websocket("/text-to-speech/speech")
async def speech_stream(websocket: WebSocket) -> None:
    container = websocket.app.state.container
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    try:
        principal = container.keys.authenticate(token.strip() if scheme.lower() == "bearer" else "")
    except InferlineError:
        await websocket.close(code=1008)  # before accept: the handshake is refused (HTTP 403)
        return
    try:
        check_websocket_scope(principal, websocket.url.path)
    except Forbidden as exc:  # the handshake is answered 403 with the reason
        await websocket.send_denial_response(JSONResponse(exc.envelope(), status_code=exc.status))
        return
    ops = RequestOps()  # the characters spoken, metered for the key when the socket closes
    token_ops = CURRENT.set(ops)
    try:
        await _serve(websocket, container, principal.tenant_id)
    finally:
        CURRENT.reset(token_ops)
        if ops.units:
            units = [(metric, model, quantity) for (metric, model), quantity in ops.units.items()]
            await run_in_threadpool(container.usage.record, principal.tenant_id, principal.key_id, units)


async def _serve(websocket: WebSocket, container: Any, tenant_id: str) -> None:
    await websocket.accept()
    q = websocket.query_params
    voice = q.get("voice")
    if not voice and q.get("voice_id"):
        voice = ".".join(p for p in (q.get("provider") or "telnyx", q.get("model_id"), q["voice_id"]) if p)
    session = _Session(websocket, container.speech, "", q.get("audio_format") or "mp3")
    try:
        session.voice = container.speech.resolve(voice, q.get("provider"), tenant_id).voice_id
    except InferlineError as exc:
        await session.error(exc.detail)
        return
    worker = asyncio.create_task(session.synthesise())
    receiver = asyncio.create_task(session.receive())
    try:
        await asyncio.wait({worker, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Stop after the sentence in progress; the worker closes its synthesis stream itself.
        session.cancel.set()
        session.texts.put_nowait(None)
        receiver.cancel()
        await asyncio.gather(worker, receiver, return_exceptions=True)
