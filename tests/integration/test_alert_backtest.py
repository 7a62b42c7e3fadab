"""`callscope alerts test` replays rules over stored calls and finds the same firings as live evaluation did.

Live: the server's alerting (alerts/service.py) ticks through 40 minutes with a controlled clock over a real store
file, writing its state and history. Then the real CLI replays the same rules file over the stopped store, and
through a running server's read API; both must list exactly the episodes the live history holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from alerts.queries import connection_cursor
from alerts.service import Alerting
from tests.alert_calls import DASHBOARD, Store, call
from tests.helpers import ROOT, ServerProcess

T0 = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
RULES = """\
rules:
  - name: ErrorsByModel
    metric: error_rate
    group_by: [model]
    window: 2m
    op: ">"
    warning: 0.2
    critical: 0.5
    min_calls: 3
    for: 1m
    keep_firing_for: 1m
  - name: SlowP90
    metric: latency_p90
    window: 5m
    op: ">"
    critical: 1500
    interval: 30s
  - name: QuietService
    metric: calls
    filters: {service: summarizer}
    window: 3m
    op: "<"
    warning: 2
    no_data: alerting
  - name: SpendJump
    metric: cost_usd
    window: 5m
    op: ">"
    warning: 100
    relative_to: previous_window
"""


def traffic() -> list[dict]:
    """40 minutes of calls: an error burst on one model, a latency bump, a service that goes quiet."""
    rng = np.random.default_rng(23)
    rows = []
    for second in range(0, 40 * 60, 4):
        t = T0 + timedelta(seconds=second + float(rng.uniform(0, 3)))
        minute = second // 60
        model = ("gpt-4.1", "claude-sonnet-4", "gemini-2.5-flash")[int(rng.integers(3))]
        burst = model == "claude-sonnet-4" and (8 <= minute < 14 or 25 <= minute < 27)
        error = bool(rng.random() < (0.7 if burst else 0.05))
        slow = 18 <= minute < 24
        duration = float(rng.lognormal(np.log(2500 if slow else 700), 0.3))
        service = "summarizer" if (minute < 15 or minute >= 30) and rng.random() < 0.3 else "support-bot"
        cost = 0.01 * (6 if 31 <= minute < 33 else 1)  # a spend spike
        rows.append(call(t, model=model, error=error, duration_ms=round(duration, 3), service=service, cost_usd=cost))
    return rows


def live_firings(store: Store) -> list[tuple]:
    """Episodes from the live history: (rule, labels, starts_at, ends_at or None)."""
    open_: dict[str, list] = {}
    done = []
    firing = {"firing", "recovering"}
    for h in reversed(store.states.history(None, None, None, 100_000)):
        fp = h["fingerprint"]
        was, now = h["from_state"] in firing, h["to_state"] in firing
        if now and not was:
            open_[fp] = [h["rule_id"], h["labels"], h["changed_at"], None]
        elif was and not now:
            episode = open_.pop(fp)
            episode[3] = h["changed_at"]
            done.append(episode)
    done += open_.values()
    return sorted((r, tuple(sorted(labels.items())), s, e) for r, labels, s, e in done)


def replayed(output: str) -> tuple[list[tuple], int]:
    result = json.loads(output)
    episodes = []
    for rule in result["rules"]:
        for f in rule["firings"]:
            ends = datetime.fromisoformat(f["ends_at"]) if f["ends_at"] else None
            labels = tuple(sorted(f["labels"].items()))
            episodes.append((rule["name"], labels, datetime.fromisoformat(f["starts_at"]), ends))
    return sorted(episodes), result["notifications"]


def alerts_test(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "callscope.cli", "alerts", "test", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_backtest_gives_the_firings_of_live_evaluation(tmp_path: Path):
    data = tmp_path / "data"
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text(RULES)
    store = Store(data, traffic())
    clock = [T0]
    alerting = Alerting(store.states, lambda: connection_cursor(store.db), rules_file, DASHBOARD, lambda: clock[0])
    alerting.load()
    assert len(alerting.rules()) == 4
    end = T0 + timedelta(minutes=40)
    while clock[0] <= end:  # ticks every 7 s, as a busy server might: each rule at its own multiples
        alerting.tick()
        clock[0] += timedelta(seconds=7)
    assert alerting.tick_failures == 0
    live = live_firings(store)
    rules_fired = {episode[0] for episode in live}
    assert rules_fired == {"ErrorsByModel", "SlowP90", "QuietService", "SpendJump"}, live
    live_notifications = len(live) + sum(1 for e in live if e[3] is not None)
    store.close()

    window = ["--from", T0.isoformat(), "--to", (T0 + timedelta(minutes=40, seconds=6)).isoformat()]
    out = alerts_test(str(rules_file), "--data-dir", str(data), *window, "--json")
    assert out.returncode == 0, out.stderr
    episodes, notifications = replayed(out.stdout)
    assert episodes == live
    assert notifications == live_notifications

    text = alerts_test(str(rules_file), "--data-dir", str(data), *window)
    assert "notification(s) (firing + resolved)" in text.stdout
    assert f"Total: {len(live)} firing(s), {live_notifications} notification(s)" in text.stdout

    server = ServerProcess(data, env={"CALLSCOPE_ALERTS_FILE": str(tmp_path / "none.yaml")}).start()
    try:
        locked = alerts_test(str(rules_file), "--data-dir", str(data), *window)
        assert locked.returncode == 2 and "--server" in locked.stderr
        via_api = alerts_test(str(rules_file), "--server", server.http_url, *window, "--json")
        assert via_api.returncode == 0, via_api.stderr
        assert replayed(via_api.stdout) == (live, live_notifications)
    finally:
        server.stop()
