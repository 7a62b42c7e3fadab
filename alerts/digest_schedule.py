"""Scheduled digests: each digest's crontab line gives its slots; each slot is sent once.

A tick finds the latest slot at or before now. The slot is queued (figures computed, message rendered, an outbox
row written) and remembered as the digest's last slot in ONE transaction, and the outbox row's dedup key is the
slot, so a restart, a second tick or a crash never queues a slot twice. A slot missed while the server was down is
sent when it comes back, as long as no later slot has come (only the latest missed one). A digest seen for the
first time starts at its next slot, so adding one to the config does not send yesterday's at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import duckdb

from alerts import digest, digest_render, outbox
from alerts.notify_config import DigestConfig
from core.store import WriteLock, transaction

log = logging.getLogger("callscope.notify")
_LOOKBACKS = (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32), timedelta(days=367))


def latest_slot(config: DigestConfig, now: datetime) -> datetime | None:
    """The last scheduled time at or before `now` (within a year)."""
    trigger = config.trigger()
    for lookback in _LOOKBACKS:
        slot = trigger.get_next_fire_time(None, now - lookback)
        if slot is None or slot > now:
            continue
        while True:
            following = trigger.get_next_fire_time(slot, slot + timedelta(seconds=1))
            if following is None or following > now:
                return slot.astimezone(UTC)
            slot = following
    return None


class DigestScheduler:
    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        digests: Mapping[str, DigestConfig],
        dashboard_base: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lock: WriteLock | None = None,
        job_lock: WriteLock | None = None,
    ) -> None:
        """`lock`: held around a one-off digest's queueing (any node); `job_lock`: around the scheduled ticks'."""
        self._db = db
        self._lock = lock
        self._job_lock = job_lock if job_lock is not None else lock
        self.digests = dict(digests)
        self.dashboard_base = dashboard_base
        self._clock = clock

    def _message(
        self, cur: duckdb.DuckDBPyConnection, config: DigestConfig, end: datetime, key: str
    ) -> outbox.NewMessage:
        figures = digest.compute(cur, config, end, self.dashboard_base)
        data = digest_render.payload(figures)
        return outbox.NewMessage(
            dedup_key=key,
            kind="digest",
            receiver=f"digest:{config.name}",
            channel=f"digest/{config.name}/email",
            channel_type="email",
            target={"to": list(config.to)},
            payload=data,
            summary=data["subject"],
            reason="scheduled" if ":now:" not in key else "send_now",
        )

    def tick(self, now: datetime | None = None) -> list[int]:
        """Queue the digests whose slot has come; the outbox ids queued. A slot's figures are computed before the
        write's transaction (a lake holds its commit lock around that transaction, and ingest waits for it)."""
        now = now or self._clock()
        queued = []
        for config in self.digests.values():
            slot = latest_slot(config, now)
            if slot is None:
                continue
            with transaction(self._db) as cur:
                last = self._last_slot(cur, config)
                message = None
                if last is not None and slot > last:
                    message = self._message(cur, config, slot, _slot_key(config, slot))
            if last is not None and message is None:
                continue
            with transaction(self._db, self._job_lock) as cur:
                outbox_id = self._slot(cur, config, slot, message)
            if outbox_id is not None:
                log.info("digest %s: queued the digest of %s as notification %d", config.name, slot, outbox_id)
                queued.append(outbox_id)
        return queued

    def _last_slot(self, cur: duckdb.DuckDBPyConnection, config: DigestConfig) -> datetime | None:
        # fetchall, not fetchone: DuckDB refuses more work on a cursor whose result is not exhausted
        rows = cur.execute("SELECT last_slot FROM digest_state WHERE name = ?", [config.name]).fetchall()
        return rows[0][0] if rows else None

    def _slot(
        self,
        cur: duckdb.DuckDBPyConnection,
        config: DigestConfig,
        slot: datetime,
        message: outbox.NewMessage | None = None,
    ) -> int | None:
        """In the write's transaction, as of now (another tick or node may have queued the slot since)."""
        last = self._last_slot(cur, config)
        if last is None:
            cur.execute("INSERT INTO digest_state VALUES (?, ?)", [config.name, slot])
            return None
        if slot <= last:
            return None
        message = message or self._message(cur, config, slot, _slot_key(config, slot))
        outbox_id = outbox.enqueue(cur, message, self._clock())
        cur.execute("UPDATE digest_state SET last_slot = ? WHERE name = ?", [slot, config.name])
        return outbox_id

    def send_now(self, name: str, now: datetime | None = None) -> int:
        """A one-off digest of the period ending now (`callscope digest send --now`)."""
        config = self.digests.get(name)
        if config is None:
            known = ", ".join(self.digests) or "none configured"
            raise KeyError(f"no digest named {name!r} (known: {known})")
        end = (now or self._clock()).replace(microsecond=0)
        with transaction(self._db) as cur:
            message = self._message(cur, config, end, f"digest:{name}:now:{end.isoformat()}")
        with transaction(self._db, self._lock) as cur:
            outbox_id = outbox.enqueue(cur, message, self._clock())
        if outbox_id is None:
            raise RuntimeError(f"the digest {name} of {end.isoformat()} was already queued")
        log.info("digest %s: queued a one-off digest up to %s as notification %d", name, end, outbox_id)
        return outbox_id


def _slot_key(config: DigestConfig, slot: datetime) -> str:
    return f"digest:{config.name}:{slot.isoformat()}"
