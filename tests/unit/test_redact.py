"""Content redaction: what must never be stored in clear, and what must survive."""

from __future__ import annotations

import pytest

from collector.redact import redact


@pytest.mark.parametrize(
    ("text", "secret", "marker"),
    [
        ("write to jane.doe+x@example.co.uk please", "jane.doe+x@example.co.uk", "[REDACTED_EMAIL]"),
        ("call me on +1 415-555-0132 tonight", "415-555-0132", "[REDACTED_PHONE]"),
        ("card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111", "[REDACTED_CARD]"),
        ("card 4111-1111-1111-1111", "4111-1111-1111-1111", "[REDACTED_CARD]"),
        ("key sk-proj-abcdEFGH1234ijklMNOP5678", "sk-proj-abcdEFGH1234ijklMNOP5678", "[REDACTED_API_KEY]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "[REDACTED_API_KEY]"),
        (
            "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
            "abcdefghijklmnopqrstuvwxyz012345",
            "[REDACTED_API_KEY]",
        ),
    ],
)
def test_secrets_are_redacted(text, secret, marker):
    out = redact(text)
    assert secret not in out
    assert marker in out


def test_ordinary_text_survives():
    text = "In 2024 we shipped 3 releases; version 1.2.3 fixed bug #4512 at 10:30."
    assert redact(text) == text
