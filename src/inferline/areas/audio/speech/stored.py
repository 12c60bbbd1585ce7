"""Stored speech, `output_type: audio_id`: synthesised in the background, fetched by id while it is produced.

`POST /v2/text-to-speech/speech` answers `{"audio_id": …}` at once. A background thread of the API process
that took the POST (in-process: no job queue; a small pool bounds the concurrent syntheses) runs the same
sentence-by-sentence synthesis as the binary and WebSocket paths and appends each encoded chunk to the
database (`tts_audio`, `tts_audio_chunks`), so `GET /v2/text-to-speech/speech/{audio_id}` on any replica
streams the chunks as they land, and serves the whole audio until it expires
(`INFERLINE_TTS_AUDIO_TTL_SECONDS`). An expired item, a missing one and another tenant's are the same 404. A
producer silent for `stall_seconds` (its process stopped) ends the stream where it stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from inferline.areas.audio.speech.service import SpeechStream
from inferline.errors import EngineUnavailable, NotFound
from inferline.stores.audio_tables import TtsAudio, TtsAudioChunk
from inferline.stores.db import Database, get_owned
from inferline.stores.tables import utcnow

log = logging.getLogger("inferline.speech")
IN_PROGRESS, COMPLETED, FAILED = "in_progress", "completed", "failed"


@dataclass
class StoredAudio:
    """A stored speech item being read: its headers and its chunks, following the synthesis."""

    audio_id: str
    content_type: str
    voice_id: str
    chunks: Iterator[bytes] = field(repr=False)


class StoredSpeechService:
    """Starts background syntheses into the database and reads them back by id."""

    def __init__(
        self,
        db: Database,
        ttl_seconds: float,
        *,
        max_workers: int = 2,
        poll_seconds: float = 0.1,
        stall_seconds: float = 120.0,
    ) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl_seconds)
        self.poll_seconds = poll_seconds
        self.stall = timedelta(seconds=stall_seconds)
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="tts-audio")

    def start(self, tenant_id: str, stream: SpeechStream) -> str:
        """Record the item, queue its synthesis and return its id; expired items are deleted here."""
        now = utcnow()
        with self.db.session() as s:
            expired = select(TtsAudio.id).where(TtsAudio.expires_at <= now)
            s.execute(delete(TtsAudioChunk).where(TtsAudioChunk.audio_id.in_(expired)))
            s.execute(delete(TtsAudio).where(TtsAudio.expires_at <= now))
            row = TtsAudio(
                tenant_id=tenant_id,
                status=IN_PROGRESS,
                content_type=stream.content_type,
                voice_id=stream.voice_id,
                chunks=0,
                created_at=now,
                updated_at=now,
                expires_at=now + self.ttl,
            )
            s.add(row)
            s.flush()
            audio_id = row.id
        self._pool.submit(self._produce, audio_id, stream)
        return audio_id

    def _produce(self, audio_id: str, stream: SpeechStream) -> None:
        self._set(audio_id, updated_at=utcnow())  # started: a queued item is not stalled
        seq = 0
        try:
            for data in stream.chunks:
                with self.db.session() as s:
                    s.add(TtsAudioChunk(audio_id=audio_id, seq=seq, data=data))
                    s.execute(
                        update(TtsAudio)
                        .where(TtsAudio.id == audio_id)
                        .values(chunks=seq + 1, updated_at=utcnow())
                    )
                seq += 1
        except Exception as exc:  # the engine failed: readers get what was made, then the end
            log.exception("speech synthesis of %s failed", audio_id)
            self._set(audio_id, status=FAILED, error=str(exc) or type(exc).__name__, updated_at=utcnow())
            return
        self._set(audio_id, status=COMPLETED, updated_at=utcnow())

    def _set(self, audio_id: str, **values: object) -> None:
        with self.db.session() as s:
            s.execute(update(TtsAudio).where(TtsAudio.id == audio_id).values(**values))

    def status(self, tenant_id: str, audio_id: str) -> str:
        """`in_progress`, `completed` or `failed`; `NotFound` when missing, expired or another tenant's."""
        with self.db.session() as s:
            return self._owned(s, tenant_id, audio_id).status

    def open(self, tenant_id: str, audio_id: str) -> StoredAudio:
        """The item's audio, streamed from its first chunk and following the synthesis until it ends."""
        with self.db.session() as s:
            row = self._owned(s, tenant_id, audio_id)
            if row.status == FAILED and row.chunks == 0:
                raise EngineUnavailable(f"The synthesis of {audio_id} failed: {row.error}.")
            return StoredAudio(audio_id, row.content_type, row.voice_id, self._follow(audio_id))

    @staticmethod
    def _owned(s: Session, tenant_id: str, audio_id: str) -> TtsAudio:
        row = get_owned(s, TtsAudio, audio_id, tenant_id, f"Audio {audio_id} not found.", pointer="/audio_id")
        if row.expires_at <= utcnow():
            raise NotFound(f"Audio {audio_id} not found.", pointer="/audio_id")
        return row

    def _follow(self, audio_id: str) -> Iterator[bytes]:
        seq = 0
        while True:
            with self.db.session() as s:
                # The status first: once it is final, every chunk is already stored.
                row = s.get(TtsAudio, audio_id)
                status, updated = (row.status, row.updated_at) if row else (FAILED, utcnow())
                data = s.scalars(
                    select(TtsAudioChunk.data)
                    .where(TtsAudioChunk.audio_id == audio_id, TtsAudioChunk.seq >= seq)
                    .order_by(TtsAudioChunk.seq)
                ).all()
            yield from data
            seq += len(data)
            if data:
                continue
            if status != IN_PROGRESS or utcnow() - updated > self.stall:
                return
            time.sleep(self.poll_seconds)
