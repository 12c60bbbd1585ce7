"""Redaction of personal data (privacy/redaction.py) and its use on conversation messages sent
with `redact: true` (inferline extension via the SDK extra_body): the original never reaches the database."""

from __future__ import annotations

import pytest
import telnyx

from inferline.privacy.redaction import luhn_ok, redact
from inferline.stores.conversations_tables import ConversationMessage
from tests.conftest import LiveServer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+vip@mail.example.co.uk now", "mail [EMAIL] now"),
        ("card 4111 1111 1111 1111, thanks", "card [CARD], thanks"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("amex 378282246310005.", "amex [CARD]."),
        ("ssn 123-45-6789 ok", "ssn [SSN] ok"),
        ("ssn 123 45 6789", "ssn [SSN]"),
        ("call (415) 555-0134 today", "call [PHONE] today"),
        ("call +1 415 555 0134", "call [PHONE]"),
        ("call 415.555.0134", "call [PHONE]"),
        ("london +44 20 7946 0958", "london [PHONE]"),
    ],
)
def test_personal_data_is_replaced(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",  # 16 digits, bad checksum, and no phone shape
        "ssn 000-12-3456 has no valid area",
        "order 12345 shipped on 2024-01-02 for $1,200",
        "version 3.10.4 on port 8080",
        "an @ sign alone, or user@localhost",
    ],
)
def test_other_numbers_and_text_are_kept(text: str) -> None:
    assert redact(text).text == text


def test_counts_and_luhn() -> None:
    result = redact("a@b.io, 4242424242424242 and 123-45-6789, a@c.io")
    assert result.counts == {"EMAIL": 2, "CARD": 1, "SSN": 1}
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


def test_message_redaction_keeps_the_original_out_of_the_database(
    server: LiveServer, client: telnyx.Telnyx
) -> None:
    conv = client.ai.conversations.create()
    secret = "My card is 4111 1111 1111 1111 and my email is jane@example.com."
    client.ai.conversations.add_message(conv.id, role="user", content=secret, extra_body={"redact": True})
    client.ai.conversations.add_message(conv.id, role="assistant", content="Noted: jane@example.com")
    texts = [m.text for m in client.ai.conversations.messages.list(conv.id)]
    assert texts == ["My card is [CARD] and my email is [EMAIL].", "Noted: jane@example.com"]  # opt-in only
    with server.container.db.session() as s:
        stored = [t for (t,) in s.query(ConversationMessage.text).filter_by(conversation_id=conv.id)]
    assert "4111" not in stored[0] and "jane@" not in stored[0]
