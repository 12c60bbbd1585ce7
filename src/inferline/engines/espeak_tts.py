"""eSpeak NG formant text-to-speech: light, robotic, ~100 languages. The fallback beside Piper.

It runs the eSpeak NG that Piper already ships (its `espeakbridge` extension embeds the whole library and
data), through ctypes: no extra package. eSpeak has one global state per process, shared with Piper's
phonemiser, so every use holds `LOCAL_SYNTH_LOCK` and re-initialises (≈0.2 ms) before synthesising.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import numpy as np

from inferline.engines.tts import LOCAL_SYNTH_LOCK, VoiceInfo

MODEL_ID = "espeak-ng"
AUDIO_OUTPUT_SYNCHRONOUS, POS_CHARACTER, CHARS_UTF8, RATE = 2, 1, 1, 1
DEFAULT_WPM = 175
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+")


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # priority byte + language, repeated, 0-terminated
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Runtime:
    """The eSpeak library inside Piper's extension module, with the sample sink for its callback."""

    def __init__(self) -> None:
        from pathlib import Path

        import piper
        from piper import espeakbridge

        self.data_dir = str(Path(piper.__file__).parent / "espeak-ng-data").encode()
        lib = ctypes.CDLL(espeakbridge.__file__)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        self.lib = lib
        self.sink: list[np.ndarray] = []
        self._callback = _Callback(self._collect)  # kept referenced for the library's lifetime
        self.sample_rate = self.initialise()

    def _collect(self, wav: Any, count: int, _events: Any) -> int:
        if count > 0 and wav:
            self.sink.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def initialise(self) -> int:
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_dir, 0)
        if rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise")
        self.lib.espeak_SetSynthCallback(self._callback)
        return int(rate)

    def voices(self) -> list[VoiceInfo]:
        with LOCAL_SYNTH_LOCK:
            self.initialise()
            listed = self.lib.espeak_ListVoices(None)
            out, i = [], 0
            while listed[i]:
                v = listed[i].contents
                language = ctypes.string_at(v.languages + 1).decode()
                if not v.identifier.decode().startswith("mb/"):  # MBROLA voices need data not shipped
                    gender = {1: "male", 2: "female"}.get(v.gender)
                    out.append(VoiceInfo(language, v.name.decode(), _tag(language), gender, model="eSpeak"))
                i += 1
            return out

    def speak(self, language: str, text: str, speed: float, volume: float) -> np.ndarray:
        """One utterance as float32 (caller holds the lock)."""
        self.initialise()
        if self.lib.espeak_SetVoiceByName(language.encode()) != 0:
            raise RuntimeError(f"eSpeak NG has no voice {language!r}")
        self.lib.espeak_SetParameter(RATE, int(DEFAULT_WPM * speed), 0)
        self.sink = []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        samples = np.concatenate(self.sink) if self.sink else np.zeros(0, np.int16)
        return np.clip(samples.astype(np.float32) / 32768.0 * volume, -1.0, 1.0)


def _tag(language: str) -> str:
    """`en-us` → `en-US` (BCP 47 case)."""
    first, *rest = language.split("-")
    return "-".join([first, *(p.upper() if len(p) == 2 else p for p in rest)])


@cache
def runtime() -> _Runtime:
    return _Runtime()


class EspeakEngine:
    """One eSpeak NG language voice. The shared runtime loads on first use."""

    model_id = MODEL_ID

    def __init__(self, voice: VoiceInfo) -> None:
        self.voice = voice

    @property
    def sample_rate(self) -> int:
        return runtime().sample_rate

    def synthesize(self, text: str, *, speed: float = 1.0, volume: float = 1.0) -> Iterator[np.ndarray]:
        for sentence in _SENTENCE.split(text.strip()):
            if sentence.strip():
                with LOCAL_SYNTH_LOCK:
                    samples = runtime().speak(self.voice.voice_id, sentence, speed, volume)
                yield samples


def espeak_voices() -> list[EspeakEngine]:
    """An engine per eSpeak NG language voice (this loads the small runtime, not a model)."""
    return [EspeakEngine(v) for v in runtime().voices()]
