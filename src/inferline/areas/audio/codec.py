"""Audio decode and encode with PyAV (FFmpeg): any container in, float32 samples out, and back.

Decoding never trusts a file name or content type; FFmpeg probes the bytes. Encoding streams: an
`AudioEncoder` turns each chunk of samples into the bytes that are ready so far (WAV too: a streaming header,
its sizes unknown, then the PCM as it comes; `wav_with_sizes` fills in the sizes of a whole one).
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferline.errors import BadRequest

# The slices a codec is fed at the start of each chunk until its first bytes come out (`AudioEncoder.feed`).
HEAD_SECONDS = 0.05


@dataclass(frozen=True)
class OutputFormat:
    """How one response format is produced: FFmpeg muxer + codec (None = raw numpy), and its content type."""

    name: str
    content_type: str
    muxer: str | None
    codec: str | None
    rates: tuple[int, ...] | None = None  # codec-supported rates; None = any


FORMATS: dict[str, OutputFormat] = {
    "mp3": OutputFormat(
        "mp3",
        "audio/mpeg",
        "mp3",
        "libmp3lame",
        (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    ),
    "ogg": OutputFormat("ogg", "audio/ogg", "ogg", "libopus", (8000, 12000, 16000, 24000, 48000)),
    "opus": OutputFormat("opus", "audio/ogg", "ogg", "libopus", (8000, 12000, 16000, 24000, 48000)),
    "aac": OutputFormat("aac", "audio/aac", "adts", "aac"),
    "flac": OutputFormat("flac", "audio/flac", "flac", "flac"),
    "wav": OutputFormat("wav", "audio/wav", None, None),
    "pcm": OutputFormat("pcm", "audio/pcm", None, None),
    "mulaw": OutputFormat("mulaw", "audio/basic", "mulaw", "pcm_mulaw"),
    "alaw": OutputFormat("alaw", "audio/x-alaw-basic", "alaw", "pcm_alaw"),
}


@dataclass(frozen=True)
class DecodedAudio:
    """Decoded audio: one float32 array per channel (or one mixed-down array), at `sample_rate`."""

    channels: list[np.ndarray]
    sample_rate: int
    source_channels: int
    container: str

    @property
    def duration(self) -> float:
        return len(self.channels[0]) / self.sample_rate if self.channels else 0.0


def _undecodable(reason: str) -> BadRequest:
    return BadRequest(
        f"The audio could not be decoded ({reason}). Send flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav or webm.",
        pointer="/file",
    )


def decode(data: bytes, *, sample_rate: int = 16_000, split_channels: bool = False) -> DecodedAudio:
    """Decode any FFmpeg-readable audio (or the audio track of a video) to float32 at `sample_rate`.

    With `split_channels`, each source channel comes back separately; otherwise they are mixed to mono.
    Undecodable or silent-empty input is a 400 pointing at `/file`.
    """
    import av

    if not data:
        raise _undecodable("the file is empty")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise _undecodable("no audio stream")
            stream = container.streams.audio[0]
            source_channels = stream.codec_context.channels or 1
            keep = split_channels and source_channels > 1
            layout = stream.codec_context.layout.name if keep else "mono"
            resampler = av.AudioResampler(format="flt", layout=layout, rate=sample_rate)
            parts: list[np.ndarray] = []
            for frame in container.decode(stream):
                frame.pts = None
                parts.extend(f.to_ndarray() for f in resampler.resample(frame))
            parts.extend(f.to_ndarray() for f in resampler.resample(None))
            name = container.format.name
    except BadRequest:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise _undecodable(getattr(exc, "strerror", None) or type(exc).__name__) from exc
    if not parts:
        raise _undecodable("no audio samples")
    width = source_channels if keep else 1
    interleaved = np.concatenate([p.reshape(-1) for p in parts]).astype(np.float32)
    frames = interleaved.reshape(-1, width)
    if not len(frames):
        raise _undecodable("no audio samples")
    return DecodedAudio(
        channels=[np.ascontiguousarray(frames[:, c]) for c in range(width)],
        sample_rate=sample_rate,
        source_channels=source_channels,
        container=name,
    )


def to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono float32 with FFmpeg's resampler."""
    if from_rate == to_rate or not len(samples):
        return samples.astype(np.float32)
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=to_rate)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(_frame(samples, from_rate))]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def _frame(samples: np.ndarray, rate: int) -> Any:
    import av

    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
    )
    frame.sample_rate = rate
    return frame


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit PCM mono WAV."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(to_int16(samples).tobytes())
    return buf.getvalue()


STREAMING_SIZE = 0xFFFFFFFF  # a WAV size not known yet: readers take the data to the end of the stream


