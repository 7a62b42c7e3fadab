"""The notification configuration: receivers, the routing tree, inhibition rules and digests, as Alertmanager.

It lives in callscope's TOML config file (`[alerts]` and `[[digests]]`; see the README), next to every other
setting, and keeps Alertmanager's names and meanings so an SRE can read it without a manual:

    [alerts.route]                      # the root route: every alert enters here
    receiver = "oncall"
    group_by = ["alertname", "service"] # "..." groups by every label
    group_wait = "30s"                  # defaults 30s / 5m / 4h, as Alertmanager
    [[alerts.route.routes]]             # children: the first match wins unless `continue = true`
    matchers = ['severity="critical"']
    receiver = "pager"
    [[alerts.receivers]]
    name = "oncall"
    email_configs = [{ to = ["oncall@example.com"] }]
    webhook_configs = [{ url = "https://hooks.example.com/x", format = "slack" }]

Parsing checks every field and names it in the error (`alerts.receivers[1].webhook_configs[0].url: ...`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.matchers import Matcher, MatcherError, labels_text, matchers_text, matches_all

DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)
GROUP_BY_ALL = "..."
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_EMAIL = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+$")


class ConfigError(ValueError):
    """The notification configuration cannot be used; the message names the field (`alerts.route.receiver: ...`)."""


def parse_duration(raw: Any, where: str) -> timedelta:
    """Prometheus durations: "30s", "5m", "1h30m", "2d"; a bare number is seconds."""
    if isinstance(raw, bool):
        raise ConfigError(f"{where}: expected a duration such as 30s, 5m or 4h, got {raw!r}")
    if isinstance(raw, int | float):
        seconds = float(raw)
    else:
        text = str(raw).strip()
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ConfigError(f"{where}: expected a duration such as 30s, 5m or 4h, got {raw!r}")
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds < 0:
        raise ConfigError(f"{where}: must not be negative")
    return timedelta(seconds=seconds)


class _Fields:
    """Reads one TOML table, naming each field by its path; refuses fields it does not know."""

    def __init__(self, raw: Any, where: str, known: Sequence[str]) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
        self.raw, self.where = raw, where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}"

    def has(self, key: str) -> bool:
        return key in self.raw

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        if key not in self.raw:
            if required:
                raise ConfigError(f"{self.path(key)}: missing")
            return default
        value = self.raw[key]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.path(key)}: expected a non-empty string, got {value!r}")
        return value.strip()

    def bool(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.path(key)}: expected true or false, got {value!r}")
        return value

    def int(self, key: str, default: int, minimum: int = 0) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{self.path(key)}: expected an integer >= {minimum}, got {value!r}")
        return value

    def list(self, key: str) -> list[Any]:
        value = self.raw.get(key, [])
        if not isinstance(value, list):
            raise ConfigError(f"{self.path(key)}: expected a list, got {value!r}")
        return value

    def strings(self, key: str) -> list[str]:
        values = self.list(key)
        for i, v in enumerate(values):
            if not isinstance(v, str) or not v.strip():
                raise ConfigError(f"{self.path(key)}[{i}]: expected a non-empty string, got {v!r}")
        return [v.strip() for v in values]

    def matchers(self, key: str) -> tuple[Matcher, ...]:
        out = []
        for i, text in enumerate(self.list(key)):
            try:
                out.append(Matcher.parse(text))
            except MatcherError as exc:
                raise ConfigError(f"{self.path(key)}[{i}]: {exc}") from None
        return tuple(out)


# -- receivers -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailChannel:
    """E-mail through the SMTP server of the settings (smtp_*) to these addresses."""

    id: str
    to: tuple[str, ...]
    send_resolved: bool = True
    kind = "email"

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.kind, "to": list(self.to), "send_resolved": self.send_resolved}

    def target(self) -> dict[str, Any]:
        return {"to": list(self.to)}


@dataclass(frozen=True)
class WebhookChannel:
    """An HTTP POST of JSON: Alertmanager's webhook format (version 4), or Slack's incoming-webhook form."""

    id: str
    url: str
    send_resolved: bool = True
    format: str = "alertmanager"
    max_alerts: int = 0  # 0: all; more are cut and counted in truncatedAlerts, as Alertmanager
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 10.0
    kind = "webhook"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "url": mask_url(self.url),
            "format": self.format,
            "send_resolved": self.send_resolved,
            "max_alerts": self.max_alerts,
            "headers": dict.fromkeys(self.headers, "<secret>"),
        }

    def target(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "format": self.format,
            "max_alerts": self.max_alerts,
            "headers": dict(self.headers),
            "timeout_seconds": self.timeout_seconds,
        }


Channel = EmailChannel | WebhookChannel
WEBHOOK_FORMATS = ("alertmanager", "slack")


def mask_url(url: str) -> str:
    """Scheme, host and port only: a webhook URL's path or query often is its secret (Slack's is)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


