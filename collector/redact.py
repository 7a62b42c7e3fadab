"""Redaction of prompt/completion content before it is stored (only when content capture is enabled)."""

from __future__ import annotations

import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # API keys and bearer tokens: sk-..., sk-ant-..., AKIA..., ghp_..., xox?-..., AIza..., "Bearer <token>"
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,}"), "[REDACTED_API_KEY]"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "[REDACTED_API_KEY]"),
    (re.compile(r"\b(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}"), "[REDACTED_API_KEY]"),
    (re.compile(r"\bxox[abpors]-[A-Za-z0-9\-]{10,}"), "[REDACTED_API_KEY]"),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), "[REDACTED_API_KEY]"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-~+/]{16,}=*"), "Bearer [REDACTED_API_KEY]"),
    # e-mail addresses. The lookbehind starts a match only where a run of local-part characters starts: without
    # it, a long run with no "@" is rescanned from each of its characters (quadratic: 64 KiB of "x" took ~8 s).
    (
        re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"),
        "[REDACTED_EMAIL]",
    ),
    # card numbers: 13-19 digits, optionally grouped by spaces or dashes
    (re.compile(r"\b(?:\d[ \-]?){12,18}\d\b"), "[REDACTED_CARD]"),
    # phone numbers: +country or grouped digits, 7-15 digits in all
    (
        re.compile(r"(?<![\w])\+?\d{1,3}[ .\-]?\(?\d{2,4}\)?[ .\-]?\d{3,4}[ .\-]?\d{3,4}\b"),
        "[REDACTED_PHONE]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
