"""A digest as an e-mail: subject, plain text, HTML, and the figures as a CSV attachment.

The charts are HTML bars (table cells whose width is the value), not images: they show in every mail client,
including those that block remote images or strip SVG (Gmail, Outlook), they need no new dependency (plotly's
PNG export needs kaleido and a Chrome; matplotlib is ~40 MB for a few bars), and their labels are real text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from html import escape
from typing import Any

from alerts import email_render
from alerts.digest import CSV_COLUMNS, GROUPS, DigestFigures, csv_rows
from alerts.outbox import OutboxRow

_TITLES = {"by_model": "Spend by model", "by_service": "Spend by service", "top_users": "Top users by spend"}


def money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def subject(figures: DigestFigures) -> str:
    t = figures.totals
    day = figures.window.end.astimezone(figures.window.end.tzinfo).date().isoformat()
    period = "day" if figures.digest.period == "day" else "week"
    return (
        f"callscope {figures.digest.name} digest {day}: {money(t.get('cost_usd'))} spend"
        f" ({pct(t.get('cost_usd_delta_pct'))} vs previous {period}), {len(figures.firing)} alert(s) firing"
    )


def budget_line(b: Mapping[str, Any]) -> str:
    """One budget as a PM reads it: spent of amount, the forecast with its interval, when it crosses."""
    amount = b["budget"]["amount_usd"]
    level = f"{b['interval_level']:.0%}"
    cross = f"; crosses the budget on {b['crossing_date']}" if b.get("crossing_date") else ""
    flag = " OVERRUN FORECAST" if b["overrun"] else ""
    return (
        f"{b['budget']['name']}: {money(b['spent_usd'])} of {money(amount)} ({b['spent_share']:.0%}),"
        f" forecast {money(b['forecast_usd'])} ({level}: {money(b['forecast_low_usd'])} to"
        f" {money(b['forecast_high_usd'])}){cross}{flag}"
    )


def csv_text(figures: DigestFigures) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(figures):
        writer.writerow(
            {
                k: "" if row.get(k) is None else (repr(row[k]) if isinstance(row[k], float) else row[k])
                for k in CSV_COLUMNS
            }
        )
    return out.getvalue()


def _window(figures: DigestFigures) -> str:
    return f"{figures.window.start.isoformat()} to {figures.window.end.isoformat()}"


def render_text(figures: DigestFigures) -> str:
    t = figures.totals
    lines = [
        subject(figures),
        "",
        f"Period: {_window(figures)} (compared with the {figures.digest.period} before)",
        f"Spend: {money(t.get('cost_usd'))} (previous {money(t.get('cost_usd_prev'))},"
        f" {pct(t.get('cost_usd_delta_pct'))})",
        f"Calls: {t.get('calls', 0):,} (previous {t.get('calls_prev') or 0:,})",
        f"Error rate: {ratio(t.get('error_rate'))} (previous {ratio(t.get('error_rate_prev'))})",
        f"p95 latency: {ms(t.get('latency_p95'))} (previous {ms(t.get('latency_p95_prev'))})",
    ]
    for section, dim in GROUPS:
        lines += ["", _TITLES[section]]
        for row in figures.groups[section]:
            lines.append(
                f"  {row[dim] or '(none)'}: {money(row['cost_usd'])} ({pct(row['cost_usd_delta_pct'])}),"
                f" {row['calls']:,} calls"
            )
    lines += ["", "What changed (spend by service and model)"]
    for mover in figures.movers["contributors"]:
        who = " / ".join(str(mover[d]) for d in figures.movers["dimensions"])
        lines.append(f"  {who}: {money(mover['before'])} -> {money(mover['now'])} ({money(mover['contribution'])})")
    lines += ["", "Trend (error rate, p95 latency)"]
    for point in figures.trend:
        lines.append(
            f"  {point['bucket']}: {ratio(point['error_rate'])}, {ms(point['latency_p95'])}, {point['calls']} calls"
        )
    if figures.budgets:
        lines += ["", "Budgets (spent / amount, forecast at the period's end)"]
        lines += [f"  {budget_line(b)}" for b in figures.budgets]
    lines += ["", f"Firing alerts: {len(figures.firing)}"]
    for alert in figures.firing:
        lines.append(f"  {alert.labels.get('alertname', 'alert')} {alert.annotations.get('summary', '')}".rstrip())
    lines += ["", f"Open in callscope: {figures.link}", "The figures are attached as CSV."]
    return "\n".join(lines) + "\n"


def _bars(rows: Sequence[Mapping[str, Any]], label: str, value: str, fmt, color: str = "#3f51b5") -> str:
    """A horizontal bar chart as an HTML table: bar widths are the values' share of the largest."""
    values = [r.get(value) or 0 for r in rows]
    top = max([abs(v) for v in values] + [0]) or 1
    out = ['<table cellspacing=0 cellpadding=2 style="border-collapse:collapse;font-size:13px">']
    for row, v in zip(rows, values, strict=True):
        width = max(1, round(200 * abs(v) / top))
        out.append(
            f"<tr><td style='padding-right:8px'>{escape(str(row.get(label) or '(none)'))}</td>"
            f"<td><div style='background:{color};width:{width}px;height:12px'></div></td>"
            f"<td style='padding-left:6px'>{escape(fmt(row.get(value)))}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def render_html(figures: DigestFigures) -> str:
    t = figures.totals

    def tile(name: str, now: str, change: str) -> str:
        return (
            f"<td style='padding:8px 16px;border:1px solid #ddd'><div style='color:#666'>{name}</div>"
            f"<div style='font-size:20px'><b>{escape(now)}</b></div><div style='color:#666'>{escape(change)}</div></td>"
        )

    body = [
        "<!doctype html><html><body style='font-family:Arial,sans-serif;font-size:14px;color:#111'>",
        f"<h2>{escape(subject(figures))}</h2>",
        f"<p style='color:#555'>{escape(_window(figures))}</p><table><tr>",
        tile(
            "Spend", money(t.get("cost_usd")), f"{pct(t.get('cost_usd_delta_pct'))} vs {money(t.get('cost_usd_prev'))}"
        ),
        tile("Calls", f"{t.get('calls', 0):,}", f"{pct(t.get('calls_delta_pct'))}"),
        tile("Error rate", ratio(t.get("error_rate")), f"was {ratio(t.get('error_rate_prev'))}"),
        tile("p95 latency", ms(t.get("latency_p95")), f"was {ms(t.get('latency_p95_prev'))}"),
        "</tr></table>",
    ]
    for section, dim in GROUPS:
        body.append(f"<h3>{_TITLES[section]}</h3>")
        body.append(_bars([{**r, "label": r[dim]} for r in figures.groups[section]], "label", "cost_usd", money))
    body.append("<h3>What changed (spend by service and model)</h3><ul>")
    for mover in figures.movers["contributors"]:
        who = " / ".join(str(mover[d]) for d in figures.movers["dimensions"])
        body.append(
            f"<li>{escape(who)}: {money(mover['before'])} &rarr; {money(mover['now'])}"
            f" ({money(mover['contribution'])})</li>"
        )
    body.append("</ul><h3>Error rate per bucket</h3>")
    trend = [{**p, "label": str(p["bucket"])[:16].replace("T", " ")} for p in figures.trend]
    body.append(_bars(trend, "label", "error_rate", ratio, "#c62828"))
    body.append("<h3>p95 latency per bucket</h3>")
    body.append(_bars(trend, "label", "latency_p95", ms, "#ef6c00"))
    if figures.budgets:
        body.append("<h3>Budgets</h3><ul>")
        body += [f"<li>{escape(budget_line(b))}</li>" for b in figures.budgets]
        body.append("</ul>")
    body.append(f"<h3>Firing alerts ({len(figures.firing)})</h3><ul>")
    for alert in figures.firing:
        body.append(
            f"<li>{escape(alert.labels.get('alertname', 'alert'))} {escape(alert.annotations.get('summary', ''))}</li>"
        )
    body.append(f"</ul><p><a href='{escape(figures.link, quote=True)}'>Open in callscope</a></p>")
    body.append("<p style='color:#777;font-size:12px'>The figures are attached as CSV. Sent by callscope.</p>")
    body.append("</body></html>")
    return "".join(body)


def payload(figures: DigestFigures) -> dict[str, Any]:
    """What the outbox stores: the message as rendered when the slot came (retries send the same bytes)."""
    day = figures.window.end.date().isoformat()
    return {
        "digest": figures.digest.name,
        "period_from": figures.window.start.isoformat(),
        "period_to": figures.window.end.isoformat(),
        "subject": subject(figures),
        "text": render_text(figures),
        "html": render_html(figures),
        "link": figures.link,
        "attachments": [
            {
                "filename": f"callscope-{figures.digest.name}-{day}.csv",
                "content_type": "text/csv",
                "content": csv_text(figures),
            }
        ],
    }


def digest_email(row: OutboxRow, sender: str, domain: str) -> EmailMessage:
    data = row.payload
    msg = email_render.envelope(row, sender, domain, data["subject"])
    msg["X-Callscope-Digest"] = data["digest"]
    msg.set_content(data["text"])
    msg.add_alternative(data["html"], subtype="html")
    for attachment in data["attachments"]:
        maintype, subtype = attachment["content_type"].split("/", 1)
        msg.add_attachment(
            attachment["content"].encode(), maintype=maintype, subtype=subtype, filename=attachment["filename"]
        )
    return msg