@dataclass(frozen=True)
class Receiver:
    name: str
    channels: tuple[Channel, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "channels": [c.describe() for c in self.channels]}


def _email_addresses(values: list[str], where: str) -> tuple[str, ...]:
    for i, address in enumerate(values):
        if not _EMAIL.match(address):
            raise ConfigError(f"{where}[{i}]: {address!r} is not an e-mail address")
    return tuple(values)


def _receiver(raw: Any, where: str) -> Receiver:
    f = _Fields(raw, where, ("name", "email_configs", "webhook_configs"))
    name = f.str("name", required=True)
    assert name is not None
    channels: list[Channel] = []
    for i, item in enumerate(f.list("email_configs")):
        e = _Fields(item, f"{f.path('email_configs')}[{i}]", ("to", "send_resolved"))
        to = e.raw.get("to")
        if isinstance(to, str):
            to = [to]
        if not to:
            raise ConfigError(f"{e.path('to')}: give at least one address")
        checked = _Fields({"to": to}, e.where, ("to",)).strings("to")
        channels.append(
            EmailChannel(f"{name}/email/{i}", _email_addresses(checked, e.path("to")), e.bool("send_resolved", True))
        )
    for i, item in enumerate(f.list("webhook_configs")):
        w = _Fields(
            item,
            f"{f.path('webhook_configs')}[{i}]",
            ("url", "send_resolved", "format", "max_alerts", "headers", "timeout"),
        )
        url = w.str("url", required=True)
        assert url is not None
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigError(f"{w.path('url')}: expected an http:// or https:// URL")
        fmt = w.str("format", "alertmanager")
        if fmt not in WEBHOOK_FORMATS:
            raise ConfigError(f"{w.path('format')}: expected one of {', '.join(WEBHOOK_FORMATS)}, got {fmt!r}")
        headers = w.raw.get("headers", {})
        if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError(f"{w.path('headers')}: expected a table of strings")
        timeout = parse_duration(w.raw.get("timeout", "10s"), w.path("timeout")).total_seconds()
        if timeout <= 0:
            raise ConfigError(f"{w.path('timeout')}: must be positive")
        channels.append(
            WebhookChannel(
                f"{name}/webhook/{i}",
                url,
                w.bool("send_resolved", True),
                str(fmt),
                w.int("max_alerts", 0),
                {str(k): v for k, v in headers.items()},
                timeout,
            )
        )
    return Receiver(name, tuple(channels))


# -- routes --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    group_wait: timedelta = DEFAULT_GROUP_WAIT
    group_interval: timedelta = DEFAULT_GROUP_INTERVAL
    repeat_interval: timedelta = DEFAULT_REPEAT_INTERVAL


