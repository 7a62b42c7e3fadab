"""Content redaction: what must never be stored in clear, and what must survive."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


_EMAIL_BEFORE_FIX = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


@settings(max_examples=300)
@given(st.text(alphabet="ab1.-_%+@ xZ", max_size=80))
def test_email_redaction_matches_what_it_matched_before_it_was_made_linear(text):
    assert redact(text) == redact(_EMAIL_BEFORE_FIX.sub("[REDACTED_EMAIL]", text))


def test_redaction_of_a_long_attribute_is_linear():
    """Found by bench/fuzz.py: 64 KiB (an attribute's limit) of letters with no "@" took ~8 s to redact, since
    the e-mail pattern rescanned the run from each of its characters; a request of such spans held a worker for
    minutes. Linear, it takes milliseconds: 2 s is a bound no machine misses but the quadratic pattern did."""
    started = time.perf_counter()
    for text in ("x" * 65_536, "a." * 32_768, "1" * 65_536):
        assert redact(text) == text
    assert time.perf_counter() - started < 2.0
