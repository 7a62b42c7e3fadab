"""What an alert notification says, stored in the outbox as JSON and rendered per channel at delivery time.

The content follows Alertmanager's notification data (status, receiver, group labels, common labels and
annotations, the alerts), plus each alert's value and threshold, so the e-mail, the webhook (version 4) and the
Slack form are all rendered from the same stored document: a retried message is the same message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alerts.model import Alert


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = dict(maps[0])
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def alert_dict(alert: Alert) -> dict[str, Any]:
    return {
        "status": "firing" if alert.firing else "resolved",
        "labels": dict(sorted(alert.labels.items())),
        "annotations": dict(sorted(alert.annotations.items())),
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat() if alert.ends_at is not None else None,
        "fingerprint": alert.fingerprint,
        "value": alert.value,
        "threshold": alert.threshold,
        "rule_id": alert.rule_id,
    }


def build(
    *,
    receiver: str,
    group_key: str,
    group_labels: Mapping[str, str],
    alerts: Sequence[Alert],
    external_url: str,
    reason: str,
) -> dict[str, Any]:
    """The notification of a group: firing alerts first (oldest first), then resolved ones."""
    ordered = sorted(alerts, key=lambda a: (not a.firing, a.starts_at, a.fingerprint))
    items = [alert_dict(a) for a in ordered]
    return {
        "receiver": receiver,
        "status": "firing" if any(i["status"] == "firing" for i in items) else "resolved",
        "group_key": group_key,
        "group_labels": dict(sorted(group_labels.items())),
        "common_labels": _common([a.labels for a in ordered]),
        "common_annotations": _common([a.annotations for a in ordered]),
        "external_url": external_url,
        "reason": reason,
        "alerts": items,
    }


def firing(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [a for a in payload["alerts"] if a["status"] == "firing"]


def resolved(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [a for a in payload["alerts"] if a["status"] == "resolved"]


def title(payload: Mapping[str, Any]) -> str:
    """Alertmanager's default subject: `[FIRING:2] <group label values> (<other common label values>)`, with
    the summary of a lone alert, e.g. `[FIRING:1] HighErrorRate support-bot: error rate 12% > 5%`."""
    n_firing = len(firing(payload))
    status = f"FIRING:{n_firing}" if payload["status"] == "firing" else "RESOLVED"
    group = payload["group_labels"]
    names = [group[k] for k in sorted(group)]
    if "alertname" in payload["common_labels"] and "alertname" not in group:
        names.insert(0, payload["common_labels"]["alertname"])
    others = {k: v for k, v in payload["common_labels"].items() if k not in group and k != "alertname"}
    text = f"[{status}] {' '.join(names) or 'alerts'}"
    if others:
        text += " (" + " ".join(others[k] for k in sorted(others)) + ")"
    if len(payload["alerts"]) == 1 and payload["alerts"][0]["annotations"].get("summary"):
        text += ": " + payload["alerts"][0]["annotations"]["summary"]
    return " ".join(text.split())[:250]


def format_number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")
