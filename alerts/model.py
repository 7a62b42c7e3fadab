"""The alert as the notification pipeline sees it, and the table where evaluation hands it over.

The seam between evaluation and notification is Prometheus' and Alertmanager's: evaluation (alerts/evaluate.py)
keeps one row per alert instance in `alert_instances`, written in the same transaction as the instance's state
change and history; notification (alerts/notify*.py) reads the rows that are firing, or resolved recently, and
decides what to send (grouping, silences, inhibition, repeat) with its own log, so nothing is sent from memory.

An instance is one (rule, group-by values, severity): a rule with warning and critical thresholds yields two
instances per group, so a critical one can inhibit the warning of the same group, as in Alertmanager.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import orjson


class AlertState(StrEnum):
    """Grafana's and Prometheus' instance states. RECOVERING is keep_firing_for: the condition cleared but the
    alert still counts as firing until the period ends."""

    NORMAL = "normal"
    PENDING = "pending"
    FIRING = "firing"
    RECOVERING = "recovering"
    NODATA = "nodata"
    ERROR = "error"


FIRING_STATES = frozenset({AlertState.FIRING, AlertState.RECOVERING})


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id of a label set (order-free), as Alertmanager fingerprints alerts."""
    return hashlib.sha256(orjson.dumps(dict(sorted(labels.items())))).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    """One alert instance: `labels` identify it (alertname, severity, the rule's labels, the group-by values);
    `annotations` describe it (summary, description, dashboard_url). `ends_at` is None while it fires."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: AlertState
    starts_at: datetime
    ends_at: datetime | None
    value: float | None
    threshold: float | None
    rule_id: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def firing(self) -> bool:
        return self.ends_at is None


# The hand-over table, created by core migration m008_alert_instances (callscope/migrations.py):
#   alert_instances(fingerprint PK, rule_id, labels MAP, annotations MAP, state, value, threshold,
#                   active_at (pending since), starts_at (fired at), ends_at (resolved at), last_eval_at, error)
ALERTS_FOR_NOTIFICATION_SQL = """
    SELECT fingerprint, rule_id, labels, annotations, state, value, threshold, starts_at, ends_at
    FROM alert_instances
    WHERE starts_at IS NOT NULL
      AND (ends_at IS NULL OR ends_at >= ? OR fingerprint IN (SELECT unnest(?::VARCHAR[])))
"""


def alerts_for_notification(cur, resolved_since: datetime, told_firing: Collection[str] = ()) -> list[Alert]:
    """The instances the notifier must know: firing ones, those resolved since `resolved_since`, and those a
    channel was told are firing (`told_firing` fingerprints), however long ago they resolved: evaluation stamps
    ends_at with its evaluation instant and commits a moment later, so a resolve can become visible after a
    flush later than its ends_at, and must still be told."""
    rows = cur.execute(ALERTS_FOR_NOTIFICATION_SQL, [resolved_since, sorted(told_firing)]).fetchall()
    return [
        Alert(
            labels=dict(labels),
            annotations=dict(annotations or {}),
            state=AlertState(state),
            starts_at=starts_at,
            ends_at=ends_at,
            value=value,
            threshold=threshold,
            rule_id=rule_id,
        )
        for (_fp, rule_id, labels, annotations, state, value, threshold, starts_at, ends_at) in rows
    ]
