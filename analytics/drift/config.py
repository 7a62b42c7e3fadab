"""The drift job's settings, validated: windows, minimum sample, per-metric tests and thresholds, pinned baselines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from analytics.drift import stattests
from analytics.drift.metrics import DRIFT_METRICS
from analytics.drift.stattests import Score
from core.settings import Settings, SettingsError


@dataclass(frozen=True)
class MetricTest:
    """A metric's test (None: the automatic choice) and threshold (None: the test's default)."""

    test: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class DriftConfig:
    current: timedelta = timedelta(hours=24)
    reference: timedelta = timedelta(days=7)
    min_samples: int = 100
    tests: Mapping[str, MetricTest] = field(default_factory=dict)
    baselines: Mapping[str, str] = field(default_factory=dict)  # service -> release pinned as its reference
    retention: timedelta = timedelta(days=90)

    def test_for(self, metric: str) -> MetricTest:
        return self.tests.get(metric, MetricTest())

    @staticmethod
    def from_settings(settings: Settings) -> DriftConfig:
        return DriftConfig(
            current=timedelta(hours=settings.drift_current_hours),
            reference=timedelta(days=settings.drift_reference_days),
            min_samples=settings.drift_min_samples,
            tests=parse_tests(settings.drift_tests),
            baselines=dict(settings.drift_baselines),
            retention=timedelta(days=settings.detection_retention_days),
        )


def parse_tests(raw: Mapping[str, str]) -> dict[str, MetricTest]:
    """{metric: "test", "test:threshold" or ":threshold"} -> MetricTest per metric; SettingsError names what is
    wrong (an unknown metric or test, a test that does not apply to the metric, a threshold out of range)."""
    out: dict[str, MetricTest] = {}
    for metric, spec in raw.items():
        if metric not in DRIFT_METRICS:
            raise SettingsError(f"drift_tests: unknown drift metric {metric!r}; known: {', '.join(DRIFT_METRICS)}")
        name, _, limit = spec.partition(":")
        name = name.strip() or None
        if name is not None:
            if name not in stattests.REGISTRY:
                raise SettingsError(
                    f"drift_tests: {metric}: unknown test {name!r}; known: {', '.join(stattests.REGISTRY)}"
                )
            test = stattests.REGISTRY[name]
            if DRIFT_METRICS[metric].kind not in test.kinds:
                raise SettingsError(
                    f"drift_tests: {metric}: the {name} test does not apply to {DRIFT_METRICS[metric].kind} data"
                )
        threshold = None
        if limit.strip():
            try:
                threshold = float(limit)
            except ValueError:
                raise SettingsError(f"drift_tests: {metric}: threshold {limit!r} is not a number") from None
            p_value = name is not None and stattests.REGISTRY[name].score_kind is Score.P_VALUE
            if threshold <= 0 or (p_value and threshold >= 1):
                raise SettingsError(f"drift_tests: {metric}: threshold {threshold} is out of range")
        out[metric] = MetricTest(name, threshold)
    return out
