"""The dispatcher: Alertmanager's dispatch and notification pipeline over the store, one tick at a time.

Each tick reads the alert instances evaluation wrote (alert_instances), routes each to its receivers, puts it in
its aggregation group (route + group_by label values), and flushes the groups whose timer is due: group_wait after
a group appears (at once when its alerts are already older than that), then every group_interval. A flush mutes
silenced and inhibited alerts and asks the notification log, per channel, whether the channel must hear about the
group now (Alertmanager's DedupStage: first notification, new alerts, resolved alerts, repeat_interval elapsed).

Exactly once: the tick runs in ONE store transaction that reads the alerts, writes the outbox rows it decides to
send, the notification-log entries saying what each channel was told, and the groups' timers. Either all of it is
committed or none: after a crash (even SIGKILL) the next tick sees either the decision with its outbox row, or
neither, and decides again. Nothing is sent from memory; the delivery worker sends what the outbox holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import duckdb

from alerts import message, outbox, silences
from alerts.inhibit import Inhibitor
from alerts.model import Alert, alerts_for_notification
from alerts.notify_config import Channel, NotifyConfig, Route

log = logging.getLogger("callscope.notify")

# Alertmanager keeps its notification log for 120 h; an entry older than that is forgotten, and a group still
# firing after it (e.g. silenced all that time) is notified as new. Resolved alerts older than it are not read.
NFLOG_RETENTION = timedelta(hours=120)


class Reason(StrEnum):
    FIRST = "first_notification"
    NEW_ALERTS = "new_alerts_in_group"
    ALL_RESOLVED = "all_alerts_resolved"
    NEW_RESOLVED = "new_resolved_alerts"
    REPEAT = "repeat_interval_elapsed"


@dataclass(frozen=True)
class LogEntry:
    """What a channel of a group was last told: the fingerprints it heard as firing and as resolved, and when."""

    firing: frozenset[str]
    resolved: frozenset[str]
    notified_at: datetime


def needs_update(
    entry: LogEntry | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    *,
    send_resolved: bool,
    repeat: timedelta,
    now: datetime,
) -> Reason | None:
    """Alertmanager's DedupStage.needsUpdate: why the channel must be told about the group now, or None."""
    if entry is None:
        return Reason.FIRST if firing else None
    if not firing <= entry.firing:
        return Reason.FIRST if not entry.firing else Reason.NEW_ALERTS
    if not firing:
        # Told even when resolved messages are off, so the log forgets the firing alerts.
        return Reason.ALL_RESOLVED if entry.firing else None
    if send_resolved and not resolved <= entry.resolved:
        return Reason.NEW_RESOLVED
    if entry.notified_at < now - repeat:
        return Reason.REPEAT
    return None


@dataclass
class GroupState:
    group_key: str
    route_id: str
    receiver: str
    labels: dict[str, str]
    created_at: datetime
    next_flush_at: datetime
    last_flush_at: datetime | None
    is_new: bool = False


@dataclass
class TickResult:
    flushed: list[str] = field(default_factory=list)  # group keys
    enqueued: list[int] = field(default_factory=list)  # outbox ids
    muted: dict[str, str] = field(default_factory=dict)  # fingerprint -> why (silence id or inhibiting alert)


def _load_groups(cur: duckdb.DuckDBPyConnection) -> dict[str, GroupState]:
    rows = cur.execute(
        "SELECT group_key, route_id, receiver, group_labels, created_at, next_flush_at, last_flush_at"
        " FROM notify_groups"
    ).fetchall()
    return {r[0]: GroupState(r[0], r[1], r[2], dict(r[3]), r[4], r[5], r[6]) for r in rows}


def _load_log(cur: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], LogEntry]:
    rows = cur.execute("SELECT group_key, channel, firing, resolved, notified_at FROM notify_log").fetchall()
    return {(g, c): LogEntry(frozenset(f), frozenset(r), t) for g, c, f, r, t in rows}


