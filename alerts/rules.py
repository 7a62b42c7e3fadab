"""An alert rule: which statistic, over which calls and window, compared with what, and how it behaves in time.

A rule is data (YAML in the alerts file, or JSON through the API) parsed by `parse_rule`, which checks every field
and raises `RuleError` naming the field. The statistic is one of analytics/metrics.py's (the read API's own
definitions); filters and group-by are the read API's dimensions, parsed by analytics' own parsers.

    name: HighErrorRate             # the alertname label; unique
    metric: error_rate              # any metric of GET /api/v1/meta
    filters: {service: support-bot, model: [gpt-4.1, gpt-4o], meta.team: search, q: timeout}
    group_by: [model]               # one alert instance per model (and severity)
    window: 5m                      # 1m .. 31d
    op: ">"                         # >, >=, <, <= (quoted in YAML), or gt, ge, lt, le
    warning: 0.05                   # at least one of warning / critical
    critical: 0.10
    relative_to: previous_window    # optional: thresholds are then % change vs previous_window or week_ago
    min_calls: 20                   # fewer calls in the window never breach
    for: 2m                         # pending this long before firing
    keep_firing_for: 5m             # still firing this long after the condition cleared
    no_data: nodata                 # ok | alerting | keep_last | nodata
    interval: 1m                    # evaluation interval, 10s .. 1d
    labels: {team: search}
    summary: "{{alertname}}: {{value}} > {{threshold}}"
    description: "..."
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from analytics.dimensions import resolve
from analytics.errors import QueryError
from analytics.metrics import BUDGET_METRICS, METRICS
from analytics.query import Filters, parse_group_by

MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=31)
MIN_INTERVAL = timedelta(seconds=10)
MAX_INTERVAL = timedelta(days=1)
WEEK = timedelta(days=7)
RESERVED_LABELS = frozenset({"alertname", "severity"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TEMPLATE_VAR = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*}}")
TEMPLATE_VARS = frozenset(
    {
        "alertname",
        "severity",
        "metric",
        "unit",
        "value",
        "threshold",
        "op",
        "window",
        "calls",
        "group",
        "baseline",
        "compare",
        "from",
        "to",
        "dashboard_url",
    }
)
DEFAULT_SUMMARY = "{{alertname}} ({{severity}}): {{metric}} {{value}} {{op}} {{threshold}} over {{window}}, {{group}}"
DEFAULT_DESCRIPTION = (
    "{{metric}} of {{group}} over the {{window}} to {{to}} is {{value}}{{compare}} ({{calls}} calls), {{op}} the"
    " {{severity}} threshold {{threshold}}. Dashboard: {{dashboard_url}}"
)


class RuleError(ValueError):
    """A rule field is invalid. `field` is its dotted path (e.g. "filters.service"), `rule` the rule's name."""

    def __init__(self, field: str, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.rule = rule

    def __str__(self) -> str:
        where = f"rule {self.rule!r}: " if self.rule else ""
        return f"{where}field {self.field!r}: {self.message}"


class Op(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="

    def holds(self, value: float, threshold: float) -> bool:
        if self is Op.GT:
            return value > threshold
        if self is Op.GE:
            return value >= threshold
        if self is Op.LT:
            return value < threshold
        return value <= threshold

    @property
    def upward(self) -> bool:
        return self in (Op.GT, Op.GE)


# `>` opens a folded block in YAML unless quoted; the words need no quotes.
_OP_WORDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "above": ">", "below": "<"}


class NoData(StrEnum):
    """What an instance does when its value is missing (Grafana's no-data handling)."""

    OK = "ok"  # as if the condition were false: a firing alert resolves (after keep_firing_for)
    ALERTING = "alerting"  # as if the most severe threshold were breached (pending first, per `for`)
    KEEP_LAST = "keep_last"  # the state is left exactly as it is; no timer advances
    NODATA = "nodata"  # its own state, NODATA: shown, not notified; a firing alert resolves


class Relative(StrEnum):
    PREVIOUS_WINDOW = "previous_window"  # the window of the same length just before
    WEEK_AGO = "week_ago"  # the same window one week earlier

    def offset(self, window: timedelta) -> timedelta:
        return window if self is Relative.PREVIOUS_WINDOW else WEEK


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Origin:
    """Where a rule comes from: a rules file (read-only through the API) or the API (stored in the store)."""

    kind: str  # "file" | "api"
    file: str | None = None
    line: int | None = None

    @property
    def read_only(self) -> bool:
        return self.kind == "file"


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    filters: Filters
    filter_spec: Mapping[str, tuple[str, ...]]  # as written, normalised: dimension -> values ("q" for search)
    group_by: tuple[str, ...]
    window: timedelta
    op: Op
    thresholds: Mapping[Severity, float]  # at least one; critical first when both
    relative_to: Relative | None
    min_calls: int
    for_: timedelta
    keep_firing_for: timedelta
    no_data: NoData
    interval: timedelta
    labels: Mapping[str, str]
    summary: str
    description: str
    origin: Origin = field(default_factory=lambda: Origin("api"), compare=False)

    @property
    def id(self) -> str:
        return self.name

    @property
    def unit(self) -> str:
        return "%" if self.relative_to else (METRICS.get(self.metric) or BUDGET_METRICS[self.metric]).unit

    @property
    def top_severity(self) -> Severity:
        return Severity.CRITICAL if Severity.CRITICAL in self.thresholds else Severity.WARNING

    def spec(self) -> dict[str, Any]:
        """The rule as data (the API's and the store's form); parse_rule(rule.spec()) gives the same rule."""
        out: dict[str, Any] = {"name": self.name, "metric": self.metric}
        if self.filter_spec:
            out["filters"] = {k: list(v) if len(v) != 1 else v[0] for k, v in self.filter_spec.items()}
        if self.group_by:
            out["group_by"] = list(self.group_by)
        out["window"] = format_duration(self.window)
        out["op"] = self.op.value
        for severity in (Severity.WARNING, Severity.CRITICAL):
            if severity in self.thresholds:
                out[severity.value] = self.thresholds[severity]
        if self.relative_to:
            out["relative_to"] = self.relative_to.value
        out |= {
            "min_calls": self.min_calls,
            "for": format_duration(self.for_),
            "keep_firing_for": format_duration(self.keep_firing_for),
            "no_data": self.no_data.value,
            "interval": format_duration(self.interval),
            "labels": dict(self.labels),
            "summary": self.summary,
            "description": self.description,
        }
        return out


FIELDS = (
    "name",
    "metric",
    "filters",
    "group_by",
    "window",
    "op",
    "warning",
    "critical",
    "relative_to",
    "min_calls",
    "for",
    "keep_firing_for",
    "no_data",
    "interval",
    "labels",
    "summary",
    "description",
)


def parse_duration(raw: Any, field: str, *, allow_zero: bool = False) -> timedelta:
    """A Prometheus duration: 30s, 5m, 1h30m, 7d, 2w (units in that order); "0" when `allow_zero`."""
    text = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else None
    if text in ("0", "0s") and allow_zero:
        return timedelta(0)
    match = _DURATION.match(text or "")
    if text is None or not text or not match or not any(match.groups()):
        raise RuleError(field, f"{raw!r} is not a duration such as 30s, 5m, 1h30m, 7d")
    w, d, h, m, s = (int(g or 0) for g in match.groups())
    value = timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s)
    if not value and not allow_zero:
        raise RuleError(field, "must be longer than 0")
    return value


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out


