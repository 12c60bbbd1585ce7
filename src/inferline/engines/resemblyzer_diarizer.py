"""Diarization from Silero voice-activity detection (shipped in faster-whisper), speaker embeddings from the
Resemblyzer voice encoder (a 3-layer LSTM d-vector model whose weights ship in the `resemblyzer` PyPI package)
and agglomerative clustering of those embeddings on cosine distance.

The encoder is rebuilt here from the package's `pretrained.pt` rather than imported through `resemblyzer`,
whose `__init__` imports `webrtcvad` (which needs `pkg_resources`, gone from current setuptools) for a
preprocessing step this pipeline does not use (Silero finds the speech). The mel features are the package's
own: librosa's mel spectrogram, 25 ms windows every 10 ms, 40 bands, on volume-normalised audio.
"""

from __future__ import annotations

import importlib.util
import itertools
import threading
from pathlib import Path
from typing import Any

import numpy as np

from inferline.engines.diarization import MAX_SPEAKERS, SpeakerTurn
from inferline.engines.stt import SAMPLE_RATE
from inferline.logs import logged_load

FRAME_SECONDS = 0.01  # one mel frame
WINDOW_FRAMES = 160  # 1.6 s: the encoder's training length ("partial utterance")
HOP_FRAMES = 40  # a window every 0.4 s
MIN_REGION_FRAMES = 30  # speech shorter than 0.3 s gets no window of its own
DISTANCE_THRESHOLD = 0.3  # cosine distance (average linkage) above which two groups are different speakers
MIN_TURN_SECONDS = 0.5  # shorter speaker flips inside a stretch of speech are smoothed away
TARGET_DBFS = -30.0


