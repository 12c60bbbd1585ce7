"""Audio: transcription speed via the API vs faster-whisper direct; TTS time to first byte vs Piper direct.

TTS streams from the first clause (the API cuts the text after its first comma, so its first chunk is shorter
than Piper's own first chunk, a sentence) and every format streams as it is encoded (WAV: a streaming header,
then PCM; a codec's first bytes of each chunk leave once a slice of it is encoded, `codec.AudioEncoder.feed`).
The first-byte pairs are more (`TTFB_RUNS`): one takes ~0.1 s, and their spread is a few ms. Every timed call
starts `SETTLE` seconds after the one before: onnxruntime's threads (Piper's, on both sides) keep spinning a
while after a run and would take the cores from the other side's next call (the direct first chunk took
82 ms right after a streamed WAV, 55 ms after an mp3, whose encoding ends the response).

The speech is real: sentences spoken by the installed Piper voice (about 15 s), sent as mp3. Each pair of
measurements alternates (API, direct, API, direct, …) so that load from other processes hits both alike.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

import httpx
import numpy as np

from bench.common import BENCH_KEY, Row, live_server, pick
from inferline import catalog
from inferline.areas.audio import codec as audio_codec

SENTENCES = (
    "Thank you for calling, how can I help you today?",
    "I would like to book a table for dinner on Friday evening.",
    "The weather is sunny and warm today, so we can sit outside.",
    "Please send the report before the meeting starts tomorrow morning.",
    "Your appointment is confirmed, and we will call you back later.",
)
TTS_TEXT = " ".join(SENTENCES[:3])
RUNS = pick(5, 1)
TTFB_RUNS = pick(15, 1)
SETTLE = pick(0.1, 0.0)
STT_SENTENCES = SENTENCES[: pick(len(SENTENCES), 2)]


def _timed(fn: Callable[[], object]) -> float:
    time.sleep(SETTLE)
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _paired(api: Callable[[], float], direct: Callable[[], float], runs: int = RUNS) -> tuple[float, float]:
    """Median seconds of each, after one warm-up call, measured alternately."""
    api(), direct()
    pairs = [(api(), direct()) for _ in range(runs)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def run() -> list[Row]:
    from faster_whisper import WhisperModel, decode_audio
    from piper import PiperVoice

    with live_server() as (url, container):
        speech = container.speech.default()
        samples = np.concatenate([c for s in STT_SENTENCES for c in speech.engine.synthesize(s)])
        seconds = len(samples) / speech.engine.sample_rate
        mp3 = audio_codec.encode(samples, speech.engine.sample_rate, "mp3")
        entry = container.models.default("stt")
        model = WhisperModel(str(catalog.model_dir(container.models.models_dir, entry)), compute_type="int8")
        voice = PiperVoice.load(speech.engine.voice_file)  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        tts_body = {"text": TTS_TEXT, "voice": speech.voice_id}
        with httpx.Client(base_url=url, headers=headers, timeout=300) as http:

            def api_stt() -> float:
                files = {"file": ("call.mp3", mp3)}
                return _timed(lambda: http.post("/ai/audio/transcriptions", files=files).raise_for_status())

            def direct_stt() -> float:
                def go() -> None:
                    audio = decode_audio(io.BytesIO(mp3))
                    segments, _ = model.transcribe(
                        audio, beam_size=1, language="en", condition_on_previous_text=False
                    )
                    list(segments)

                return _timed(go)

            def api_ttfb(body: dict[str, object] = tts_body) -> float:
                time.sleep(SETTLE)
                started = time.perf_counter()
                with http.stream("POST", "/text-to-speech/speech", json=body) as r:
                    chunks = r.raise_for_status().iter_raw()
                    next(chunks)
                    first = time.perf_counter() - started
                    for _ in chunks:
                        pass
                return first

            def direct_ttfb() -> float:
                return _timed(lambda: next(iter(voice.synthesize(TTS_TEXT))))

            def api_tts() -> float:
                return _timed(lambda: http.post("/text-to-speech/speech", json=tts_body).raise_for_status())

            def direct_tts() -> float:
                return _timed(lambda: list(voice.synthesize(TTS_TEXT)))

            stt = _paired(api_stt, direct_stt)
            ttfb = _paired(api_ttfb, direct_ttfb, TTFB_RUNS)
            wav_body = {**tts_body, "telnyx": {"response_format": "wav"}}
            ttfb_wav = _paired(lambda: api_ttfb(wav_body), direct_ttfb, TTFB_RUNS)
            tts = _paired(api_tts, direct_tts)
    return [
        Row(f"STT speed ({entry.id}, {seconds:.0f} s mp3)", seconds / stt[0], seconds / stt[1], "x realtime",
            "faster-whisper direct, same model (int8)"),
        Row("TTS time to first byte (mp3, 3 sentences)", ttfb[0] * 1000, ttfb[1] * 1000, "ms",
            "Piper's first chunk in-process (its first sentence, raw)", higher_is_better=False),
        Row("TTS time to first byte (wav, 3 sentences)", ttfb_wav[0] * 1000, ttfb_wav[1] * 1000, "ms",
            "Piper's first chunk in-process (its first sentence, raw)", higher_is_better=False),
        Row("TTS whole response (mp3, 3 sentences)", tts[0] * 1000, tts[1] * 1000, "ms",
            "Piper in-process (raw samples, no encode)", higher_is_better=False),
    ]  # fmt: skip