def _text(raw: Any, field: str, *, max_len: int = 4096) -> str:
    if not isinstance(raw, str):
        raise RuleError(field, f"must be text, got {type(raw).__name__}")
    if len(raw) > max_len:
        raise RuleError(field, f"is longer than {max_len} characters")
    return raw


def _scalar_text(raw: Any, field: str) -> str:
    """A label or filter value: text, a number or a boolean (YAML turns `429` and `true` into those)."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if raw is None:
        return "null"
    if isinstance(raw, int | float | str):
        return str(raw)
    raise RuleError(field, f"must be a single value, got {type(raw).__name__}")


def _number(raw: Any, field: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise RuleError(field, f"must be a number, got {raw!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise RuleError(field, "must be a finite number")
    return value


def _choice(raw: Any, field: str, enum: type[StrEnum]) -> Any:
    try:
        return enum(raw)
    except ValueError:
        choices = ", ".join(e.value for e in enum)  # type: ignore[attr-defined]
        raise RuleError(field, f"{raw!r} is not one of {choices}") from None


def _budget_scope(raw: Mapping[str, Any]) -> tuple[Filters, dict[str, tuple[str, ...]], tuple[str, ...]]:
    """A budget metric is one value per budget: the rule groups by budget; its only filter is budget names."""
    filters_raw = raw.get("filters") or {}
    if not isinstance(filters_raw, Mapping) or set(filters_raw) - {"budget"}:
        raise RuleError("filters", "a budget metric takes only {budget: name or [names]} as filters")
    spec = {}
    if "budget" in filters_raw:
        values = filters_raw["budget"]
        items = values if isinstance(values, list | tuple) else [values]
        spec["budget"] = tuple(_scalar_text(v, "filters.budget") for v in items)
    if raw.get("group_by") not in (None, [], "budget", ["budget"]):
        raise RuleError("group_by", "a budget metric is grouped by budget (one alert per budget)")
    if raw.get("relative_to"):
        raise RuleError("relative_to", "a budget metric compares with its budget already: no relative_to")
    if raw.get("min_calls"):
        raise RuleError("min_calls", "a budget metric has no calls to count: no min_calls")
    return Filters(), spec, ("budget",)


def _filters(raw: Any) -> tuple[Filters, dict[str, tuple[str, ...]]]:
    if raw is None:
        return Filters(), {}
    if not isinstance(raw, Mapping):
        raise RuleError("filters", "must be a mapping of dimension to value(s), e.g. {service: support-bot}")
    spec: dict[str, tuple[str, ...]] = {}
    dims: dict[str, list[str]] = {}
    search = None
    for name, values in raw.items():
        where = f"filters.{name}"
        items = values if isinstance(values, list | tuple) else [values]
        texts = tuple(_scalar_text(v, where) for v in items)
        if not texts:
            raise RuleError(where, "needs at least one value")
        if name == "q":
            if len(texts) != 1:
                raise RuleError(where, "search text must be a single value")
            search = texts[0]
        else:
            try:
                resolve(str(name))
            except QueryError as exc:
                raise RuleError(where, str(exc)) from None
            dims[str(name)] = list(texts)
        spec[str(name)] = texts
    try:
        filters = Filters.parse(dims, (), search)
    except QueryError as exc:
        raise RuleError("filters", str(exc)) from None
    return filters, spec


def _labels(raw: Any, group_by: tuple[str, ...]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RuleError("labels", "must be a mapping of label name to value")
    out = {}
    for name, value in raw.items():
        where = f"labels.{name}"
        if not isinstance(name, str) or not _LABEL_NAME.match(name):
            raise RuleError(where, "a label name is letters, digits and _, not starting with a digit")
        if name in RESERVED_LABELS:
            raise RuleError(where, f"{name} is set by callscope")
        if name in group_by:
            raise RuleError(where, f"{name} is a group_by dimension; its value comes from each group")
        out[name] = _scalar_text(value, where)
    return out


def check_template(text: str, field: str) -> str:
    for match in _TEMPLATE_VAR.finditer(text):
        name = match.group(1)
        if name not in TEMPLATE_VARS and not name.startswith("labels."):
            known = ", ".join(sorted(TEMPLATE_VARS)) + ", labels.<name>"
            raise RuleError(field, f"unknown template variable {{{{{name}}}}}; known: {known}")
    return text


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, FIELDS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_rule(raw: Any, origin: Origin | None = None) -> Rule:
    """A Rule from its data form, every field checked; RuleError names the first bad field."""
    if not isinstance(raw, Mapping):
        raise RuleError("rule", "a rule must be a mapping of fields (name, metric, window, ...)")
    name_raw = raw.get("name")
    rule_name = name_raw if isinstance(name_raw, str) else None
    try:
        return _parse(raw, origin or Origin("api"))
    except RuleError as exc:
        exc.rule = exc.rule or rule_name
        raise


def _parse(raw: Mapping[str, Any], origin: Origin) -> Rule:
    for key in raw:
        if key not in FIELDS:
            raise RuleError(str(key), f"unknown field{_suggest(str(key))}; fields: {', '.join(FIELDS)}")
    for required in ("name", "metric", "window", "op"):
        if raw.get(required) is None:
            raise RuleError(required, "is required")
    name = _text(raw["name"], "name")
    if not _NAME.match(name):
        raise RuleError("name", "1-128 letters, digits and _.:- starting with a letter or digit")
    metric = raw["metric"]
    if metric not in METRICS and metric not in BUDGET_METRICS:
        raise RuleError("metric", f"unknown metric {metric!r}; known: {', '.join([*METRICS, *BUDGET_METRICS])}")
    if metric in BUDGET_METRICS:
        filters, filter_spec, group_by = _budget_scope(raw)
    else:
        filters, filter_spec = _filters(raw.get("filters"))
        group_raw = raw.get("group_by") or []
        if isinstance(group_raw, str):
            group_raw = [group_raw]
        if not isinstance(group_raw, list | tuple) or not all(isinstance(g, str) for g in group_raw):
            raise RuleError("group_by", "must be a list of dimension names, e.g. [model]")
        try:
            group_by = parse_group_by(group_raw)
        except QueryError as exc:
            raise RuleError("group_by", str(exc)) from None
    window = parse_duration(raw["window"], "window")
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise RuleError("window", f"must be between 1m and 31d, got {format_duration(window)}")
    op_raw = raw["op"]
    op = _choice(_OP_WORDS.get(op_raw.lower(), op_raw) if isinstance(op_raw, str) else op_raw, "op", Op)
    thresholds: dict[Severity, float] = {}
    for severity in (Severity.CRITICAL, Severity.WARNING):
        if raw.get(severity.value) is not None:
            thresholds[severity] = _number(raw[severity.value], severity.value)
    if not thresholds:
        raise RuleError("warning", "give a warning or a critical threshold (or both)")
    if len(thresholds) == 2:
        crit, warn = thresholds[Severity.CRITICAL], thresholds[Severity.WARNING]
        if (op.upward and crit < warn) or (not op.upward and crit > warn):
            side = "at or above" if op.upward else "at or below"
            raise RuleError("critical", f"with op {op.value} the critical threshold must be {side} the warning one")
    relative = _choice(raw["relative_to"], "relative_to", Relative) if raw.get("relative_to") else None
    min_calls = raw.get("min_calls", 0)
    if isinstance(min_calls, bool) or not isinstance(min_calls, int) or min_calls < 0:
        raise RuleError("min_calls", f"must be a whole number >= 0, got {min_calls!r}")
    for_ = parse_duration(raw.get("for", "0s"), "for", allow_zero=True)
    keep = parse_duration(raw.get("keep_firing_for", "0s"), "keep_firing_for", allow_zero=True)
    for where, value in (("for", for_), ("keep_firing_for", keep)):
        if value > MAX_WINDOW:
            raise RuleError(where, "must be at most 31d")
    no_data = _choice(raw.get("no_data", NoData.NODATA.value), "no_data", NoData)
    interval = parse_duration(raw.get("interval", "1m"), "interval")
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise RuleError("interval", f"must be between 10s and 1d, got {format_duration(interval)}")
    if interval.total_seconds() != int(interval.total_seconds()):
        raise RuleError("interval", "must be whole seconds")
    labels = _labels(raw.get("labels"), group_by)
    summary = check_template(_text(raw.get("summary", DEFAULT_SUMMARY), "summary"), "summary")
    description = check_template(_text(raw.get("description", DEFAULT_DESCRIPTION), "description"), "description")
    return Rule(
        name=name,
        metric=metric,
        filters=filters,
        filter_spec=filter_spec,
        group_by=group_by,
        window=window,
        op=op,
        thresholds=thresholds,
        relative_to=relative,
        min_calls=min_calls,
        for_=for_,
        keep_firing_for=keep,
        no_data=no_data,
        interval=interval,
        labels=labels,
        summary=summary,
        description=description,
        origin=origin,
    )


def check_unique(rules: Sequence[Rule]) -> None:
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError("name", f"another rule is already named {rule.name!r}", rule.name)
        seen.add(rule.name)
