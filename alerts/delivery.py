"""The delivery worker: sends what the outbox holds, marks each row sent, or records why not and when to retry.

Per row: the attempt is committed first (attempts + 1), then the message goes out, and the row is marked sent the
moment the receiver has accepted it (the SMTP server's answer to DATA, before QUIT; the webhook's 2xx). A message
is therefore sent twice only if the process dies in the few milliseconds between that acceptance and the mark's
commit; the second copy carries the same Message-ID (e-mail) or Idempotency-Key (webhook), so the receiver can
drop it. (No sender can do better over SMTP: the server's acceptance and our record are two systems.)

Failures back off exponentially (notify_retry_seconds, doubling, at most
notify_retry_max_seconds) until notify_give_up_hours after the row was queued, then the row is failed. A
permanent refusal (SMTP 5xx for the recipients or the message, webhook 4xx) fails it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import duckdb
import httpx

from alerts import email_render, outbox, smtp, webhook
from alerts.outbox import OutboxRow
from alerts.smtp import DeliveryError, SmtpSettings
from core.store import WriteLock, held, transaction

log = logging.getLogger("callscope.notify")

Accepted = Callable[[str | None], None]
Sender = Callable[[OutboxRow, Accepted], None]  # calls accepted(note) once the receiver has taken the message


@dataclass(frozen=True)
class RetryPolicy:
    first: timedelta = timedelta(seconds=10)
    most: timedelta = timedelta(minutes=10)
    give_up: timedelta = timedelta(hours=24)

    def delay(self, attempts: int) -> timedelta:
        """After the `attempts`-th failed attempt: first, 2 x first, 4 x first, ... at most `most`."""
        return min(self.first * (2 ** max(attempts - 1, 0)), self.most)


class EmailSender:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def __call__(self, row: OutboxRow, accepted: Accepted) -> None:
        if row.kind == "digest":
            from alerts.digest_render import digest_email

            msg = digest_email(row, self.settings.from_address, self.settings.domain)
        else:
            msg = email_render.alert_email(row, self.settings.from_address, self.settings.domain)
        smtp.send(self.settings, msg, accepted)


class WebhookSender:
    def __init__(self) -> None:
        self.client = httpx.Client(follow_redirects=False)

    def __call__(self, row: OutboxRow, accepted: Accepted) -> None:
        accepted(webhook.post(row, self.client))


@dataclass
class DeliveryCounts:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.failed


class SendLedger(Protocol):
    """Where a shared store's sender records, in a few milliseconds, that a receiver accepted a message (a lake's
    commit takes tens of them): a sender that dies before the store says `sent` is not followed by a second copy
    from the next lease holder, which finds the acceptance here (core/catalog.py keeps it in the catalog)."""

    def accepted(self, outbox_id: int, note: str | None) -> None: ...

    def accepted_of(self, outbox_ids: list[int]) -> dict[int, str | None]: ...


@dataclass(frozen=True)
class Sharing:
    """How the worker shares the store with other nodes (a lake); the default: it does not (the embedded file).
    `lock` is held around each write, `job_lock` around each claim (it raises when this node lost the job lease),
    `claim` keeps a row from other senders while this one sends it."""

    lock: WriteLock | None = None
    job_lock: WriteLock | None = None
    ledger: SendLedger | None = None
    claim: timedelta | None = None
    still_held: Callable[[], bool] | None = None  # whether this node holds the job lease now (asked before each send)


class DeliveryWorker:
    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        senders: Mapping[str, Sender],
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sharing: Sharing | None = None,
    ) -> None:
        self._db = db
        self.senders = dict(senders)
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self.sharing = sharing or Sharing()

    def run_once(self, now: datetime | None = None, limit: int = 50) -> DeliveryCounts:
        """Send every due row (at most `limit`); never raises for a failed delivery."""
        counts = DeliveryCounts()
        cur = self._db.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            rows = outbox.due(cur, now or self._clock(), limit)
            if self.sharing.ledger is None:
                for row in rows:
                    self._deliver(cur, row, counts)
            else:
                self._deliver_batch(cur, self._recorded_elsewhere(cur, rows, counts), counts)
        finally:
            cur.close()
        return counts

    def _deliver_batch(self, cur: duckdb.DuckDBPyConnection, rows: list[OutboxRow], counts: DeliveryCounts) -> None:
        """A shared store (a lake, whose commits take tens of ms): the due rows are claimed with one commit, sent one
        at a time (each acceptance recorded in the ledger at once), and marked sent with one commit at the end. A
        row whose claim ran out before its turn is left for the next pass (another sender may have it by then)."""
        sharing = self.sharing
        started = self._clock()
        hold = started + (sharing.claim or timedelta(0))
        with held(sharing.job_lock), transaction(self._db) as tx:
            claimed = set(outbox.claim_many(tx, rows, started, hold))
        sent: dict[int, tuple[datetime, str | None]] = {}
        try:
            for row in rows:
                if row.id not in claimed:
                    continue  # another sender changed it since it was read
                if self._clock() >= hold:
                    break
                if sharing.still_held is not None and not sharing.still_held():
                    log.warning("the job lease is gone: the rest of this batch is left to the next holder")
                    break
                self._deliver(cur, row, counts, sent=sent)
        finally:
            if sent:
                self._write(lambda: outbox.mark_sent_many(cur, sent))

    def _write(self, what: Callable[[], object]) -> None:
        with held(self.sharing.lock):
            what()

    def _recorded_elsewhere(
        self, cur: duckdb.DuckDBPyConnection, rows: list[OutboxRow], counts: DeliveryCounts
    ) -> list[OutboxRow]:
        """Rows whose acceptance the ledger holds (their sender died before marking them) are marked sent, not sent
        again; the rest are returned."""
        ledger = self.sharing.ledger
        if ledger is None or not rows:
            return rows
        done = ledger.accepted_of([r.id for r in rows])
        if done:
            now = self._clock()
            self._write(lambda: outbox.mark_sent_many(cur, {i: (now, note) for i, note in done.items()}))
            counts.sent += len(done)
            log.info("notification(s) %s were accepted before the node sending them stopped; marked sent", sorted(done))
        return [r for r in rows if r.id not in done]

    def _deliver(
        self,
        cur: duckdb.DuckDBPyConnection,
        row: OutboxRow,
        counts: DeliveryCounts,
        sent: dict[int, tuple[datetime, str | None]] | None = None,
    ) -> None:
        """One row. `sent` (a claimed batch): the attempt is already recorded, and the acceptance goes to the ledger
        and into `sent` (marked with the batch) instead of a commit of its own."""
        started = self._clock()
        sharing = self.sharing
        if sent is None:
            outbox.record_attempt(cur, row.id, started)
        attempts = row.attempts + 1
        delivered: list[str | None] = []

        def accepted(note: str | None) -> None:
            if sent is None:
                outbox.mark_sent(cur, row.id, self._clock(), note)
            else:
                assert sharing.ledger is not None
                sharing.ledger.accepted(row.id, note)
                sent[row.id] = (self._clock(), note)
            delivered.append(note)

        try:
            sender = self.senders.get(row.channel_type)
            if sender is None:
                raise DeliveryError(f"no sender for channel type {row.channel_type!r}", permanent=True)
            sender(row, accepted)
            if not delivered:
                raise DeliveryError("the sender returned without the receiver accepting the message")
        except Exception as exc:
            if delivered:  # accepted and recorded; only what came after (SMTP's QUIT) failed
                log.warning("notification %d was delivered; closing the connection failed: %s", row.id, exc)
                counts.sent += 1
                return
            error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            counts.errors.append(error)
            gave_up = started - row.created_at >= self.policy.give_up
            if getattr(exc, "permanent", False) or gave_up:
                reason = error if not gave_up else f"gave up after {attempts} attempts: {error}"
                self._write(lambda: outbox.mark_failed(cur, row.id, reason))
                counts.failed += 1
                log.error("notification %d to %s failed for good: %s", row.id, row.channel, reason)
            else:
                retry_at = self._clock() + self.policy.delay(attempts)
                self._write(lambda: outbox.mark_retry(cur, row.id, error, retry_at))
                counts.retrying += 1
                log.warning(
                    "notification %d to %s failed (attempt %d), retrying at %s: %s",
                    row.id,
                    row.channel,
                    attempts,
                    retry_at.isoformat(timespec="seconds"),
                    error,
                )
            return
        counts.sent += 1
        log.info("sent notification %d to %s (%s)", row.id, row.channel, row.summary)