class Dispatcher:
    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        config: NotifyConfig,
        *,
        external_url: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self.config = config
        self.external_url = external_url
        self._clock = clock
        self.failures = 0

    def tick(self, now: datetime | None = None) -> TickResult:
        """One pass; everything it decides is committed together (or not at all, when it raises)."""
        now = now or self._clock()
        cur = self._db.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            cur.execute("BEGIN TRANSACTION")
            try:
                result = self._tick(cur, now)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        finally:
            cur.close()
        for outbox_id in result.enqueued:
            log.info("queued notification %d", outbox_id)
        return result

    def _tick(self, cur: duckdb.DuckDBPyConnection, now: datetime) -> TickResult:
        result = TickResult()
        alerts = alerts_for_notification(cur, now - NFLOG_RETENTION)
        groups = _load_groups(cur)
        nflog = _load_log(cur)
        result.muted = self._muted(cur, alerts, now)
        buckets: dict[str, tuple[Route, dict[str, str], list[Alert]]] = {}
        for alert in alerts:
            for route in self.config.route.match(alert.labels):
                key = route.group_key(alert.labels)
                buckets.setdefault(key, (route, route.group_labels(alert.labels), []))[2].append(alert)
        for key, (route, labels, candidates) in buckets.items():
            state = groups.pop(key, None)
            notified = frozenset().union(*(e.firing for (g, _), e in nflog.items() if g == key))
            since = (state.last_flush_at or state.created_at) if state else None
            members = [
                a
                for a in candidates
                if a.firing
                or a.fingerprint in notified
                or (since is not None and a.ends_at is not None and a.ends_at > since)
            ]
            if not members or (state is None and not any(a.firing for a in members)):
                if state is not None:
                    cur.execute("DELETE FROM notify_groups WHERE group_key = ?", [key])
                continue
            if state is None:
                state = self._new_group(key, route, labels, members, now)
            if now >= state.next_flush_at:
                result.enqueued += self._flush(cur, route, state, members, nflog, result.muted, now)
                result.flushed.append(key)
                state.last_flush_at = now
                state.next_flush_at = now + route.timings.group_interval
            self._save_group(cur, state)
        for key in groups:  # groups whose alerts are gone entirely (or whose route no longer exists)
            cur.execute("DELETE FROM notify_groups WHERE group_key = ?", [key])
        cur.execute("DELETE FROM notify_log WHERE notified_at < ?", [now - NFLOG_RETENTION])
        return result

    def _muted(self, cur: duckdb.DuckDBPyConnection, alerts: list[Alert], now: datetime) -> dict[str, str]:
        active = silences.active(cur, now)
        inhibitor = Inhibitor(self.config.inhibit_rules, [a for a in alerts if a.firing])
        muted: dict[str, str] = {}
        for alert in alerts:
            silence = next((s for s in active if s.mutes(alert.labels, now)), None)
            if silence is not None:
                muted[alert.fingerprint] = f"silence {silence.id}"
                continue
            source = inhibitor.inhibited_by(alert) if alert.firing else None
            if source is not None:
                muted[alert.fingerprint] = f"inhibited by {source.fingerprint}"
        return muted

    def _new_group(
        self, key: str, route: Route, labels: dict[str, str], members: list[Alert], now: datetime
    ) -> GroupState:
        # Alertmanager waits group_wait from the group's creation, but flushes at once when an alert's own
        # group_wait has already passed (an alert that fired while the dispatcher was not running).
        wait = route.timings.group_wait
        overdue = any(a.firing and a.starts_at + wait < now for a in members)
        return GroupState(key, route.id, route.receiver, labels, now, now if overdue else now + wait, None, True)

    def _save_group(self, cur: duckdb.DuckDBPyConnection, state: GroupState) -> None:
        if state.is_new:
            cur.execute(
                "INSERT INTO notify_groups VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    state.group_key,
                    state.route_id,
                    state.receiver,
                    state.labels,
                    state.created_at,
                    state.next_flush_at,
                    state.last_flush_at,
                ],
            )
            state.is_new = False
        else:
            cur.execute(
                "UPDATE notify_groups SET next_flush_at = ?, last_flush_at = ? WHERE group_key = ?",
                [state.next_flush_at, state.last_flush_at, state.group_key],
            )

    def _flush(
        self,
        cur: duckdb.DuckDBPyConnection,
        route: Route,
        state: GroupState,
        members: list[Alert],
        nflog: Mapping[tuple[str, str], LogEntry],
        muted: Mapping[str, str],
        now: datetime,
    ) -> list[int]:
        visible = [a for a in members if a.fingerprint not in muted]
        if not visible:
            return []  # as Alertmanager's pipeline: nothing left after muting, nothing to tell or to log
        firing = frozenset(a.fingerprint for a in visible if a.firing)
        resolved = frozenset(a.fingerprint for a in visible if not a.firing)
        receiver = self.config.receivers[route.receiver]
        enqueued = []
        for channel in receiver.channels:
            reason = needs_update(
                nflog.get((state.group_key, channel.id)),
                firing,
                resolved,
                send_resolved=channel.send_resolved,
                repeat=route.timings.repeat_interval,
                now=now,
            )
            if reason is None:
                continue
            sent = visible if channel.send_resolved else [a for a in visible if a.firing]
            outbox_id = self._enqueue(cur, channel, receiver.name, state, sent, reason, now) if sent else None
            if outbox_id is not None:
                enqueued.append(outbox_id)
            cur.execute(
                "INSERT OR REPLACE INTO notify_log VALUES (?, ?, ?, ?, ?, ?)",
                [state.group_key, channel.id, sorted(firing), sorted(resolved), now, outbox_id],
            )
        return enqueued

    def _enqueue(
        self,
        cur: duckdb.DuckDBPyConnection,
        channel: Channel,
        receiver: str,
        state: GroupState,
        alerts: Iterable[Alert],
        reason: Reason,
        now: datetime,
    ) -> int | None:
        payload = message.build(
            receiver=receiver,
            group_key=state.group_key,
            group_labels=state.labels,
            alerts=list(alerts),
            external_url=self.external_url,
            reason=reason.value,
        )
        return outbox.enqueue(
            cur,
            kind="alert",
            receiver=receiver,
            channel=channel.id,
            channel_type=channel.kind,
            target=channel.target(),
            payload=payload,
            summary=message.title(payload),
            now=now,
            group_key=state.group_key,
            reason=reason.value,
            dedup_key=f"alert:{channel.id}:{state.group_key}:{now.isoformat()}",
        )