def weights_path() -> Path:
    """`pretrained.pt` inside the installed `resemblyzer` package (found without importing it)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("resemblyzer is not installed (pip install 'inferline[diarize]')")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def available() -> bool:
    try:
        return weights_path().is_file()
    except ModuleNotFoundError:
        return False


class ResemblyzerDiarizer:
    """Loads the encoder on first use; calls are serialised (torch uses the threads it is given)."""

    def __init__(self, threads: int = 1, distance_threshold: float = DISTANCE_THRESHOLD) -> None:
        self.threads = threads
        self.distance_threshold = distance_threshold
        self._model: Any = None
        self._lock = threading.Lock()
        self.model_id = "resemblyzer"

    @logged_load("diarization", "_model")
    def _load(self) -> Any:
        if self._model is None:
            import torch

            class Encoder(torch.nn.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
                    self.linear = torch.nn.Linear(256, 256)

                def forward(self, mels: torch.Tensor) -> torch.Tensor:
                    _, (hidden, _) = self.lstm(mels)
                    raw = torch.relu(self.linear(hidden[-1]))
                    return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-9)

            encoder = Encoder()
            state = torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]
            encoder.load_state_dict({k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))})
            encoder.eval()
            self._model = encoder
        return self._model

    def _embed(self, windows: list[np.ndarray]) -> np.ndarray:
        """L2-normalised 256-d embeddings of mel windows (frames x 40), full-length ones batched."""
        import torch

        model = self._load()
        out = np.zeros((len(windows), 256), dtype=np.float32)
        full = [i for i, w in enumerate(windows) if len(w) == WINDOW_FRAMES]
        with torch.inference_mode():
            torch.set_num_threads(self.threads)
            for start in range(0, len(full), 64):
                batch = full[start : start + 64]
                out[batch] = model(torch.from_numpy(np.stack([windows[i] for i in batch]))).numpy()
            for i, w in enumerate(windows):
                if len(w) != WINDOW_FRAMES:
                    out[i] = model(torch.from_numpy(w[None]))[0].numpy()
        return out

    def diarize(
        self, samples: np.ndarray, *, min_speakers: int | None = None, max_speakers: int | None = None
    ) -> list[SpeakerTurn]:
        lo, hi = min_speakers or 1, max_speakers or MAX_SPEAKERS
        regions = _speech_regions(samples)
        if not regions:
            return []
        mel = _mel(samples)
        windows: list[tuple[int, int]] = []  # (first frame, last frame + 1)
        for start, end in regions:
            if end - start < MIN_REGION_FRAMES:
                continue
            if end - start <= WINDOW_FRAMES:
                windows.append((start, end))
                continue
            starts = list(range(start, end - WINDOW_FRAMES + 1, HOP_FRAMES))
            if starts[-1] + WINDOW_FRAMES < end:
                starts.append(end - WINDOW_FRAMES)
            windows += [(s, s + WINDOW_FRAMES) for s in starts]
        if not windows:
            return []
        with self._lock:
            embeddings = self._embed([mel[a:b] for a, b in windows])
        labels = _cluster(embeddings, self.distance_threshold, lo, hi)
        centroids = np.stack([_unit(embeddings[labels == k].mean(axis=0)) for k in range(labels.max() + 1)])
        # Each frame sums the centroid similarities of the windows covering it; the best centroid wins.
        scores = np.zeros((len(mel), len(centroids)), dtype=np.float32)
        for (a, b), e in zip(windows, embeddings, strict=True):
            scores[a:b] += e @ centroids.T
        return _turns(regions, scores)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _speech_regions(samples: np.ndarray) -> list[tuple[int, int]]:
    """Silero speech stretches as mel-frame ranges; pauses of 0.25 s or more split them."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=250, speech_pad_ms=60, min_speech_duration_ms=100)
    hop = int(SAMPLE_RATE * FRAME_SECONDS)
    return [(r["start"] // hop, r["end"] // hop) for r in get_speech_timestamps(samples, options)]


def _mel(samples: np.ndarray) -> np.ndarray:
    """Resemblyzer's features: (frames x 40) mel power spectrogram of volume-normalised audio."""
    import librosa

    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) or 1e-9
    gain = 10 ** ((TARGET_DBFS - 20 * np.log10(rms)) / 20)
    wav = samples * gain if gain > 1 else samples  # louder only, as the encoder was trained
    frames = librosa.feature.melspectrogram(
        y=wav.astype(np.float32), sr=SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=40
    )
    return frames.astype(np.float32).T


def _cluster(embeddings: np.ndarray, threshold: float, lo: int, hi: int) -> np.ndarray:
    """Agglomerative (average linkage) labels 0..k-1 with lo <= k <= hi where the windows allow it;
    groups of under 5% of the windows are outliers (windows across a change of speaker) and join their
    nearest group unless that would leave fewer than `lo`."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(embeddings)
    if n == 1:
        return np.zeros(1, dtype=int)
    tree = linkage(embeddings, method="average", metric="cosine")
    labels = fcluster(tree, t=threshold, criterion="distance") - 1
    k = int(labels.max()) + 1
    if not lo <= k <= hi:
        labels = fcluster(tree, t=min(max(k, lo), hi, n), criterion="maxclust") - 1
    counts = np.bincount(labels)
    big = [c for c in range(len(counts)) if counts[c] >= max(2, 0.05 * n)]
    if len(big) >= lo and len(big) < len(counts):
        centroids = np.stack([_unit(embeddings[labels == c].mean(axis=0)) for c in big])
        nearest = np.asarray(big)[np.argmax(embeddings @ centroids.T, axis=1)]
        labels = np.where(np.isin(labels, big), labels, nearest)
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _turns(regions: list[tuple[int, int]], scores: np.ndarray) -> list[SpeakerTurn]:
    """Per-frame winners inside each speech region, short flips smoothed, speakers renumbered in order
    of first appearance; confidence is the softmax margin of the winning centroid."""
    runs: list[tuple[int, int, int, float]] = []  # (start frame, end frame, cluster, confidence)
    min_frames = int(MIN_TURN_SECONDS / FRAME_SECONDS)
    for start, end in regions:
        block = scores[start:end]
        covered = block.any(axis=1)
        if not covered.any():
            continue
        winners = block.argmax(axis=1)
        winners[~covered] = winners[covered][0]
        region_runs = _runs(winners)
        # Merge runs shorter than MIN_TURN_SECONDS into the longer neighbour.
        while len(region_runs) > 1 and min(b - a for a, b, _ in region_runs) < min_frames:
            i = min(range(len(region_runs)), key=lambda j: region_runs[j][1] - region_runs[j][0])
            a, b, _ = region_runs[i]
            left = region_runs[i - 1] if i > 0 else None
            right = region_runs[i + 1] if i + 1 < len(region_runs) else None
            into = (
                left
                if right is None or (left is not None and left[1] - left[0] >= right[1] - right[0])
                else right
            )
            assert into is not None
            winners[a:b] = into[2]
            region_runs = _runs(winners)
        for a, b, k in region_runs:
            mean = block[a:b][covered[a:b]].mean(axis=0)
            probs = np.exp((mean - mean.max()) / max(float(np.abs(mean).max()), 1e-9) * 20)
            runs.append((start + a, start + b, k, float(probs[k] / probs.sum())))
    order: dict[int, int] = {}
    turns = []
    for a, b, k, confidence in runs:
        speaker = order.setdefault(k, len(order))
        turns.append(
            SpeakerTurn(
                round(a * FRAME_SECONDS, 3), round(b * FRAME_SECONDS, 3), speaker, round(confidence, 3)
            )
        )
    return turns


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, label) of each run of equal labels."""
    edges = [0, *(np.flatnonzero(np.diff(labels)) + 1).tolist(), len(labels)]
    return [(a, b, int(labels[a])) for a, b in itertools.pairwise(edges)]
