"""A call recording becomes a conversation in one request (inferline extension,
`POST /ai/conversations/recordings`).

The recording is transcribed per channel when it has several (`model_config[multichannel]`), else diarized
(`model_config[diarize]`); consecutive segments of one channel (or speaker) become one message whose role
comes from the channel (or speaker) → role mapping (default 0 → user, 1 → assistant, others user), with
`start_ms`, `end_ms` and `channel` or `speaker` in its metadata. The conversation carries the caller's
metadata and the recording's (`recording_*`, `transcription_model`). With `redact` (or the tenant's redaction
default, `tenant_settings.py`), personal data is replaced in the transcript and every message before anything
is stored. With an insight group, its run is created in the same
transaction (its webhook fires when it completes).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from inferline.areas.audio.transcription.service import TranscriptionOptions, TranscriptionResult
from inferline.areas.conversations.insight_runs import InsightRunService, _run_view
from inferline.areas.conversations.insight_templates import group_members, owned_group
from inferline.areas.conversations.service import _conversation_view, _message_view
from inferline.errors import BadRequest, ValidationFailed
from inferline.privacy.redaction import redact
from inferline.privacy.tenant_settings import redacts
from inferline.stores.conversations_tables import Conversation, ConversationMessage
from inferline.stores.db import Database
from inferline.stores.tables import utcnow

MODES = ("auto", "multichannel", "diarize")
ROLES = ("user", "assistant")
DEFAULT_ROLES = {0: "user", 1: "assistant"}


class Fetcher(Protocol):
    def get(self, url: str, *, pointer: str) -> tuple[bytes, Any]: ...


class Transcriber(Protocol):
    """What recordings need from speech-to-text (`container.transcription`)."""

    fetcher: Fetcher

    def transcribe(
        self, tenant_id: str, data: bytes, options: TranscriptionOptions, *, source: str = "api"
    ) -> TranscriptionResult: ...


@dataclass(frozen=True)
class RecordingRequest:
    """A parsed recording upload: `data` or `file_url`, and what to make of it."""

    data: bytes | None = None
    file_url: str | None = None
    filename: str | None = None
    name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    insight_group_id: str | None = None
    channel_roles: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_ROLES))
    speaker_roles: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_ROLES))
    mode: str = "auto"
    model: str | None = None
    language: str | None = None
    redact: bool | None = None  # None: the tenant's default


@dataclass
class _Turn:
    key: tuple[str, int]
    start: float
    end: float
    texts: list[str]


def channel_count(data: bytes) -> int:
    """The channels of the first audio stream (1 when the container cannot be probed: the transcription
    then reports why it cannot decode it)."""
    import av

    try:
        with av.open(io.BytesIO(data)) as c:
            return int(c.streams.audio[0].codec_context.channels) if c.streams.audio else 1
    except (av.FFmpegError, ValueError, IndexError):
        return 1


def turns(result: TranscriptionResult) -> list[_Turn]:
    """Consecutive segments of the same channel (or speaker) merged, in time order."""
    out: list[_Turn] = []
    for piece in result.segments:
        key = ("speaker", piece.speakers[0]) if piece.speakers else ("channel", piece.channel or 0)
        text = piece.segment.text.strip()
        if not text:
            continue
        if out and out[-1].key == key:
            out[-1].end = piece.segment.end
            out[-1].texts.append(text)
        else:
            out.append(_Turn(key, piece.segment.start, piece.segment.end, [text]))
    return out


class RecordingService:
    """Transcribe a recording into a new conversation, optionally redacted, and start its insight run."""

    def __init__(self, db: Database, transcription: Transcriber, insight_runs: InsightRunService) -> None:
        self.db = db
        self.transcription = transcription
        self.insight_runs = insight_runs

    def create(self, tenant_id: str, request: RecordingRequest) -> dict[str, Any]:
        if request.insight_group_id:  # fail before the (slow) transcription
            with self.db.session() as s:
                group = owned_group(s, tenant_id, request.insight_group_id)
                if not group_members(s, group.id):
                    raise BadRequest(
                        f"Insight group {group.id} has no insight templates assigned.",
                        pointer="/insight_group_id",
                    )
        if request.data is not None:
            data, source = request.data, request.filename or "upload"
        else:
            assert request.file_url is not None
            data, _ = self.transcription.fetcher.get(request.file_url, pointer="/file_url")
            source = request.file_url
        redacted = redacts(self.db, tenant_id, request.redact)
        mode = request.mode
        if mode == "auto":
            mode = "multichannel" if channel_count(data) > 1 else "diarize"
        options = TranscriptionOptions(
            model=request.model, language=request.language, model_config={mode: True}, redact=redacted
        )
        result = self.transcription.transcribe(tenant_id, data, options, source="recording")
        pieces = turns(result)
        if not pieces:
            raise BadRequest("No speech was heard in the recording.", pointer="/file")
        meta = {
            **request.metadata,
            "recording_source": source[:500],
            "recording_duration_ms": str(round(result.duration * 1000)),
            "recording_channels": str(result.channels),
            "recording_mode": mode,
            "transcription_model": result.model,
        }
        if request.insight_group_id:
            meta["insight_group_id"] = request.insight_group_id
        if redacted:
            meta["redacted"] = "true"
        with self.db.session() as s:
            return self._store(s, tenant_id, request, meta, pieces, redacted)

    def _store(
        self,
        s: Session,
        tenant_id: str,
        request: RecordingRequest,
        meta: dict[str, str],
        pieces: list[_Turn],
        redacted: bool,
    ) -> dict[str, Any]:
        now = utcnow()
        conversation = Conversation(
            tenant_id=tenant_id, name=request.name or request.filename, meta=meta, last_message_at=now
        )
        s.add(conversation)
        s.flush()
        rows = []
        for turn in pieces:
            kind, index = turn.key
            roles = request.channel_roles if kind == "channel" else request.speaker_roles
            text = " ".join(turn.texts)
            if redacted:  # again: a match split across the turn's segments
                text = redact(text).text
            row = ConversationMessage(
                tenant_id=tenant_id,
                conversation_id=conversation.id,
                role=roles.get(index, "user"),
                text=text,
                meta={
                    "start_ms": round(turn.start * 1000),
                    "end_ms": round(turn.end * 1000),
                    kind: index,
                    "source": "recording",
                },
                created_at=now,
            )
            s.add(row)
            rows.append(row)
        s.flush()
        run = None
        if request.insight_group_id:
            run = _run_view(self.insight_runs.trigger(s, tenant_id, conversation, request.insight_group_id))
        return {
            "conversation": _conversation_view(conversation),
            "messages": [_message_view(r) for r in rows],
            "insight_run": run,
        }


def parse_roles(value: str | None, pointer: str) -> dict[int, str]:
    """A JSON object of channel (or speaker) index → `user`/`assistant`, e.g. `{"0": "assistant"}`."""
    import json

    if value is None or value == "":
        return dict(DEFAULT_ROLES)
    try:
        raw = json.loads(value)
    except json.JSONDecodeError:
        raise BadRequest(f"{pointer[1:]} must be a JSON object.", pointer=pointer) from None
    if not isinstance(raw, dict):
        raise BadRequest(f"{pointer[1:]} must be a JSON object.", pointer=pointer)
    roles: dict[int, str] = {}
    for key, role in raw.items():
        if not str(key).isdigit() or int(key) > 31:
            raise ValidationFailed(f"{key!r} is not a channel or speaker index (0-31).", pointer=pointer)
        if role not in ROLES:
            raise ValidationFailed(f"Role {role!r} must be one of {', '.join(ROLES)}.", pointer=pointer)
        roles[int(key)] = role
    return roles
