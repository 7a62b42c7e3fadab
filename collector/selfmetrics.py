"""The collector's own counters, served as Prometheus text on /metrics."""

from __future__ import annotations

import threading
from collections import defaultdict


class CollectorStats:
    """Thread-safe counters and gauges. Names follow Prometheus conventions."""

    HELP = {
        "callscope_spans_received_total": ("counter", "Spans received in OTLP trace requests."),
        "callscope_calls_recorded_total": ("counter", "Model calls committed to the store."),
        "callscope_spans_recorded_total": ("counter", "Non-model spans committed to the store."),
        "callscope_spans_rejected_total": ("counter", "Spans rejected, by reason."),
        "callscope_requests_total": ("counter", "OTLP requests answered, by signal, transport and status."),
        "callscope_log_records_received_total": ("counter", "OTLP log records received."),
        "callscope_metric_points_received_total": ("counter", "OTLP metric data points received."),
        "callscope_queue_spans": ("gauge", "Rows waiting for the writer."),
        "callscope_commits_total": ("counter", "Write transactions committed."),
        "callscope_commit_failures_total": (
            "counter",
            "Write transactions that failed and were rolled back.",
        ),
        "callscope_commit_conflicts_total": (
            "counter",
            "Transactions redone with INSERT OR IGNORE because a row was already stored (a client re-sent it).",
        ),
        "callscope_calls_deduplicated_total": (
            "counter",
            "Calls not stored again because the same call (trace, span, start time) was already stored.",
        ),
        "callscope_worker_restarts_total": ("counter", "Ingest worker processes that died and were replaced."),
        "callscope_commit_seconds_sum": ("counter", "Total time spent committing write transactions."),
        "callscope_commit_seconds_max": ("gauge", "Slowest commit since start."),
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] += amount

    def set(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = value

    def max(self, name: str, value: float) -> None:
        key = (name, ())
        with self._lock:
            if value > self._values[key]:
                self._values[key] = value

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines: list[str] = []
        seen: set[str] = set()
        for (name, labels), value in items:
            if name not in seen:
                seen.add(name)
                kind, help_text = self.HELP.get(name, ("untyped", name))
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
