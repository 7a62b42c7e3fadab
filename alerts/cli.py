"""`callscope alerts check FILE...` and `callscope alerts test FILE --from --to`.

check validates rules files as `promtool check rules` does: one line per problem (file:line: rule: field:
message), exit status 0 when every file is valid, 1 otherwise.

test replays a file's rules over stored calls (alerts/backtest.py) and prints, per rule, when each instance
would have fired and resolved, and how many notifications (firing + resolved) that makes. It reads a stopped
store directly, or a running server through its read API (--server).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from alerts.backtest import Replay, replay
from alerts.queries import ApiSource, MetricSource, StoreSource, connection_cursor
from alerts.render import format_value, iso
from alerts.rulefile import load_file
from alerts.rules import Rule, format_duration
from analytics.timewin import parse_instant, parse_zone


def check(paths: Sequence[str], out: TextIO = sys.stdout) -> int:
    failed = False
    for path in paths:
        print(f"Checking {path}", file=out)
        if not Path(path).is_file():
            print(f"  FAILED: {path}: no such file", file=out)
            failed = True
            continue
        loaded = load_file(Path(path))
        if loaded.ok:
            print(f"  SUCCESS: {len(loaded.rules)} rules found", file=out)
            continue
        failed = True
        print(f"  FAILED: {len(loaded.problems)} problem(s)", file=out)
        for problem in loaded.problems:
            print(f"{problem}", file=out)
    return 1 if failed else 0


def test(
    path: str,
    start: datetime,
    end: datetime,
    *,
    db_path: Path | None = None,
    server: str | None = None,
    read_key: str | None = None,
    dashboard_url: str = "",
    as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Replay; exit status 0, 1 for an invalid rules file (2 is left to the caller for store/connection)."""
    if not Path(path).is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 1
    loaded = load_file(Path(path))
    if not loaded.ok:
        for problem in loaded.problems:
            print(problem, file=sys.stderr)
        return 1
    source: MetricSource
    db = None
    if server:
        source = ApiSource(server, read_key)
        where = server
    else:
        from core.store import connect

        assert db_path is not None
        db = connect(db_path, read_only=True)
        source = StoreSource(lambda: connection_cursor(db))
        where = str(db_path)
    started = time.perf_counter()
    try:
        result = replay(loaded.rules, source, start, end, dashboard_url=dashboard_url)
    finally:
        if db is not None:
            db.close()
        if isinstance(source, ApiSource):
            source.close()
    seconds = time.perf_counter() - started
    if as_json:
        json.dump(_as_json(loaded.rules, result, path, where, seconds), out, indent=2)
        out.write("\n")
    else:
        _print(loaded.rules, result, path, where, seconds, out)
    return 0


def _as_json(rules: Sequence[Rule], result: Replay, path: str, where: str, seconds: float) -> dict:
    return {
        "file": path,
        "source": where,
        "from": iso(result.start),
        "to": iso(result.end),
        "evaluations": result.evaluations,
        "seconds": round(seconds, 3),
        "rules": [
            {
                "name": rule.name,
                "firings": [f.as_dict() for f in result.firings if f.rule == rule.id],
                "notifications": result.notifications(rule.id),
            }
            for rule in rules
        ],
        "notifications": result.notifications(),
    }


def _print(rules: Sequence[Rule], result: Replay, path: str, where: str, seconds: float, out: TextIO) -> None:
    print(f"Replaying {len(rules)} rule(s) of {path} over {where}, {iso(result.start)} to {iso(result.end)}", file=out)
    for rule in rules:
        firings = [f for f in result.firings if f.rule == rule.id]
        if not firings:
            print(f"{rule.name}: would not have fired", file=out)
            continue
        print(
            f"{rule.name}: {len(firings)} firing(s), {result.notifications(rule.id)} notification(s)"
            " (firing + resolved)",
            file=out,
        )
        for f in firings:
            labels = " ".join(f"{k}={v}" for k, v in f.labels.items() if k != "alertname")
            ended = f"{iso(f.ends_at)} ({format_duration(f.ends_at - f.starts_at)})" if f.ends_at else "still firing"
            print(f"  {iso(f.starts_at)} -> {ended}  {labels}  peak {format_value(f.peak, rule.unit)}", file=out)
    print(
        f"Total: {len(result.firings)} firing(s), {result.notifications()} notification(s) (firing + resolved);"
        f" {result.evaluations} evaluations in {seconds:.1f} s",
        file=out,
    )


def parse_time(text: str | None, name: str) -> datetime:
    """--from/--to: ISO 8601 (UTC when no offset is given); None is now."""
    if text is None:
        return datetime.now(UTC)
    return parse_instant(text, parse_zone("UTC"), name)
