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
import pyarrow as pa

from alerts import message, outbox, silences
from alerts.inhibit import Inhibitor
from alerts.model import Alert, alerts_for_notification
from alerts.notify_config import Channel, NotifyConfig, Route
from core.store import WriteLock, transaction

log = logging.getLogger("callscope.notify")

# Alertmanager keeps its notification log for 120 h; an entry older than that is forgotten, and a group still
# firing after it (e.g. silenced all that time) is notified as new.
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


@dataclass
class TickResult:
    flushed: list[str] = field(default_factory=list)  # group keys
    enqueued: list[int] = field(default_factory=list)  # outbox ids
    muted: dict[str, str] = field(default_factory=dict)  # fingerprint -> why (silence id or inhibiting alert)


@dataclass
class _Plan:
    """What a tick decided, written at its end with a few set-based statements (one per table and kind of
    change) inside the tick's transaction: thousands of groups flush in one go without a statement each."""

    messages: list[outbox.NewMessage] = field(default_factory=list)
    log: list[tuple[str, str, list[str], list[str], str | None]] = field(default_factory=list)  # + dedup key
    new_groups: list[GroupState] = field(default_factory=list)
    flushed_groups: list[GroupState] = field(default_factory=list)
    gone_groups: list[str] = field(default_factory=list)


_GROUP_SCHEMA = pa.schema(
    [
        ("group_key", pa.string()),
        ("route_id", pa.string()),
        ("receiver", pa.string()),
        ("group_labels", pa.map_(pa.string(), pa.string())),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("next_flush_at", pa.timestamp("us", tz="UTC")),
        ("last_flush_at", pa.timestamp("us", tz="UTC")),
    ]
)
_LOG_SCHEMA = pa.schema(
    [
        ("group_key", pa.string()),
        ("channel", pa.string()),
        ("firing", pa.list_(pa.string())),
        ("resolved", pa.list_(pa.string())),
        ("notified_at", pa.timestamp("us", tz="UTC")),
        ("outbox_id", pa.int64()),
    ]
)


def _load_groups(cur: duckdb.DuckDBPyConnection) -> dict[str, GroupState]:
    """The groups' timers; their labels are not read back (converting a MAP per row is slow): a flush takes them
    from its route and alerts, which is what they were made of."""
    rows = cur.execute(
        "SELECT group_key, route_id, receiver, created_at, next_flush_at, last_flush_at FROM notify_groups"
    ).fetchall()
    return {r[0]: GroupState(r[0], r[1], r[2], {}, r[3], r[4], r[5]) for r in rows}


def _load_log(cur: duckdb.DuckDBPyConnection) -> dict[str, dict[str, LogEntry]]:
    """The notification log by group key, then channel."""
    log: dict[str, dict[str, LogEntry]] = {}
    rows = cur.execute("SELECT group_key, channel, firing, resolved, notified_at FROM notify_log").fetchall()
    for group_key, channel, firing, resolved, notified_at in rows:
        log.setdefault(group_key, {})[channel] = LogEntry(frozenset(firing), frozenset(resolved), notified_at)
    return log


def _with_table(cur: duckdb.DuckDBPyConnection, name: str, table: pa.Table, sql: str, params=None) -> list:
    cur.register(name, table)
    try:
        return cur.execute(sql, params or []).fetchall()
    finally:
        cur.unregister(name)


