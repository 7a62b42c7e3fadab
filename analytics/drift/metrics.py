"""What drift is measured on: per (project, service, model) cell, the distribution of one statistic of its calls.

Numbers are taken from successful calls only (a failed call has no tokens and its duration is that of the
failure); time to first token exists for streamed calls; cost per call for priced ones. `model` is the model
asked for (request_model): a provider moving the snapshot behind a name is drift inside the cell, and failed
calls, which have no response model, stay in their cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.drift.stattests import Kind


@dataclass(frozen=True)
class DriftMetric:
    name: str
    kind: Kind
    column: str  # a column of `calls` (a fixed name, never caller text)
    calls: str  # which calls carry a value (fixed SQL)
    unit: str
    help: str


DRIFT_METRICS: dict[str, DriftMetric] = {
    m.name: m
    for m in (
        DriftMetric("input_tokens", Kind.NUMERIC, "input_tokens", "status = 'ok'", "tokens", "prompt tokens of a call"),
        DriftMetric(
            "output_tokens", Kind.NUMERIC, "output_tokens", "status = 'ok'", "tokens", "output tokens of a call"
        ),
        DriftMetric("latency", Kind.NUMERIC, "duration_ms", "status = 'ok'", "ms", "duration of a successful call"),
        DriftMetric("ttft", Kind.NUMERIC, "ttft_ms", "status = 'ok'", "ms", "time to first token of a streamed call"),
        DriftMetric("cost_per_call", Kind.NUMERIC, "cost_usd", "status = 'ok'", "USD", "cost of a priced call"),
        DriftMetric(
            "finish_reason",
            Kind.CATEGORICAL,
            "finish_reason",
            "finish_reason IS NOT NULL",
            "share",
            "mix of finish reasons (stop, length, tool_calls, ...)",
        ),
        DriftMetric(
            "error_type",
            Kind.CATEGORICAL,
            "error_type",
            "status = 'error'",
            "share",
            "mix of error types among failed calls",
        ),
    )
}
NUMERIC = tuple(m for m in DRIFT_METRICS.values() if m.kind is Kind.NUMERIC)
CATEGORICAL = tuple(m for m in DRIFT_METRICS.values() if m.kind is Kind.CATEGORICAL)
