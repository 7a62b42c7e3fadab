"""Webhook notifications: Alertmanager's webhook JSON (version 4), so receivers written for Alertmanager work
unchanged, or Slack's incoming-webhook form (text + attachments, also understood by Mattermost and Rocket.Chat).

2xx is delivered. As Alertmanager, a 4xx answer (but 408 and 429) is final: the receiver refuses this message
and a retry would be refused too; 5xx, 408, 429 and network errors are retried with backoff.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from alerts import message
from alerts.notify_config import mask_url
from alerts.outbox import OutboxRow
from alerts.smtp import DeliveryError

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing


def _rfc3339(iso: str | None) -> str:
    if not iso:
        return ZERO_TIME
    return datetime.fromisoformat(iso).isoformat().replace("+00:00", "Z")


def alertmanager_v4(payload: Mapping[str, Any], max_alerts: int = 0) -> dict[str, Any]:
    alerts = payload["alerts"]
    kept = alerts[:max_alerts] if max_alerts else alerts
    return {
        "version": "4",
        "groupKey": payload["group_key"],
        "truncatedAlerts": len(alerts) - len(kept),
        "status": payload["status"],
        "receiver": payload["receiver"],
        "groupLabels": payload["group_labels"],
        "commonLabels": payload["common_labels"],
        "commonAnnotations": payload["common_annotations"],
        "externalURL": payload["external_url"],
        "alerts": [
            {
                "status": a["status"],
                "labels": a["labels"],
                "annotations": a["annotations"],
                "startsAt": _rfc3339(a["starts_at"]),
                "endsAt": _rfc3339(a["ends_at"]),
                "generatorURL": a["annotations"].get("dashboard_url", ""),
                "fingerprint": a["fingerprint"],
                # callscope's additions; receivers decoding version 4 ignore unknown fields
                "value": a["value"],
                "threshold": a["threshold"],
            }
            for a in kept
        ],
    }


def slack(payload: Mapping[str, Any], max_alerts: int = 0) -> dict[str, Any]:
    title = message.title(payload)
    alerts = payload["alerts"][:max_alerts] if max_alerts else payload["alerts"]
    lines = []
    for a in alerts:
        notes = a["annotations"]
        text = notes.get("summary") or a["labels"].get("alertname", "alert")
        link = notes.get("dashboard_url")
        head = f"<{link}|{text}>" if link else text
        lines.append(
            f"{'🔥' if a['status'] == 'firing' else '✅'} {head} "
            f"(value {message.format_number(a['value'])}, threshold {message.format_number(a['threshold'])})"
        )
    attachment: dict[str, Any] = {
        "color": "danger" if payload["status"] == "firing" else "good",
        "title": title,
        "text": "\n".join(lines),
        "fallback": title,
        "footer": "callscope",
    }
    if payload.get("external_url"):
        attachment["title_link"] = payload["external_url"]
    return {"text": title, "attachments": [attachment]}


def body(row: OutboxRow) -> dict[str, Any]:
    fmt, max_alerts = row.target.get("format", "alertmanager"), int(row.target.get("max_alerts", 0))
    if row.kind == "digest":
        return row.payload["webhook"]
    return slack(row.payload, max_alerts) if fmt == "slack" else alertmanager_v4(row.payload, max_alerts)


def post(row: OutboxRow, client: httpx.Client) -> str | None:
    url = row.target["url"]
    shown = mask_url(url)
    headers = {
        "user-agent": "callscope",
        "x-callscope-notification": str(row.id),
        "idempotency-key": f"callscope-{row.id}-{row.created_at.timestamp():.6f}",
        **row.target.get("headers", {}),
    }
    try:
        response = client.post(
            url, json=body(row), headers=headers, timeout=float(row.target.get("timeout_seconds", 10))
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(f"cannot reach {shown}: {type(exc).__name__}: {str(exc).replace(url, shown)}") from None
    if 200 <= response.status_code < 300:
        return None
    detail = response.text[:200].replace(url, shown)
    permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
    raise DeliveryError(f"{shown} answered HTTP {response.status_code}: {detail}", permanent=permanent)
