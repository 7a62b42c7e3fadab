"""Alert notifications as e-mails: a subject in Alertmanager's style, a plain-text and an HTML part (every value
escaped), and a Message-ID that is the same on every retry of the same outbox row, so a receiving server or mail
client can drop a duplicate."""

from __future__ import annotations

import email.policy
import hashlib
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape
from typing import Any

from alerts import message
from alerts.outbox import OutboxRow

# RFC 5322's hard line limit: a subject up to 250 characters stays on one line instead of being folded (Python
# folds a subject a little over 78 characters onto a continuation line, which some clients show with a leading
# space); longer header lines (a To: with many addresses) are still folded.
POLICY = email.policy.default.clone(max_line_length=998)


def message_id(row: OutboxRow, domain: str) -> str:
    """Stable per outbox row: its id and a digest of what makes it unique (creation instant, channel, group)."""
    token = hashlib.sha256(
        f"{row.id}|{row.created_at.isoformat()}|{row.channel}|{row.group_key or row.dedup_key or ''}".encode()
    ).hexdigest()[:20]
    return f"<callscope.{row.id}.{token}@{domain}>"


def envelope(row: OutboxRow, sender: str, domain: str, subject: str) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(row.target["to"])
    msg["Date"] = format_datetime(row.created_at)
    msg["Message-ID"] = message_id(row, domain)
    msg["X-Callscope-Notification"] = str(row.id)
    if row.group_key:
        msg["X-Callscope-Group"] = hashlib.sha256(row.group_key.encode()).hexdigest()[:16]
    return msg


def _when(iso: str | None) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %Z") if iso else ""


def _labels(labels: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in labels.items() if k != "alertname")


def _alert_text(alert: Mapping[str, Any]) -> list[str]:
    notes = alert["annotations"]
    lines = [f"- {alert['labels'].get('alertname', 'alert')}  {_labels(alert['labels'])}"]
    for key in ("summary", "description"):
        if notes.get(key):
            lines.append(f"  {notes[key]}")
    lines.append(
        f"  value: {message.format_number(alert['value'])}   threshold: {message.format_number(alert['threshold'])}"
    )
    lines.append(f"  since: {_when(alert['starts_at'])}")
    if alert["status"] == "resolved":
        lines.append(f"  resolved: {_when(alert['ends_at'])}")
    if notes.get("dashboard_url"):
        lines.append(f"  view: {notes['dashboard_url']}")
    return lines


def render_text(payload: Mapping[str, Any], row: OutboxRow) -> str:
    lines = [message.title(payload), ""]
    for name, alerts in (("Firing", message.firing(payload)), ("Resolved", message.resolved(payload))):
        if alerts:
            lines.append(f"{name} ({len(alerts)})")
            for alert in alerts:
                lines += _alert_text(alert)
            lines.append("")
    if payload.get("external_url"):
        lines.append(f"Dashboard: {payload['external_url']}")
    lines.append(f"Receiver {payload['receiver']}, notification {row.id} ({payload['reason']}), sent by callscope.")
    return "\n".join(lines) + "\n"


_COLORS = {"firing": "#c62828", "resolved": "#2e7d32"}


def _alert_html(alert: Mapping[str, Any]) -> str:
    notes = alert["annotations"]
    link = notes.get("dashboard_url")
    parts = [
        f'<tr><td style="padding:8px 12px;border-left:4px solid {_COLORS[alert["status"]]};">',
        f"<b>{escape(alert['labels'].get('alertname', 'alert'))}</b> "
        f'<span style="color:#555">{escape(_labels(alert["labels"]))}</span><br>',
    ]
    if notes.get("summary"):
        parts.append(f"{escape(notes['summary'])}<br>")
    if notes.get("description"):
        parts.append(f'<span style="color:#333">{escape(notes["description"])}</span><br>')
    parts.append(
        f"value <b>{escape(message.format_number(alert['value']))}</b>, "
        f"threshold <b>{escape(message.format_number(alert['threshold']))}</b>; "
        f"since {escape(_when(alert['starts_at']))}"
    )
    if alert["status"] == "resolved":
        parts.append(f", resolved {escape(_when(alert['ends_at']))}")
    if link:
        parts.append(f'<br><a href="{escape(link, quote=True)}">Open in callscope</a>')
    parts.append("</td></tr>")
    return "".join(parts)


def render_html(payload: Mapping[str, Any], row: OutboxRow) -> str:
    color = _COLORS[payload["status"]]
    body = [
        '<!doctype html><html><body style="font-family:Arial,sans-serif;font-size:14px;color:#111">',
        f'<h2 style="color:{color};margin:0 0 12px">{escape(message.title(payload))}</h2>',
    ]
    for name, alerts in (("Firing", message.firing(payload)), ("Resolved", message.resolved(payload))):
        if alerts:
            body.append(f"<h3>{name} ({len(alerts)})</h3><table cellspacing=0 cellpadding=0>")
            body += [_alert_html(a) for a in alerts]
            body.append("</table>")
    if payload.get("external_url"):
        url = escape(payload["external_url"], quote=True)
        body.append(f'<p><a href="{url}">Dashboard</a></p>')
    body.append(
        f'<p style="color:#777;font-size:12px">Receiver {escape(payload["receiver"])}, notification {row.id}'
        f" ({escape(payload['reason'])}), sent by callscope.</p></body></html>"
    )
    return "".join(body)


def alert_email(row: OutboxRow, sender: str, domain: str) -> EmailMessage:
    payload = row.payload
    msg = envelope(row, sender, domain, message.title(payload))
    msg.set_content(render_text(payload, row))
    msg.add_alternative(render_html(payload, row), subtype="html")
    return msg
