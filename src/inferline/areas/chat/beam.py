"""Beam search over an engine's next-token log probabilities.

`step(prefix)` returns the most likely next tokens after the assistant text `prefix` as (text, logprob);
an empty token text is the end of the turn. Each beam is scored by its summed logprob divided by
`len ** length_penalty`, as in Hugging Face's `generate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Step = Callable[[str], list[tuple[str, float]]]


@dataclass(frozen=True)
class Beam:
    text: str
    logprob: float
    tokens: int
    finish_reason: str = "length"

    def score(self, length_penalty: float) -> float:
        return self.logprob / (max(self.tokens, 1) ** length_penalty)


def beam_search(
    step: Step,
    *,
    width: int,
    max_tokens: int,
    length_penalty: float = 1.0,
    early_stopping: bool = False,
    cancelled: Callable[[], bool] = lambda: False,
) -> list[Beam]:
    """The finished beams, best first (at least `width` when the engine offers enough candidates)."""
    alive = [Beam("", 0.0, 0)]
    finished: list[Beam] = []
    for _ in range(max_tokens):
        if cancelled():
            break
        candidates: list[Beam] = []
        for beam in alive:
            for token, logprob in step(beam.text):
                grown = Beam(beam.text + token, beam.logprob + logprob, beam.tokens + 1)
                if token == "":
                    finished.append(Beam(beam.text, grown.logprob, beam.tokens + 1, "stop"))
                else:
                    candidates.append(grown)
        candidates.sort(key=lambda b: b.logprob, reverse=True)
        alive = candidates[:width]
        if not alive or _done(finished, alive, width, length_penalty, early_stopping):
            break
    finished.extend(alive)  # beams that ran out of tokens finish with `length`
    finished.sort(key=lambda b: b.score(length_penalty), reverse=True)
    return finished


def _done(finished: list[Beam], alive: list[Beam], width: int, length_penalty: float, early: bool) -> bool:
    if len(finished) < width:
        return False
    if early:
        return True
    # Heuristic: stop once no live beam, even at its current length, can beat the worst kept finished one.
    worst = sorted((b.score(length_penalty) for b in finished), reverse=True)[width - 1]
    return max(b.score(length_penalty) for b in alive) <= worst