def wav_header(rate: int, data_bytes: int = STREAMING_SIZE) -> bytes:
    """The 44-byte header of a 16-bit PCM mono WAV holding `data_bytes` (by default: streamed, unknown)."""
    riff = STREAMING_SIZE if data_bytes == STREAMING_SIZE else 36 + data_bytes
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, 2 * rate, 2, 16)  # PCM, mono, 16-bit
    return struct.pack("<4sI4s", b"RIFF", riff, b"WAVE") + fmt + struct.pack("<4sI", b"data", data_bytes)


def wav_with_sizes(data: bytes) -> bytes:
    """A whole WAV made by `AudioEncoder` (streaming header) with its real sizes in the header."""
    rate = struct.unpack_from("<I", data, 24)[0]
    return wav_header(rate, len(data) - 44) + data[44:]


def _supported_rate(fmt: OutputFormat, rate: int) -> int:
    """`rate`, or the codec's nearest higher rate (else its highest) when the codec cannot take it."""
    if fmt.rates is None or rate in fmt.rates:
        return rate
    return min((r for r in fmt.rates if r >= rate), default=max(fmt.rates))


class _Sink(io.RawIOBase):
    """A write-only file object whose written bytes are collected until drained."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._chunks.append(bytes(b))
        return len(b)

    def drain(self) -> bytes:
        out, self._chunks = b"".join(self._chunks), []
        return out


class AudioEncoder:
    """Encodes mono float32 chunks at `in_rate` to `fmt` at `out_rate`, yielding bytes as they are ready.

    Every format streams. WAV starts with a header whose sizes are unknown (`STREAMING_SIZE`), then PCM (raw
    formats are resampled chunk by chunk: one chunk in, one out).
    """

    def __init__(self, fmt: str, in_rate: int, out_rate: int | None = None) -> None:
        self.format = FORMATS[fmt]
        self.in_rate = in_rate
        self.out_rate = _supported_rate(self.format, out_rate or in_rate)
        self._started = False
        self._container: Any = None
        self._stream: Any = None
        self._sink = _Sink()
        if self.format.muxer is not None:
            import av

            self._container = av.open(
                self._sink, mode="w", format=self.format.muxer, options={"flush_packets": "1"}
            )
            self._stream = self._container.add_stream(self.format.codec, rate=self.out_rate, layout="mono")

    @property
    def content_type(self) -> str:
        return self.format.content_type

    def feed(self, samples: np.ndarray) -> Iterator[bytes]:
        """Feed one chunk, yielding its encoded bytes as soon as some are ready: a codec is fed the chunk in
        slices of `HEAD_SECONDS` until bytes come out, then the rest at once. Its first bytes then wait for a
        slice's encoding, not the whole chunk's (mp3 at 24 kHz, a one-second clause: first bytes after 1.4 ms
        instead of 7.4 ms; ogg 0.5 instead of 3.0, aac 0.7 instead of 6.2), at the cost of one more piece per
        chunk. Raw formats take the chunk at once (0.3 ms for that clause)."""
        start = 0
        if self._stream is not None:
            step = max(1, int(HEAD_SECONDS * self.in_rate))
            while start < len(samples):
                data = self.write(samples[start : start + step])
                start += step
                if data:
                    yield data
                    break
        if start < len(samples) and (data := self.write(samples[start:])):
            yield data

    def write(self, samples: np.ndarray) -> bytes:
        """Feed one chunk; returns the encoded bytes available now (maybe empty)."""
        if self._stream is None:
            return self._raw(resample(samples, self.in_rate, self.out_rate))
        for packet in self._stream.encode(_frame(samples, self.in_rate)):
            self._container.mux(packet)
        return self._sink.drain()

    def finish(self) -> bytes:
        """Flush the encoder and close the container; returns the remaining bytes."""
        if self._stream is None:
            return b"" if self._started or self.format.name != "wav" else self._raw(np.zeros(0, np.float32))
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.drain()

    def _raw(self, samples: np.ndarray) -> bytes:
        """16-bit PCM, after the WAV header the first time."""
        data = to_int16(samples).tobytes()
        if self.format.name == "wav" and not self._started:
            data = wav_header(self.out_rate) + data
        self._started = True
        return data


def encode(samples: np.ndarray, in_rate: int, fmt: str, out_rate: int | None = None) -> bytes:
    """Encode a whole mono signal (a WAV with its sizes in the header)."""
    encoder = AudioEncoder(fmt, in_rate, out_rate)
    data = encoder.write(samples) + encoder.finish()
    return wav_with_sizes(data) if fmt == "wav" else data
