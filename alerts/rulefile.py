"""Rules as code: the YAML rules file, checked field by field with the line of each problem.

    rules:
      - name: HighErrorRate
        metric: error_rate
        window: 5m
        op: ">"
        critical: 0.1

Every rule is checked (not just the first bad one) and each problem says file, line, rule and field, as
`promtool check rules` does. A file with any problem is rejected whole: the server keeps the rules it had.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alerts.rules import Origin, Rule, RuleError, parse_rule


class _Located(dict):
    """A YAML mapping that remembers the line of each key (1-based) and its own first line."""

    line: int = 0
    lines: dict[Any, int]


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"the key {key!r} appears twice in one mapping")
        self.line = line


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode):  # type: ignore[no-untyped-def]
    data = _Located()
    data.line = node.start_mark.line + 1
    data.lines = {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        if key in data:
            raise _DuplicateKey(key, key_node.start_mark.line + 1)
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = key_node.start_mark.line + 1


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    rule: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.rule:
            parts.append(f"rule {self.rule!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ": ".join(parts) + f": {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "rule": self.rule, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class RulesFile:
    path: str
    rules: tuple[Rule, ...] = ()
    problems: tuple[Problem, ...] = ()
    content: str = ""
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def _line_of(node: Any, field_path: str | None) -> int | None:
    """The line of a (dotted) field inside a rule mapping, else the rule's own line."""
    line = getattr(node, "line", None)
    if not field_path or not isinstance(node, _Located):
        return line
    current: Any = node
    for part in field_path.split("."):
        if isinstance(current, _Located) and part in current.lines:
            line = current.lines[part]
            current = current[part]
        else:
            break
    return line


def parse_text(text: str, path: str, taken_names: Sequence[str] = ()) -> RulesFile:
    """Every rule of a rules file, or every problem of it. `taken_names`: names already used (API rules)."""
    digest = hashlib.sha256(text.encode()).hexdigest()

    def failed(*problems: Problem) -> RulesFile:
        return RulesFile(path, (), tuple(problems), text, digest)

    try:
        doc = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except _DuplicateKey as exc:
        return failed(Problem(path, exc.line, None, None, str(exc)))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return failed(Problem(path, mark.line + 1 if mark else None, None, None, f"invalid YAML: {message}"))
    except yaml.YAMLError as exc:
        return failed(Problem(path, None, None, None, f"invalid YAML: {exc}"))
    if doc is None:
        return RulesFile(path, (), (), text, digest)  # an empty file: no rules
    if not isinstance(doc, Mapping) or set(doc) - {"rules"}:
        extra = sorted(str(k) for k in doc) if isinstance(doc, Mapping) else []
        message = "the file must be a mapping with one key, rules: a list of rules"
        if extra:
            message += f" (found {', '.join(extra)})"
        return failed(Problem(path, getattr(doc, "line", 1), None, None, message))
    items = doc.get("rules") or []
    if not isinstance(items, list):
        return failed(Problem(path, doc.lines.get("rules"), None, "rules", "must be a list of rules"))
    rules: list[Rule] = []
    problems: list[Problem] = []
    names: dict[str, int | None] = {}
    for i, item in enumerate(items):
        line = getattr(item, "line", None)
        try:
            rule = parse_rule(item, Origin("file", path, line))
        except RuleError as exc:
            problems.append(Problem(path, _line_of(item, exc.field), exc.rule or f"#{i + 1}", exc.field, exc.message))
            continue
        if rule.name in names:
            message = f"another rule of this file (line {names[rule.name]}) is named {rule.name!r}"
            problems.append(Problem(path, _line_of(item, "name"), rule.name, "name", message))
        elif rule.name in taken_names:
            message = f"{rule.name!r} is already the name of a rule created through the API"
            problems.append(Problem(path, _line_of(item, "name"), rule.name, "name", message))
        names[rule.name] = line
        rules.append(rule)
    if problems:
        return failed(*problems)
    return RulesFile(path, tuple(rules), (), text, digest)


def load_file(path: Path, taken_names: Sequence[str] = ()) -> RulesFile:
    """The rules file at `path`; a missing file has no rules (and no problem)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return RulesFile(str(path))
    except (OSError, UnicodeDecodeError) as exc:
        return RulesFile(str(path), (), (Problem(str(path), None, None, None, f"cannot read: {exc}"),))
    return parse_text(text, str(path), taken_names)