class Dispatcher:
    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        config: NotifyConfig,
        *,
        external_url: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        job_lock: WriteLock | None = None,
    ) -> None:
        """`job_lock`: held around each tick's transaction (a lake: the commit lock, and the job lease still held)."""
        self._db = db
        self._job_lock = job_lock
        self.config = config
        self.external_url = external_url
        self._clock = clock

    def tick(self, now: datetime | None = None) -> TickResult:
        """One pass; everything it decides is committed together (or not at all, when it raises)."""
        now = now or self._clock()
        with transaction(self._db, self._job_lock) as cur:
            result, plan = self._decide(cur, now)
            result.enqueued = self._write_outbox(cur, plan, now)
            self._write_groups(cur, plan, now)
        if result.enqueued:
            ids = result.enqueued
            log.info("queued %d notification(s), ids %d to %d", len(ids), ids[0], ids[-1])
        return result

    def _decide(self, cur: duckdb.DuckDBPyConnection, now: datetime) -> tuple[TickResult, _Plan]:
        result, plan = TickResult(), _Plan()
        groups = _load_groups(cur)
        nflog = _load_log(cur)
        # A resolved alert matters to the group it was in until the group's next flush has told it: those resolved
        # since the oldest group's last flush are read, and those a channel last heard as firing, whenever they
        # resolved (evaluation commits a resolve a moment after its ends_at, possibly after a flush).
        oldest = min([g.last_flush_at or g.created_at for g in groups.values()] + [now])
        told_firing = frozenset().union(*(e.firing for entries in nflog.values() for e in entries.values()))
        alerts = alerts_for_notification(cur, max(oldest, now - NFLOG_RETENTION), told_firing)
        result.muted = self._muted(cur, alerts, now)
        buckets: dict[str, tuple[Route, list[Alert]]] = {}
        for alert in alerts:
            for route in self.config.route.match(alert.labels):
                buckets.setdefault(route.group_key(alert.labels), (route, []))[1].append(alert)
        for key, (route, candidates) in buckets.items():
            state = groups.pop(key, None)
            entries = nflog.get(key, {})
            notified = frozenset().union(*(e.firing for e in entries.values()))
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
                    plan.gone_groups.append(key)
                continue
            if state is None:
                state = self._new_group(key, route, members, now)
                plan.new_groups.append(state)
            elif now >= state.next_flush_at:
                plan.flushed_groups.append(state)
            if now >= state.next_flush_at:
                state.labels = route.group_labels(members[0].labels)
                self._flush(plan, route, state, members, entries, result.muted, now)
                result.flushed.append(key)
                state.last_flush_at = now
                state.next_flush_at = now + route.timings.group_interval
        plan.gone_groups += list(groups)  # groups whose alerts are gone (or whose route no longer exists)
        return result, plan

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

    def _new_group(self, key: str, route: Route, members: list[Alert], now: datetime) -> GroupState:
        # Alertmanager waits group_wait from the group's creation, but flushes at once when an alert's own
        # group_wait has already passed (an alert that fired while the dispatcher was not running).
        wait = route.timings.group_wait
        overdue = any(a.firing and a.starts_at + wait < now for a in members)
        labels = route.group_labels(members[0].labels)
        return GroupState(key, route.id, route.receiver, labels, now, now if overdue else now + wait, None)

    def _flush(
        self,
        plan: _Plan,
        route: Route,
        state: GroupState,
        members: list[Alert],
        entries: Mapping[str, LogEntry],
        muted: Mapping[str, str],
        now: datetime,
    ) -> None:
        visible = [a for a in members if a.fingerprint not in muted]
        if not visible:
            return  # as Alertmanager's pipeline: nothing left after muting, nothing to tell or to log
        firing = frozenset(a.fingerprint for a in visible if a.firing)
        resolved = frozenset(a.fingerprint for a in visible if not a.firing)
        receiver = self.config.receivers[route.receiver]
        for channel in receiver.channels:
            reason = needs_update(
                entries.get(channel.id),
                firing,
                resolved,
                send_resolved=channel.send_resolved,
                repeat=route.timings.repeat_interval,
                now=now,
            )
            if reason is None:
                continue
            sent = visible if channel.send_resolved else [a for a in visible if a.firing]
            dedup_key = None
            if sent:
                message_ = self._message(channel, receiver.name, state, sent, reason, now)
                plan.messages.append(message_)
                dedup_key = message_.dedup_key
            plan.log.append((state.group_key, channel.id, sorted(firing), sorted(resolved), dedup_key))

    def _message(
        self,
        channel: Channel,
        receiver: str,
        state: GroupState,
        alerts: Iterable[Alert],
        reason: Reason,
        now: datetime,
    ) -> outbox.NewMessage:
        payload = message.build(
            receiver=receiver,
            group_key=state.group_key,
            group_labels=state.labels,
            alerts=list(alerts),
            external_url=self.external_url,
            reason=reason.value,
        )
        return outbox.NewMessage(
            dedup_key=f"alert:{channel.id}:{state.group_key}:{now.isoformat()}",
            kind="alert",
            receiver=receiver,
            channel=channel.id,
            channel_type=channel.kind,
            target=channel.target(),
            payload=payload,
            summary=message.title(payload),
            group_key=state.group_key,
            reason=reason.value,
        )

    def _write_outbox(self, cur: duckdb.DuckDBPyConnection, plan: _Plan, now: datetime) -> list[int]:
        """The messages, then the log entries that point at them."""
        ids = outbox.enqueue_many(cur, plan.messages, now)
        if plan.log:
            rows = [
                {
                    "group_key": g,
                    "channel": c,
                    "firing": f,
                    "resolved": r,
                    "notified_at": now,
                    "outbox_id": ids.get(k) if k else None,
                }
                for g, c, f, r, k in plan.log
            ]
            _with_table(
                cur,
                "notify_new_log",
                pa.Table.from_pylist(rows, schema=_LOG_SCHEMA),
                "MERGE INTO notify_log t USING notify_new_log s ON t.group_key = s.group_key AND t.channel = s.channel"
                " WHEN MATCHED THEN UPDATE SET firing = s.firing, resolved = s.resolved, notified_at = s.notified_at,"
                " outbox_id = s.outbox_id WHEN NOT MATCHED THEN INSERT BY NAME",
            )
        cur.execute("DELETE FROM notify_log WHERE notified_at < ?", [now - NFLOG_RETENTION])
        return sorted(ids.values())

    def _write_groups(self, cur: duckdb.DuckDBPyConnection, plan: _Plan, now: datetime) -> None:
        """The groups' timers: new groups, flushed groups' next flush, groups that ended."""

        def table(groups: list[GroupState]) -> pa.Table:
            rows = [
                {
                    "group_key": g.group_key,
                    "route_id": g.route_id,
                    "receiver": g.receiver,
                    "group_labels": list(g.labels.items()),
                    "created_at": g.created_at,
                    "next_flush_at": g.next_flush_at,
                    "last_flush_at": g.last_flush_at,
                }
                for g in groups
            ]
            return pa.Table.from_pylist(rows, schema=_GROUP_SCHEMA)

        if plan.gone_groups:
            cur.execute("DELETE FROM notify_groups WHERE group_key IN (SELECT unnest(?))", [plan.gone_groups])
        if plan.new_groups:
            _with_table(
                cur,
                "notify_new_groups",
                table(plan.new_groups),
                "INSERT INTO notify_groups SELECT * FROM notify_new_groups",
            )
        if plan.flushed_groups:
            _with_table(
                cur,
                "notify_flushed_groups",
                table(plan.flushed_groups),
                "UPDATE notify_groups SET next_flush_at = f.next_flush_at, last_flush_at = f.last_flush_at"
                " FROM notify_flushed_groups f WHERE notify_groups.group_key = f.group_key",
            )
