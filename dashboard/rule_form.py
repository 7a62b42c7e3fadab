"""The rule editor's fields <-> a rule as data (the body of POST/PUT /api/v1/alerts/rules and of the preview).

The server checks every field and names the one that is wrong (400 {"error", "field"}); this module only turns
what was typed into that body, so there is one set of rules about rules. What cannot even be put into the body (a
filter line without `=`) is a `FormError` naming the field, shown the same way. A threshold that is not a number
is sent as typed, so the server's message names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPS = (">", ">=", "<", "<=")
NO_DATA = ("nodata", "ok", "alerting", "keep_last")
RELATIVE = ("", "previous_window", "week_ago")
PREVIEW_RANGES = ("1d", "3d", "7d", "14d", "31d")

# Widget values of a new rule (the server's defaults where it has one).
NEW_RULE: dict[str, Any] = {
    "name": "",
    "metric": "error_rate",
    "filters": "",
    "group_by": [],
    "window": "5m",
    "op": ">",
    "warning": "",
    "critical": "",
    "relative_to": "",
    "min_calls": 0,
    "for": "0s",
    "keep_firing_for": "0s",
    "no_data": "nodata",
    "interval": "1m",
    "labels": "",
    "summary": "",
    "description": "",
}
FIELDS = tuple(NEW_RULE)


class FormError(ValueError):
    """What was typed cannot be made into a rule body; `field` is the rule field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _number_text(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _pairs_text(mapping: Mapping[str, Any]) -> str:
    lines = []
    for name, values in mapping.items():
        for value in values if isinstance(values, list) else [values]:
            lines.append(f"{name}={value}")
    return "\n".join(lines)


def form_values(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The editor's widget values for a rule as the API lists it (`spec`)."""
    out = dict(NEW_RULE)
    out |= {
        "name": spec.get("name", ""),
        "metric": spec.get("metric", NEW_RULE["metric"]),
        "filters": _pairs_text(spec.get("filters") or {}),
        "group_by": list(spec.get("group_by") or []),
        "window": spec.get("window", NEW_RULE["window"]),
        "op": spec.get("op", ">"),
        "warning": _number_text(spec.get("warning")),
        "critical": _number_text(spec.get("critical")),
        "relative_to": spec.get("relative_to") or "",
        "min_calls": int(spec.get("min_calls") or 0),
        "for": spec.get("for", "0s"),
        "keep_firing_for": spec.get("keep_firing_for", "0s"),
        "no_data": spec.get("no_data", "nodata"),
        "interval": spec.get("interval", "1m"),
        "labels": _pairs_text(spec.get("labels") or {}),
        "summary": spec.get("summary", ""),
        "description": spec.get("description", ""),
    }
    return out


def _pairs(text: str, field: str, *, repeat: bool) -> dict[str, Any]:
    """`name=value` lines; with `repeat`, a name given twice collects its values in a list ("any of")."""
    out: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise FormError(field, f"line {number} ({line!r}) is not name=value")
        if name in out:
            if not repeat:
                raise FormError(f"{field}.{name}", f"given twice (line {number})")
            previous = out[name]
            out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[name] = value
    return out


def _threshold(text: str) -> float | str | None:
    """A number when it reads as one; otherwise the text itself, for the server to name."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def spec_from_form(values: Mapping[str, Any]) -> dict[str, Any]:
    """The rule body for what the editor holds; empty optional fields are left to the server's defaults."""
    spec: dict[str, Any] = {
        "name": str(values.get("name") or "").strip(),
        "metric": values.get("metric"),
        "window": str(values.get("window") or "").strip(),
        "op": values.get("op"),
    }
    filters = _pairs(str(values.get("filters") or ""), "filters", repeat=True)
    if filters:
        spec["filters"] = filters
    if values.get("group_by"):
        spec["group_by"] = list(values["group_by"])
    for severity in ("warning", "critical"):
        threshold = _threshold(str(values.get(severity) or ""))
        if threshold is not None:
            spec[severity] = threshold
    if values.get("relative_to"):
        spec["relative_to"] = values["relative_to"]
    spec["min_calls"] = int(values.get("min_calls") or 0)
    for duration in ("for", "keep_firing_for", "interval"):
        text = str(values.get(duration) or "").strip()
        if text:
            spec[duration] = text
    spec["no_data"] = values.get("no_data") or "nodata"
    labels = _pairs(str(values.get("labels") or ""), "labels", repeat=False)
    if labels:
        spec["labels"] = labels
    for text_field in ("summary", "description"):
        text = str(values.get(text_field) or "")
        if text.strip():
            spec[text_field] = text
    return spec
