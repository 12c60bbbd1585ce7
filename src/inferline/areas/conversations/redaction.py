"""Redaction of personal data in transcripts and messages before they are stored, embedded or sent to a model.

Replaced, in this order: e-mail addresses (`[EMAIL]`), payment card numbers of 13 to 19 digits, optionally
grouped by spaces or dashes, that pass the Luhn check (`[CARD]`), US Social Security numbers `ddd-dd-dddd`
or `ddd dd dddd` with a valid area and group (`[SSN]`), and phone numbers: North American `(ddd) ddd-dddd`
forms with an optional `+1`, and international `+<country> …` numbers of 8 to 15 digits (`[PHONE]`).
Numbers spoken as words ("five five five …") are not recognised.
"""

from __future__ import annotations

import re
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


def redact(text: str) -> Redacted:
    """`text` with e-mail addresses, card numbers, SSNs and phone numbers replaced by `[KIND]` markers."""
    counts: dict[str, int] = {}

    def sub(pattern: re.Pattern[str], marker: str, text: str, check: object = None) -> str:
        def replace(m: re.Match[str]) -> str:
            if callable(check) and not check(m.group(0)):
                return m.group(0)
            counts[marker] = counts.get(marker, 0) + 1
            return f"[{marker}]"

        return pattern.sub(replace, text)

    text = sub(_EMAIL, "EMAIL", text)
    text = sub(_CARD, "CARD", text, lambda s: luhn_ok(re.sub(r"\D", "", s)))
    text = sub(_SSN, "SSN", text)
    text = sub(_PHONE_INTL, "PHONE", text)
    text = sub(_PHONE_NA, "PHONE", text)
    return Redacted(text, counts)
