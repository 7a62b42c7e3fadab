"""Label matchers as Alertmanager writes and applies them: `name="value"`, `!=`, `=~` (regex), `!~`.

A regex is anchored at both ends (`=~"chat.*"` matches "chat-bot", not "my-chat"), and a label that is missing
counts as the empty string, so `team!=""` means "has a team" and `team=""` means "has none" — as in Alertmanager.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


class MatcherError(ValueError):
    """A matcher that cannot be used; the message says what is wrong with it."""


class Op(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: Op | str, value: str) -> Matcher:
        if not isinstance(name, str) or not _LABEL_NAME.match(name):
            raise MatcherError(f"label name {name!r} is not valid (letters, digits, _ and ., no leading digit)")
        if not isinstance(value, str):
            raise MatcherError(f"the value of {name} must be a string, got {type(value).__name__}")
        try:
            op = Op(op)
        except ValueError:
            raise MatcherError(f"operator {op!r} is not one of =, !=, =~, !~") from None
        regex = None
        if op in (Op.RE, Op.NRE):
            try:
                regex = re.compile(value)
            except re.error as exc:
                raise MatcherError(f"{name}{op}{value!r}: invalid regular expression: {exc}") from None
        return cls(name, op, value, regex)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """`name="value"`, `name=~"re"`, ...; the quotes are optional, `\\"` escapes a quote inside them."""
        if not isinstance(text, str):
            raise MatcherError(f"a matcher must be a string such as 'severity=\"critical\"', got {text!r}")
        match = _MATCHER.match(text)
        if not match:
            raise MatcherError(f'{text!r} is not a matcher such as severity="critical" or service=~"chat.*"')
        name, op, raw = match.groups()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", raw[1:-1])
        elif '"' in raw:
            raise MatcherError(f"{text!r}: unbalanced quotes in the value")
        else:
            value = raw
        return cls.make(name, op, value)

    @classmethod
    def from_api(cls, raw: Any) -> Matcher:
        """Alertmanager's API v2 form {"name", "value", "isRegex", "isEqual"} or the text form."""
        if isinstance(raw, str):
            return cls.parse(raw)
        if not isinstance(raw, Mapping):
            raise MatcherError('a matcher is {"name": ..., "value": ..., "isRegex": false} or text like a="b"')
        unknown = set(raw) - {"name", "value", "isRegex", "isEqual"}
        if unknown:
            raise MatcherError(f"unknown field(s) {', '.join(sorted(unknown))}")
        for key in ("name", "value"):
            if key not in raw:
                raise MatcherError(f"{key} is missing")
        is_regex, is_equal = raw.get("isRegex", False), raw.get("isEqual", True)
        if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
            raise MatcherError("isRegex and isEqual must be true or false")
        op = {(False, True): Op.EQ, (False, False): Op.NE, (True, True): Op.RE, (True, False): Op.NRE}
        return cls.make(raw["name"], op[(is_regex, is_equal)], raw["value"])

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op is Op.EQ:
            return value == self.value
        if self.op is Op.NE:
            return value != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(value) is not None
        return found if self.op is Op.RE else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    def as_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.op in (Op.RE, Op.NRE),
            "isEqual": self.op in (Op.EQ, Op.RE),
        }


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def matchers_text(matchers: Iterable[Matcher]) -> str:
    """`{a="b", c=~"d"}`, as Alertmanager prints a route's matchers."""
    return "{" + ",".join(str(m) for m in matchers) + "}"


def labels_text(labels: Mapping[str, str]) -> str:
    """`{a="b", c="d"}` sorted by name, as Alertmanager prints a label set (part of a group key)."""
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
