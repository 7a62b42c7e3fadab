"""How one call is laid out on the call page: its cost breakdown and every field as rows."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from dashboard import fmt


def cost_rows(call: dict[str, Any]) -> pl.DataFrame:
    """Token kinds (OTel semantics: cached inside input, reasoning inside output) and the cost lines."""

    def n(name: str) -> int:
        return int(call.get(name) or 0)

    uncached = max(n("input_tokens") - n("cache_read_tokens") - n("cache_write_tokens"), 0)
    rows = [
        ("Input tokens (all)", fmt.count(n("input_tokens"))),
        ("  of which uncached", fmt.count(uncached)),
        ("  of which cache reads", fmt.count(n("cache_read_tokens"))),
        ("  of which cache writes", fmt.count(n("cache_write_tokens"))),
        ("Output tokens (all)", fmt.count(n("output_tokens"))),
        ("  of which reasoning", fmt.count(n("reasoning_tokens"))),
        ("Cost (USD)", fmt.usd_exact(call.get("cost_usd")) if call.get("cost_usd") is not None else "unpriced"),
        *_part_rows(call.get("cost_parts")),
        ("Pricing", str(call.get("pricing") or "")),
        ("Price source", str(call.get("price_source") or "—")),
        ("Price entry used", (call.get("price_entry") or {}).get("label") or "genai-prices (no price book entry)"),
        *(
            (f"Before re-pricing run {h['run_id']} (USD)", fmt.usd_exact(h["old_cost_usd"]))
            for h in call.get("cost_history") or ()
        ),
        ("Cost reported by the client (USD)", fmt.usd_exact(call.get("reported_cost_usd"))),
    ]
    return pl.DataFrame({"item": [r[0] for r in rows], "value": [r[1] for r in rows]})


PARTS = {
    "input": "  uncached input",
    "cache_read": "  cache reads",
    "cache_write": "  cache writes",
    "output": "  output (with reasoning)",
}


def _part_rows(parts: dict[str, float] | None) -> list[tuple[str, str]]:
    """The cost by token kind, as the server priced it; nothing when it cannot be split (unpriced, tiered)."""
    if not parts:
        return []
    rows = [(f"{label} (USD)", fmt.usd_exact(parts.get(kind))) for kind, label in PARTS.items()]
    if "reasoning" in parts:  # a price book entry prices reasoning apart: output is then without it
        rows[-1] = ("  output (without reasoning) (USD)", fmt.usd_exact(parts["output"]))
        rows.append(("  reasoning (USD)", fmt.usd_exact(parts["reasoning"])))
    return rows


MONEY_FIELDS = {"cost_usd", "reported_cost_usd"}
MS_FIELDS = {"duration_ms", "ttft_ms"}


def field_value(key: str, value: Any) -> str:
    """A stored field as it reads: a dash when missing, durations to the microsecond, money to the micro-dollar,
    lists and maps as JSON."""
    if value is None:
        return fmt.DASH
    if key in MONEY_FIELDS:
        return fmt.usd_exact(value)
    if key in MS_FIELDS:
        return f"{value:,.3f} ms"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:,.6g}"
    return json.dumps(value, default=str)


def field_rows(call: dict[str, Any]) -> pl.DataFrame:
    skip = {"content_events", "input_content", "output_content", "cost_parts", "price_entry", "cost_history"}
    names, values = [], []
    for key, value in call.items():
        if key in skip:
            continue
        names.append(key)
        values.append(field_value(key, value))
    return pl.DataFrame({"field": names, "value": values})
