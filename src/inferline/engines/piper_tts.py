"""Piper (VITS on onnxruntime, espeak-ng phonemes) text-to-speech, loaded from a local voice on first use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from inferline.engines.tts import LOCAL_SYNTH_LOCK, VoiceInfo
from inferline.logs import logged_load


class PiperEngine:
    """One Piper voice (`voice.onnx` + `.json`). Loads lazily; synthesis holds `LOCAL_SYNTH_LOCK`.

    VITS samples noise for each phoneme's sound and duration (the voice's `noise_scale` and `noise_w`), so
    the same text sounds slightly different each time; `variation` scales both (0: the same samples every
    time)."""

    def __init__(
        self, model_id: str, voice_file: Path, voice: VoiceInfo | None = None, variation: float = 1.0
    ) -> None:
        self.model_id = model_id
        self.voice_file = voice_file
        self._config = json.loads(Path(f"{voice_file}.json").read_text())
        self.voice = voice or self._voice_from_config()
        self.variation = variation
        self._voice: Any = None

    @property
    def sample_rate(self) -> int:
        return int(self._config["audio"]["sample_rate"])

    def _voice_from_config(self) -> VoiceInfo:
        lang = self._config.get("language", {}).get("code", "en_US").replace("_", "-")
        dataset = self._config.get("dataset") or self.voice_file.stem
        quality = self._config.get("audio", {}).get("quality", "medium")
        return VoiceInfo(
            voice_id=f"{lang.replace('-', '_')}-{dataset}-{quality}", name=dataset, language=lang
        )

    @logged_load("tts", "_voice")
    def _load(self) -> Any:
        if self._voice is None:
            from piper import PiperVoice

            self._voice = PiperVoice.load(self.voice_file)
        return self._voice

    def synthesize(self, text: str, *, speed: float = 1.0, volume: float = 1.0) -> Iterator[np.ndarray]:
        from piper import SynthesisConfig

        with LOCAL_SYNTH_LOCK:
            voice = self._load()
            config = SynthesisConfig(
                length_scale=1.0 / speed,
                volume=volume,
                noise_scale=voice.config.noise_scale * self.variation,
                noise_w_scale=voice.config.noise_w_scale * self.variation,
            )
            for chunk in voice.synthesize(text, syn_config=config):
                yield np.clip(chunk.audio_float_array, -1.0, 1.0).astype(np.float32)
