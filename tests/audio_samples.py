"""Real speech for the audio tests: sentences spoken by the installed Piper voice, in several containers."""

from __future__ import annotations

import io
import wave
from functools import cache

import numpy as np

from inferline.areas.audio import codec as audio_codec
from inferline.engines.piper_tts import PiperEngine
from tests.conftest import MODELS_DIR

VOICE_FILE = MODELS_DIR / "rhasspy--piper-en_US-joe-medium" / "voice.onnx"
RATE = 22050


@cache
def voice() -> PiperEngine:
    """The voice with its sampling noise off (`variation=0`): the same samples, so the same transcript, every
    run (the test server speaks the same way, `tts_variation=0` in `conftest`)."""
    return PiperEngine("rhasspy/piper-en_US-joe-medium", VOICE_FILE, variation=0.0)


@cache
def speech(text: str) -> np.ndarray:
    """Mono float32 samples at `RATE`, the same every run."""
    return np.concatenate(list(voice().synthesize(text)))


def wav(samples: np.ndarray | list[np.ndarray], rate: int = RATE) -> bytes:
    """16-bit WAV with one channel per array (written with the stdlib, independent of the server's codec)."""
    channels = samples if isinstance(samples, list) else [samples]
    length = max(len(c) for c in channels)
    frames = np.zeros((length, len(channels)), dtype=np.float32)
    for i, c in enumerate(channels):
        frames[: len(c), i] = c
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def container(samples: np.ndarray, muxer: str, codec: str, rate: int = RATE) -> bytes:
    """`samples` encoded by FFmpeg into `muxer` with `codec` (e.g. ipod/aac for .m4a, webm/libopus)."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format=muxer) as c:
        stream = c.add_stream(codec, rate=48000 if codec == "libopus" else rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return out.getvalue()


def encoded(samples: np.ndarray, fmt: str) -> bytes:
    return audio_codec.encode(samples, RATE, fmt)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    return "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text.lower()).split()