@dataclass(frozen=True)
class Route:
    """A node of the routing tree; children inherit the receiver, grouping and timings they do not set."""

    key: str  # Alertmanager's route key: the matchers from the root down, e.g. {}/{severity="critical"}
    id: str  # the key made unique among siblings with equal matchers
    matchers: tuple[Matcher, ...]
    receiver: str
    group_by: tuple[str, ...]
    group_by_all: bool
    timings: Timings
    continue_: bool = False
    routes: tuple[Route, ...] = ()

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an alert goes to, depth first, as Alertmanager's Route.Match: the first matching child
        takes it unless that child has `continue`; a node no child takes handles the alert itself."""
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            found += matched
            if matched and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if self.group_by_all:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}

    def group_key(self, labels: Mapping[str, str]) -> str:
        return f"{self.id}:{labels_text(self.group_labels(labels))}"

    def walk(self) -> list[Route]:
        out = [self]
        for child in self.routes:
            out += child.walk()
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "receiver": self.receiver,
            "group_by": [GROUP_BY_ALL] if self.group_by_all else list(self.group_by),
            "group_wait": self.timings.group_wait.total_seconds(),
            "group_interval": self.timings.group_interval.total_seconds(),
            "repeat_interval": self.timings.repeat_interval.total_seconds(),
            "continue": self.continue_,
            "routes": [r.describe() for r in self.routes],
        }


_ROUTE_FIELDS = ("receiver", "matchers", "group_by", "group_wait", "group_interval", "repeat_interval", "continue")


def _route(raw: Any, where: str, parent: Route | None, receivers: Mapping[str, Receiver], index: int) -> Route:
    f = _Fields(raw, where, (*_ROUTE_FIELDS, "routes"))
    if parent is None and f.has("matchers"):
        raise ConfigError(f"{f.path('matchers')}: the root route matches every alert and takes no matchers")
    if parent is None and f.has("continue"):
        raise ConfigError(f"{f.path('continue')}: the root route cannot have continue")
    receiver = f.str("receiver", parent.receiver if parent else None)
    if receiver is None:
        raise ConfigError(f"{f.path('receiver')}: the root route needs a receiver")
    if receiver not in receivers:
        raise ConfigError(f"{f.path('receiver')}: no receiver named {receiver!r} (known: {', '.join(receivers)})")
    matchers = f.matchers("matchers")
    if f.has("group_by"):
        group_by = f.strings("group_by")
        group_by_all = GROUP_BY_ALL in group_by
        if group_by_all and len(group_by) > 1:
            raise ConfigError(f"{f.path('group_by')}: '...' groups by every label and stands alone")
        for i, name in enumerate(group_by):
            if name != GROUP_BY_ALL and not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", name):
                raise ConfigError(f"{f.path('group_by')}[{i}]: {name!r} is not a label name")
        group = () if group_by_all else tuple(dict.fromkeys(group_by))
    else:
        group = parent.group_by if parent else ()
        group_by_all = parent.group_by_all if parent else False
    base = parent.timings if parent else Timings()
    timings = Timings(
        *(
            parse_duration(f.raw[name], f.path(name)) if f.has(name) else getattr(base, name)
            for name in ("group_wait", "group_interval", "repeat_interval")
        )
    )
    if timings.group_interval.total_seconds() <= 0:
        raise ConfigError(f"{f.path('group_interval')}: must be positive")
    if timings.repeat_interval.total_seconds() <= 0:
        raise ConfigError(f"{f.path('repeat_interval')}: must be positive")
    key = matchers_text(matchers) if parent is None else f"{parent.key}/{matchers_text(matchers)}"
    route_id = key if parent is None else f"{key}/{index}"
    node = Route(key, route_id, matchers, receiver, group, group_by_all, timings, f.bool("continue", False))
    children = tuple(
        _route(child, f"{f.path('routes')}[{i}]", node, receivers, i) for i, child in enumerate(f.list("routes"))
    )
    return Route(key, route_id, matchers, receiver, group, group_by_all, timings, node.continue_, children)


# -- inhibition ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InhibitRule:
    """While an alert matching `source` fires, alerts matching `target` with the same values of the `equal`
    labels are muted, as Alertmanager's inhibit_rules. `equal_all_except` (callscope's addition) asks for every
    label but the named ones to be equal: the default rule uses it so that a critical instance mutes the warning
    of the very same instance (same rule, same group-by values), whatever labels the rule has."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()
    equal_all_except: tuple[str, ...] | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source_matchers": [str(m) for m in self.source],
            "target_matchers": [str(m) for m in self.target],
            "equal": list(self.equal),
        }
        if self.equal_all_except is not None:
            out["equal_all_except"] = list(self.equal_all_except)
        return out


DEFAULT_INHIBIT_RULES = (
    InhibitRule(
        (Matcher.parse('severity="critical"'),),
        (Matcher.parse('severity="warning"'),),
        equal_all_except=("severity",),
    ),
)


def _inhibit_rule(raw: Any, where: str) -> InhibitRule:
    f = _Fields(raw, where, ("source_matchers", "target_matchers", "equal", "equal_all_except"))
    source, target = f.matchers("source_matchers"), f.matchers("target_matchers")
    if not source:
        raise ConfigError(f"{f.path('source_matchers')}: give at least one matcher")
    if not target:
        raise ConfigError(f"{f.path('target_matchers')}: give at least one matcher")
    if f.has("equal") and f.has("equal_all_except"):
        raise ConfigError(f"{where}: give equal or equal_all_except, not both")
    return InhibitRule(
        source,
        target,
        tuple(f.strings("equal")),
        tuple(f.strings("equal_all_except")) if f.has("equal_all_except") else None,
    )


# -- digests -------------------------------------------------------------------------------------------------

DIGEST_PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7)}


@dataclass(frozen=True)
class DigestConfig:
    """A scheduled e-mail of the figures a PM reads: `schedule` is a crontab line in `tz`; the digest covers
    the `period` (day or week) that ends at the scheduled time, against the period before it."""

    name: str
    schedule: str
    to: tuple[str, ...]
    period: str = "day"
    tz: str = "UTC"
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    top_n: int = 5

    @property
    def length(self) -> timedelta:
        return DIGEST_PERIODS[self.period]

    def trigger(self):
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(self.schedule, timezone=ZoneInfo(self.tz))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "schedule": self.schedule,
            "tz": self.tz,
            "period": self.period,
            "to": list(self.to),
            "filters": {k: list(v) for k, v in self.filters.items()},
            "top_n": self.top_n,
        }


