"""The two distributions behind one drift verdict, for drawing them overlaid: shares per histogram bin (the same
bins for both windows), the empirical CDF at every percentile, or the shares of each category."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np

from analytics.drift.compare import Scope, Windows, decide, load_sample
from analytics.drift.config import DriftConfig
from analytics.drift.metrics import DRIFT_METRICS
from analytics.drift.stattests import Kind, Sample
from analytics.histogram import edges_for

BINS = 30
ECDF_POINTS = np.linspace(0.0, 1.0, 101)


def _edges(values: np.ndarray, bins: int) -> tuple[list[float], str]:
    """Bins over every value of both windows: geometric when the values are positive and span more than 20x
    (tokens, latencies and costs do), else linear."""
    low, high = float(values.min()), float(values.max())
    positive = values[values > 0]
    if len(positive) == len(values) and high > 20 * low:
        return edges_for(low, high, bins, "log"), "log"
    return edges_for(low, high, bins, "linear"), "linear"


def _numeric(sample: Sample, bins: int) -> dict[str, Any]:
    both = np.concatenate([sample.reference, sample.current])
    out: dict[str, Any] = {"kind": Kind.NUMERIC.value}
    if not len(both):
        return {**out, "edges": [], "scale": "linear", "reference": None, "current": None}
    edges, scale = _edges(both, bins)
    out.update(edges=edges, scale=scale)
    for name, values in (("reference", sample.reference), ("current", sample.current)):
        if not len(values):
            out[name] = None
            continue
        counts = np.histogram(values, edges)[0]
        out[name] = {
            "n": len(values),
            "shares": (counts / len(values)).tolist(),
            "ecdf": {"p": ECDF_POINTS.tolist(), "x": np.quantile(values, ECDF_POINTS).tolist()},
            "mean": float(values.mean()),
            "median": float(np.median(values)),
        }
    return out


def _categorical(sample: Sample) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": Kind.CATEGORICAL.value, "labels": list(sample.labels)}
    for name, counts in (("reference", sample.reference), ("current", sample.current)):
        total = counts.sum()
        out[name] = {"n": int(total), "shares": (counts / total).tolist()} if total else None
    return out


def distribution(
    db: duckdb.DuckDBPyConnection,
    cell: tuple[str | None, str | None, str | None],
    metric: str,
    windows: Windows,
    config: DriftConfig,
    *,
    bins: int = BINS,
) -> dict[str, Any]:
    """Both windows' distributions of one cell and metric, and the verdict on them (as the job would give it)."""
    spec = DRIFT_METRICS[metric]
    sample = load_sample(db, windows, Scope(cell=cell), spec)
    status, result = decide(sample, metric, config)
    body: dict[str, Any] = {
        "project": cell[0],
        "service": cell[1],
        "model": cell[2],
        "metric": metric,
        "unit": spec.unit,
        "status": status.value,
        "n_reference": sample.n_reference,
        "n_current": sample.n_current,
        "min_samples": config.min_samples,
        "test": None,
        "reference_from": windows.reference.start,
        "reference_to": windows.reference.end,
        "current_from": windows.current.start,
        "current_to": windows.current.end,
        "baseline": windows.baseline,
    }
    if result is not None:
        body.update(
            test=result.test,
            score=result.score,
            threshold=result.threshold,
            p_value=result.p_value,
            effect_size=result.effect_size,
            effect_measure=result.effect_measure,
            effect_floor=result.effect_floor,
            severity=result.severity,
        )
    body["distribution"] = _numeric(sample, bins) if spec.kind is Kind.NUMERIC else _categorical(sample)
    return body
