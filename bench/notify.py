"""Notification dispatcher benchmark: seconds per dispatcher tick over many alert instances, in a real store.

Method: a fresh store with N firing alert instances (rules x models x 2 severities, written into alert_instances as
evaluation would), a route grouping by alertname and model (one group per rule and model), a receiver with an
e-mail and a webhook channel, and the default inhibition (each critical mutes its warning). Times, with a
controlled clock:
- the first tick (creates every group),
- the flush tick (group_wait later: decides and queues 2 notifications per group, in one transaction),
- a steady tick (nothing to do: every group waits for its group_interval),
- a tick where 1% of the instances resolved (their groups flush: resolve messages).
Nothing is delivered (the outbox is only filled).

Run: `.venv/bin/python bench/notify.py [--rules 200] [--models 20]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

# Run as a script, this folder is first on sys.path and its alerts.py would hide the alerts package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.dispatch import Dispatcher
from alerts.model import fingerprint
from alerts.notify_config import parse_notify_config
from core.store import connect

CONFIG = {
    "route": {"receiver": "team", "group_by": ["alertname", "model"]},
    "receivers": [
        {
            "name": "team",
            "email_configs": [{"to": ["team@example.com"]}],
            "webhook_configs": [{"url": "http://127.0.0.1:9/hook"}],
        }
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--models", type=int, default=20)
    args = parser.parse_args()
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    rows = []
    for r in range(args.rules):
        for m in range(args.models):
            for severity in ("warning", "critical"):
                labels = {"alertname": f"rule-{r}", "severity": severity, "model": f"model-{m}", "team": "llm"}
                rows.append(
                    {
                        "fingerprint": fingerprint(labels),
                        "rule_id": f"rule-{r}",
                        "labels": list(labels.items()),
                        "annotations": [("summary", f"rule {r} breached on model-{m}")],
                        "state": "firing",
                        "value": 1.0,
                        "threshold": 0.5,
                        "starts_at": t0,
                    }
                )
    with tempfile.TemporaryDirectory() as folder:
        db = connect(Path(folder) / "bench.duckdb")
        table = pa.Table.from_pylist(
            rows,
            schema=pa.schema(
                [
                    ("fingerprint", pa.string()),
                    ("rule_id", pa.string()),
                    ("labels", pa.map_(pa.string(), pa.string())),
                    ("annotations", pa.map_(pa.string(), pa.string())),
                    ("state", pa.string()),
                    ("value", pa.float64()),
                    ("threshold", pa.float64()),
                    ("starts_at", pa.timestamp("us", tz="UTC")),
                ]
            ),
        )
        db.register("new_alerts", table)
        db.execute(
            "INSERT INTO alert_instances (fingerprint, rule_id, labels, annotations, state, value, threshold,"
            " starts_at) SELECT * FROM new_alerts"
        )
        dispatcher = Dispatcher(db, parse_notify_config(CONFIG))
        print(f"{len(rows)} alert instances, {args.rules * args.models} groups, 2 channels each")

        def timed(name: str, now: datetime) -> None:
            start = time.perf_counter()
            result = dispatcher.tick(now)
            seconds = time.perf_counter() - start
            print(
                f"{name:<22} {seconds:7.3f} s  flushed {len(result.flushed):5d} groups, queued"
                f" {len(result.enqueued):5d} notifications, {len(result.muted)} muted"
            )

        timed("first tick", t0)
        timed("flush tick", t0 + timedelta(seconds=30))
        timed("steady tick", t0 + timedelta(seconds=32))
        resolved = [r["fingerprint"] for r in rows[:: max(1, len(rows) // (len(rows) // 100 or 1))]][: len(rows) // 100]
        db.execute(
            "UPDATE alert_instances SET ends_at = ? WHERE list_contains(?, fingerprint)",
            [t0 + timedelta(seconds=60), resolved],
        )
        timed("1% resolved tick", t0 + timedelta(seconds=330))
        timed("steady tick", t0 + timedelta(seconds=332))
        db.close()


if __name__ == "__main__":
    main()
