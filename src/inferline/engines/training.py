"""The fine-tuning engine contract: train a LoRA adapter for a GGUF base model on chat conversations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

Message = dict[str, str]
Conversation = Sequence[Message]


@dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters of one LoRA run. Only `n_epochs` comes from the API; the rest are engine defaults."""

    n_epochs: int = 3
    learning_rate: float = 2e-3
    rank: int = 8
    alpha: float = 16.0
    batch_size: int = 4
    max_seq_tokens: int = 512
    seed: int = 0


@dataclass(frozen=True)
class TrainingProgress:
    """Reported after every optimizer step."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    trained_tokens: int


@dataclass(frozen=True)
class TrainingResult:
    adapter_path: Path
    steps: int
    trained_tokens: int
    final_loss: float


class TrainingDataError(ValueError):
    """The conversations cannot be trained on (e.g. no assistant token survives truncation)."""


class Trainer(Protocol):
    """Trains a LoRA adapter on `conversations` and writes it as a llama.cpp GGUF adapter to `out_path`.

    `checkpoint()` is called before every step and may raise to abort (cancellation); `progress` is called
    after every step.
    """

    def train(
        self,
        base_gguf: Path,
        conversations: Sequence[Conversation],
        config: TrainingConfig,
        out_path: Path,
        *,
        checkpoint: Callable[[], None],
        progress: Callable[[TrainingProgress], None],
    ) -> TrainingResult: ...
