"""Redaction of personal data in transcripts and messages before they are stored, embedded or sent to a model.

Replaced, in this order: e-mail addresses (`[EMAIL]`), payment card numbers of 13 to 19 digits, optionally
grouped by spaces or dashes, that pass the Luhn check (`[CARD]`), US Social Security numbers `ddd-dd-dddd`
or `ddd dd dddd` with a valid area and group (`[SSN]`), and phone numbers: North American `(ddd) ddd-dddd`
forms with an optional `+1`, and international `+<country> …` numbers of 8 to 15 digits (`[PHONE]`).
Numbers spoken as words ("five five five …") are not recognised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)(\d{3})([- ])(?!00)(\d{2})\2(?!0000)(\d{4})(?![\d-])")
_PHONE_NA = re.compile(r"(?<![\d+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}(?!\d)")
_PHONE_INTL = re.compile(r"(?<![\d+])\+\d(?:[\s.()-]?\d){7,14}(?!\d)")


@dataclass
class Redacted:
    """The redacted text and how many of each kind were replaced."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(text: str) -> bool:
    return luhn_ok(re.sub(r"\D", "", text))


# In this order; each later pattern sees the earlier ones' matches blanked out.
_RULES: tuple[tuple[re.Pattern[str], str, Callable[[str], bool] | None], ...] = (
    (_EMAIL, "EMAIL", None),
    (_CARD, "CARD", _card),
    (_SSN, "SSN", None),
    (_PHONE_INTL, "PHONE", None),
    (_PHONE_NA, "PHONE", None),
)


def spans(text: str) -> list[tuple[int, int, str]]:
    """Where `redact` replaces: (start, end, kind) in `text`, in text order."""
    found: list[tuple[int, int, str]] = []
    for pattern, marker, check in _RULES:
        hits = [m for m in pattern.finditer(text) if check is None or check(m.group(0))]
        for m in hits:
            found.append((m.start(), m.end(), marker))
            text = text[: m.start()] + "\0" * (m.end() - m.start()) + text[m.end() :]
    return sorted(found)


def redact(text: str) -> Redacted:
    """`text` with e-mail addresses, card numbers, SSNs and phone numbers replaced by `[KIND]` markers."""
    counts: dict[str, int] = {}
    out, at = [], 0
    for start, end, marker in spans(text):
        counts[marker] = counts.get(marker, 0) + 1
        out += [text[at:start], f"[{marker}]"]
        at = end
    out.append(text[at:])
    return Redacted("".join(out), counts)


def redact_words(words: list[str]) -> list[tuple[str, int, int]]:
    """Redaction of a text split into consecutive words (Whisper's, each with its leading space): the
    words kept as (text, first, last) index ranges into `words`; the words of one personal-data match
    become one `[KIND]` word spanning them, with what the first word has before the match and the last
    one after it (unless that holds another match, then dropped)."""
    joined = "".join(words)
    bounds, at = [], 0
    for w in words:
        bounds.append((at, at + len(w)))
        at += len(w)
    out: list[tuple[str, int, int]] = []
    found = spans(joined)
    i = 0
    while i < len(words):
        a, b = bounds[i]
        hit = next((sp for sp in found if sp[0] < b and sp[1] > a), None)
        if hit is None:
            out.append((words[i], i, i))
            i += 1
            continue
        last = i
        while last + 1 < len(words) and bounds[last + 1][0] < hit[1]:
            last += 1
        lead = joined[a : max(a, hit[0])]  # the word's text before the match (its space, a bracket)
        end = bounds[last][1]
        tail = joined[hit[1] : end] if not any(sp[0] < end and sp[1] > hit[1] for sp in found) else ""
        out.append((f"{lead}[{hit[2]}]{tail}", i, last))
        i = last + 1
    return out