def _digest(raw: Any, where: str) -> DigestConfig:
    f = _Fields(raw, where, ("name", "schedule", "to", "period", "tz", "filters", "top_n"))
    name = f.str("name", required=True)
    assert name is not None
    if not re.match(r"^[A-Za-z0-9_.-]+$", name):
        raise ConfigError(f"{f.path('name')}: use letters, digits, '-', '_' and '.' only (it appears in URLs)")
    period = f.str("period", "day")
    if period not in DIGEST_PERIODS:
        raise ConfigError(f"{f.path('period')}: expected day or week, got {period!r}")
    tz = f.str("tz", "UTC")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{f.path('tz')}: unknown time zone {tz!r}") from None
    to = f.raw.get("to")
    if isinstance(to, str):
        to = [to]
    if not to:
        raise ConfigError(f"{f.path('to')}: give at least one address")
    addresses = _email_addresses(_Fields({"to": to}, where, ("to",)).strings("to"), f.path("to"))
    filters_raw = f.raw.get("filters", {})
    if not isinstance(filters_raw, Mapping):
        raise ConfigError(f'{f.path("filters")}: expected a table such as {{ service = ["chat"] }}')
    filters: dict[str, tuple[str, ...]] = {}
    for dim, values in filters_raw.items():
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"{f.path('filters')}.{dim}: expected a string or a list of strings")
        filters[str(dim)] = tuple(values)
    try:
        from analytics.query import Filters

        Filters.parse({k: list(v) for k, v in filters.items()})
    except ValueError as exc:
        raise ConfigError(f"{f.path('filters')}: {exc}") from None
    digest = DigestConfig(
        name, str(f.str("schedule", required=True)), addresses, str(period), str(tz), filters, f.int("top_n", 5, 1)
    )
    try:
        digest.trigger()
    except ValueError as exc:
        raise ConfigError(f"{f.path('schedule')}: {digest.schedule!r} is not a crontab line: {exc}") from None
    return digest


# -- the whole configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotifyConfig:
    route: Route
    receivers: Mapping[str, Receiver]
    inhibit_rules: tuple[InhibitRule, ...] = DEFAULT_INHIBIT_RULES
    digests: Mapping[str, DigestConfig] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """For the API: secrets (webhook paths, headers) masked."""
        return {
            "receivers": [r.describe() for r in self.receivers.values()],
            "route": self.route.describe(),
            "inhibit_rules": [r.describe() for r in self.inhibit_rules],
            "digests": [d.describe() for d in self.digests.values()],
        }


def parse_notify_config(alerts: Mapping[str, Any] | None, digests: Sequence[Any] | None = None) -> NotifyConfig:
    """From the config file's `[alerts]` table and `[[digests]]` list. No receivers: alerts are grouped and logged
    but sent nowhere (receiver "default" without channels)."""
    f = _Fields(alerts or {}, "alerts", ("route", "receivers", "inhibit_rules"))
    receivers: dict[str, Receiver] = {}
    for i, raw in enumerate(f.list("receivers")):
        receiver = _receiver(raw, f"alerts.receivers[{i}]")
        if receiver.name in receivers:
            raise ConfigError(f"alerts.receivers[{i}].name: {receiver.name!r} is defined twice")
        receivers[receiver.name] = receiver
    if not receivers:
        receivers["default"] = Receiver("default")
    route_raw = f.raw.get("route")
    if route_raw is None:
        route_raw = {"receiver": next(iter(receivers))}
        if len(receivers) > 1:
            raise ConfigError("alerts.route: with several receivers, say which one gets alerts ([alerts.route])")
    route = _route(route_raw, "alerts.route", None, receivers, 0)
    rules = (
        tuple(_inhibit_rule(r, f"alerts.inhibit_rules[{i}]") for i, r in enumerate(f.list("inhibit_rules")))
        if f.has("inhibit_rules")
        else DEFAULT_INHIBIT_RULES
    )
    if digests is not None and not isinstance(digests, list):
        raise ConfigError("digests: expected a list of tables ([[digests]])")
    parsed: dict[str, DigestConfig] = {}
    for i, raw in enumerate(digests or []):
        digest = _digest(raw, f"digests[{i}]")
        if digest.name in parsed:
            raise ConfigError(f"digests[{i}].name: {digest.name!r} is defined twice")
        parsed[digest.name] = digest
    return NotifyConfig(route, receivers, rules, parsed)
