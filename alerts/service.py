"""Alerting inside `callscope serve`: the rules (file + API), the evaluation schedule, reloads.

One APScheduler job ticks every second (like analytics/jobs.py's rollups, a failing run logs and the next one
carries on). Each tick:
1. reloads the rules file if it changed (or a reload was requested, e.g. by SIGHUP);
2. evaluates every rule whose next instant has come. A rule with interval I is evaluated at the multiples of I
   since the epoch, the instants `callscope alerts test` replays; rules due at the same instant are evaluated
   together, so they share queries. An instant missed while the server was busy or down is skipped, as
   Prometheus skips missed evaluations: the next one is the latest due.
3. resolves and forgets the instances of rules that were deleted.

An invalid rules file keeps the rules loaded before (or, after a restart, the last good copy kept in the store)
and is reported in the log and the API with file, line, rule and field.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from alerts.backtest import aligned
from alerts.evaluate import Evaluator, retire
from alerts.queries import CursorFactory, StoreSource
from alerts.rulefile import Problem, RulesFile, load_file, parse_text
from alerts.rules import Origin, Rule, RuleError, parse_rule
from alerts.store import DuckStateStore

log = logging.getLogger("callscope.alerts")

Clock = Callable[[], datetime]


class RuleConflict(Exception):
    """The rule cannot be created, changed or deleted this way (HTTP 409); the message says why."""


class RuleNotFound(LookupError):
    pass


@dataclass
class FileStatus:
    path: str
    loaded_at: datetime | None = None
    rules: int = 0
    sha256: str | None = None
    problems: tuple[Problem, ...] = ()
    note: str | None = None  # e.g. running on the last good copy kept in the store

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "rules": self.rules,
            "ok": not self.problems,
            "problems": [p.as_dict() for p in self.problems],
            "note": self.note,
        }


@dataclass
class _Signature:
    mtime_ns: int
    size: int
    inode: int


@dataclass
class Alerting:
    """The alerting part of a server: rules, evaluation and the state store. `clock` is injectable for tests."""

    states: DuckStateStore
    cursor: CursorFactory
    rules_path: Path
    dashboard_url: str
    clock: Clock = field(default=lambda: datetime.now(UTC))
    tick_seconds: float = 1.0
    # Other processes change the API rules too (the nodes of a lake): the stored rules are re-read when they changed.
    shared: bool = False

    def __post_init__(self) -> None:
        self.evaluator = Evaluator(StoreSource(self.cursor), self.states, self.dashboard_url)
        self.file = FileStatus(str(self.rules_path))
        self._file_rules: tuple[Rule, ...] = ()
        self._api_rules: dict[str, Rule] = {}
        self._lock = threading.RLock()
        self._signature: _Signature | None = None
        self._reload_requested = threading.Event()
        self._last_eval: dict[str, datetime] = {}
        self._swept_version = -1
        self._version = 0
        self.tick_failures = 0
        self.last_cycle: dict[str, Any] | None = None  # the latest evaluation run: when, rules, queries, seconds
        self.scheduler: BackgroundScheduler | None = None
        self._api_signature: tuple | None = None

    # -- rules -----------------------------------------------------------------------------------------------

    def load(self) -> None:
        """At start (a lake: when this node takes the job lease): the API rules from the store, then the rules file
        (or its last good copy); the alert state as the store holds it (another node may have evaluated)."""
        self.states.forget()
        self._load_api_rules()
        self._last_eval = self.states.last_evaluated()
        self.reload_file(force=True, starting=True)

    def _load_api_rules(self) -> None:
        signature = self.states.api_rules_signature()
        api_rules = {}
        for spec in self.states.api_rules():
            try:
                rule = parse_rule(spec, Origin("api"))
            except RuleError as exc:  # stored by an older version with other checks: keep it visible in the log
                log.error("alerts: stored API rule %r is no longer valid and is skipped: %s", spec.get("name"), exc)
                continue
            api_rules[rule.name] = rule
        with self._lock:
            if api_rules != self._api_rules:
                self._version += 1
            self._api_rules = api_rules
            self._api_signature = signature

    def rules(self) -> list[Rule]:
        if self.shared and self.states.api_rules_signature() != self._api_signature:
            with self._lock:  # one reader re-reads them; the others wait for it
                if self.states.api_rules_signature() != self._api_signature:
                    self._load_api_rules()
        with self._lock:
            return [*self._file_rules, *self._api_rules.values()]

    def rule(self, name: str) -> Rule:
        for rule in self.rules():
            if rule.name == name:
                return rule
        raise RuleNotFound(f"no rule named {name!r}")

    def request_reload(self) -> None:
        """Ask the next tick to re-read the rules file (SIGHUP handler: returns at once)."""
        self._reload_requested.set()

    def reload_file(self, *, force: bool = False, starting: bool = False) -> FileStatus:
        """Re-read the rules file when it changed (or `force`); an invalid file keeps the rules there were."""
        signature = self._stat()
        if not force and signature == self._signature:
            return self.file
        self._signature = signature
        path = str(self.rules_path)
        if signature is None:  # missing
            if self._file_rules:  # an editor replacing the file, or a mistake: never drop rules silently
                problem = Problem(path, None, None, None, f"file missing; keeping its {len(self._file_rules)} rules")
                self._report(RulesFile(path, (), (problem,)))
            return self.file
        with self._lock:
            taken = list(self._api_rules)
        loaded = load_file(self.rules_path, taken)
        if not loaded.ok:
            self._report(loaded)
            if starting:
                self._use_last_good(loaded)
            return self.file
        if loaded.sha256 == self.file.sha256 and not self.file.problems:
            return self.file
        with self._lock:
            self._file_rules = loaded.rules
            self._version += 1
        self.file = FileStatus(path, self.clock(), len(loaded.rules), loaded.sha256)
        self.states.save_file(path, loaded.content, loaded.sha256)
        log.info("alerts: loaded %d rule(s) from %s", len(loaded.rules), path)
        return self.file

    def _use_last_good(self, bad: RulesFile) -> None:
        """At start with an invalid file: run the rules of the last good copy kept in the store."""
        path = str(self.rules_path)
        content = self.states.last_good_file(path)
        if content is None:
            return
        with self._lock:
            taken = list(self._api_rules)
        good = parse_text(content, path, taken)
        if not good.ok:
            return
        with self._lock:
            self._file_rules = good.rules
            self._version += 1
        note = f"running the last good copy of {path} kept in the store ({len(good.rules)} rules)"
        self.file = FileStatus(path, self.clock(), len(good.rules), good.sha256, bad.problems, note)
        log.warning("alerts: %s", note)

    def _report(self, loaded: RulesFile) -> None:
        if self.file.problems != loaded.problems:
            for problem in loaded.problems:
                log.error("alerts: %s", problem)
            log.error("alerts: %s is invalid; keeping the %d rule(s) loaded before", loaded.path, self.file.rules)
        self.file = FileStatus(
            self.file.path, self.file.loaded_at, self.file.rules, self.file.sha256, loaded.problems, self.file.note
        )

    def _stat(self) -> _Signature | None:
        try:
            st = self.rules_path.stat()
        except FileNotFoundError:
            return None
        return _Signature(st.st_mtime_ns, st.st_size, st.st_ino)

    # -- API rules -------------------------------------------------------------------------------------------

    def create(self, spec: Mapping[str, Any]) -> Rule:
        rule = parse_rule(spec, Origin("api"))
        with self._lock:
            if any(r.name == rule.name for r in self._file_rules):
                raise RuleConflict(f"{rule.name!r} is defined in {self.rules_path}; choose another name")
            if not self.states.put_api_rule(rule.name, rule.spec(), create=True):
                raise RuleConflict(f"a rule named {rule.name!r} exists; edit it with PUT")
            self._api_rules[rule.name] = rule
            self._version += 1
            self._api_signature = None  # re-read at the next look: another node may change them too
        log.info("alerts: rule %r created through the API", rule.name)
        return rule

    def update(self, name: str, spec: Mapping[str, Any]) -> Rule:
        rule = parse_rule({**spec, "name": spec.get("name", name)}, Origin("api"))
        if rule.name != name:
            raise RuleError("name", f"a rule cannot be renamed ({name!r} -> {rule.name!r}); create a new one", name)
        with self._lock:
            self._writable(name)
            if not self.states.put_api_rule(name, rule.spec(), create=False):
                raise RuleNotFound(f"no rule named {name!r}")
            self._api_rules[name] = rule
            self._version += 1
            self._api_signature = None  # re-read at the next look: another node may change them too
        log.info("alerts: rule %r changed through the API", name)
        return rule

    def delete(self, name: str) -> None:
        with self._lock:
            self._writable(name)
            if not self.states.delete_api_rule(name):
                raise RuleNotFound(f"no rule named {name!r}")
            self._api_rules.pop(name, None)
            self._version += 1
            self._api_signature = None  # re-read at the next look: another node may change them too
        log.info("alerts: rule %r deleted through the API; its alerts resolve at the next tick", name)

    def _writable(self, name: str) -> None:
        for rule in self._file_rules:
            if rule.name == name:
                raise RuleConflict(f"{name!r} is defined in {rule.origin.file} (read-only here); edit that file")
        if name not in self._api_rules:
            raise RuleNotFound(f"no rule named {name!r}")

    # -- evaluation ------------------------------------------------------------------------------------------

    def tick(self) -> None:
        """One scheduler run: reload the file if needed, sweep deleted rules, evaluate what is due."""
        try:
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                log.info("alerts: reloading %s (requested)", self.rules_path)
                self.reload_file(force=True)
            else:
                self.reload_file()
            self.run_due(self.clock())
        except Exception:
            self.tick_failures += 1
            log.exception("alerts: evaluation tick failed; the next tick retries")

    def run_due(self, now: datetime) -> int:
        """Evaluate every rule due at `now` (at its latest instant not yet evaluated); returns how many."""
        with self._lock:
            version = self._version
        # The rules after their version: a rule deleted in between is swept now or, its version being newer, at
        # the next tick; read the other way round, its alerts would never be swept (they would fire forever).
        rules = self.rules()
        if version != self._swept_version:
            self.sweep(now, [r.id for r in rules])
            self._swept_version = version
        due: dict[datetime, list[Rule]] = {}
        for rule in rules:
            at = aligned(now, rule.interval)
            last = self._last_eval.get(rule.id)
            if last is None or at > last:
                due.setdefault(at, []).append(rule)
        started = time.perf_counter()
        queries, query_seconds = 0, 0.0
        for at in sorted(due):
            batch = due[at]
            changes = self.evaluator.evaluate(batch, at)
            queries += changes.queries
            query_seconds += changes.query_seconds
            for rule in batch:
                self._last_eval[rule.id] = at
        evaluated = sum(len(b) for b in due.values())
        if evaluated:
            self.last_cycle = {
                "at": max(due),
                "rules": evaluated,
                "queries": queries,
                "query_seconds": round(query_seconds, 4),
                "seconds": round(time.perf_counter() - started, 4),
            }
        return evaluated

    def sweep(self, now: datetime, rule_ids: list[str]) -> None:
        """Resolve and forget the instances of rules that no longer exist."""
        orphans = self.states.orphans(rule_ids)
        if orphans:
            self.states.save(retire(orphans, now))

    def start(self) -> None:
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        self.scheduler.add_job(
            self.tick, "interval", seconds=self.tick_seconds, id="alerts", next_run_time=datetime.now(UTC)
        )
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
