"""The notification outbox: one row per message to one channel (an e-mail to its addresses, a POST to a webhook).

Rows are written by the dispatcher (alert notifications, in the transaction that decides to send them) and by the
digest scheduler; the delivery worker sends them, counts attempts and records the last error and the next try.
Status: pending -> sent, or retrying (attempts > 0, next_attempt_at set) -> sent, or failed (a permanent refusal,
or still failing after the give-up age); the reason stays in last_error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from core import ids


class Status(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"


UNSENT = (Status.PENDING.value, Status.RETRYING.value)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    dedup_key: str | None
    kind: str  # alert | digest
    receiver: str
    channel: str
    channel_type: str  # email | webhook
    target: dict[str, Any]
    group_key: str | None
    reason: str | None
    status: Status
    summary: str | None
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None

    def as_dict(self, *, with_payload: bool = False) -> dict[str, Any]:
        """For the API: where it goes (webhook URLs masked), what it says, how delivery went."""
        from alerts.notify_config import mask_url

        target = dict(self.target)
        if "url" in target:
            target["url"] = mask_url(target["url"])
        if target.get("headers"):
            target["headers"] = dict.fromkeys(target["headers"], "<secret>")
        out = {
            "id": self.id,
            "kind": self.kind,
            "receiver": self.receiver,
            "channel": self.channel,
            "channel_type": self.channel_type,
            "target": target,
            "group_key": self.group_key,
            "reason": self.reason,
            "summary": self.summary,
            "status": self.status.value,
            "created_at": self.created_at,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_attempt_at": self.last_attempt_at,
            "last_error": self.last_error,
            "sent_at": self.sent_at,
        }
        if with_payload:
            out["payload"] = self.payload
        return out


_COLUMNS = (
    "id, dedup_key, kind, receiver, channel, channel_type, target, group_key, reason, status, summary, payload,"
    " created_at, attempts, next_attempt_at, last_attempt_at, last_error, sent_at"
)


def _row(raw: tuple) -> OutboxRow:
    values = list(raw)
    values[6] = orjson.loads(values[6])
    values[9] = Status(values[9])
    values[11] = orjson.loads(values[11])
    return OutboxRow(*values)


_NEW_COLUMNS = (
    "dedup_key",
    "kind",
    "receiver",
    "channel",
    "channel_type",
    "target",
    "group_key",
    "reason",
    "status",
    "summary",
    "payload",
    "created_at",
    "attempts",
    "next_attempt_at",
)
_NEW_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        *((name, pa.string()) for name in _NEW_COLUMNS[:11]),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("attempts", pa.int32()),
        ("next_attempt_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class NewMessage:
    """A message to queue. `dedup_key` names it uniquely: queuing the same key twice keeps the first."""

    dedup_key: str
    kind: str  # alert | digest
    receiver: str
    channel: str
    channel_type: str  # email | webhook
    target: dict[str, Any]
    payload: dict[str, Any]
    summary: str
    group_key: str | None = None
    reason: str | None = None


def enqueue_many(cur: duckdb.DuckDBPyConnection, messages: list[NewMessage], now: datetime) -> dict[str, int]:
    """Queue messages; {dedup_key: id} of those queued now (not of keys queued before, nor a key's second copy).
    The keys already queued are left out by a join (a lake has no UNIQUE key to conflict on); the caller's
    transaction is serialised with the store's other writers, so it sees every key queued before it."""
    if not messages:
        return {}
    wanted = list({m.dedup_key: m for m in reversed(messages)}.values())[::-1]  # each key once, the first copy
    keys = [m.dedup_key for m in wanted]
    queued = {
        k
        for (k,) in cur.execute(
            "SELECT dedup_key FROM notify_outbox WHERE list_contains(?, dedup_key)", [keys]
        ).fetchall()
    }
    fresh = [m for m in wanted if m.dedup_key not in queued]
    if not fresh:
        return {}
    row_ids = ids.take(cur, "notify_outbox_id", len(fresh))
    rows = [
        {
            "id": row_id,
            "dedup_key": m.dedup_key,
            "kind": m.kind,
            "receiver": m.receiver,
            "channel": m.channel,
            "channel_type": m.channel_type,
            "target": orjson.dumps(m.target).decode(),
            "group_key": m.group_key,
            "reason": m.reason,
            "status": Status.PENDING.value,
            "summary": m.summary,
            "payload": orjson.dumps(m.payload, default=_json_default).decode(),
            "created_at": now,
            "attempts": 0,
            "next_attempt_at": now,
        }
        for m, row_id in zip(fresh, row_ids, strict=True)
    ]
    columns = ", ".join(("id", *_NEW_COLUMNS))
    cur.register("notify_new_outbox", pa.Table.from_pylist(rows, schema=_NEW_SCHEMA))
    try:
        cur.execute(f"INSERT INTO notify_outbox ({columns}) SELECT {columns} FROM notify_new_outbox")  # noqa: S608
    finally:
        cur.unregister("notify_new_outbox")
    return {m.dedup_key: row_id for m, row_id in zip(fresh, row_ids, strict=True)}


def enqueue(cur: duckdb.DuckDBPyConnection, message: NewMessage, now: datetime) -> int | None:
    """Queue one message; its id, or None when its dedup_key was queued before."""
    return enqueue_many(cur, [message], now).get(message.dedup_key)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def due(cur: duckdb.DuckDBPyConnection, now: datetime, limit: int = 50) -> list[OutboxRow]:
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM notify_outbox WHERE status IN (?, ?) AND next_attempt_at <= ?"  # noqa: S608
        " ORDER BY next_attempt_at, id LIMIT ?",
        [*UNSENT, now, limit],
    ).fetchall()
    return [_row(r) for r in rows]


def get(cur: duckdb.DuckDBPyConnection, outbox_id: int) -> OutboxRow | None:
    rows = cur.execute(f"SELECT {_COLUMNS} FROM notify_outbox WHERE id = ?", [outbox_id]).fetchall()  # noqa: S608
    return _row(rows[0]) if rows else None


def list_rows(
    cur: duckdb.DuckDBPyConnection, *, status: str | None = None, kind: str | None = None, limit: int = 100
) -> list[OutboxRow]:
    clauses, params = ["TRUE"], []
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if kind is not None:
        clauses.append("kind = ?")
        params.append(kind)
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM notify_outbox WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",  # noqa: S608
        [*params, limit],
    ).fetchall()
    return [_row(r) for r in rows]


def counts(cur: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(cur.execute("SELECT status, count(*) FROM notify_outbox GROUP BY status").fetchall())


def record_attempt(cur: duckdb.DuckDBPyConnection, outbox_id: int, now: datetime) -> None:
    """Committed before the message goes out, so a crash during a send still shows as an attempt."""
    cur.execute("UPDATE notify_outbox SET attempts = attempts + 1, last_attempt_at = ? WHERE id = ?", [now, outbox_id])


def claim(cur: duckdb.DuckDBPyConnection, row: OutboxRow, now: datetime, hold_until: datetime | None = None) -> bool:
    """record_attempt for a row still as `due` read it (unsent, its attempts unchanged): False when another
    sender got to it first. `hold_until`: no other sender takes the row before then (a lake's claim; a sender
    that dies mid-send leaves it to the next one after that)."""
    return claim_many(cur, [row], now, hold_until) == [row.id]


_CLAIM_SCHEMA = pa.schema([("id", pa.int64()), ("attempts", pa.int32())])
_SENT_SCHEMA = pa.schema([("id", pa.int64()), ("sent_at", pa.timestamp("us", tz="UTC")), ("note", pa.string())])


def claim_many(
    cur: duckdb.DuckDBPyConnection, rows: list[OutboxRow], now: datetime, hold_until: datetime | None = None
) -> list[int]:
    """`claim` for several rows with one statement (one commit on a lake); the ids claimed, in the rows' order.
    The caller's transaction is serialised with the other senders' (a lake's commit lock): what it reads stays
    true until it commits."""
    if not rows:
        return []
    table = pa.Table.from_pylist([{"id": r.id, "attempts": r.attempts} for r in rows], schema=_CLAIM_SCHEMA)
    cur.register("notify_claims", table)
    try:
        # the rows still as read (no RETURNING on a lake): read first, inside the caller's serialised transaction
        taken = {
            i
            for (i,) in cur.execute(
                "SELECT o.id FROM notify_outbox o JOIN notify_claims c ON o.id = c.id"
                " WHERE o.attempts = c.attempts AND o.status IN (?, ?)",
                UNSENT,
            ).fetchall()
        }
        cur.execute(
            "UPDATE notify_outbox SET attempts = notify_outbox.attempts + 1, last_attempt_at = ?,"
            " next_attempt_at = coalesce(?, next_attempt_at) FROM notify_claims c"
            " WHERE notify_outbox.id = c.id AND notify_outbox.attempts = c.attempts AND status IN (?, ?)",
            [now, hold_until, *UNSENT],
        )
    finally:
        cur.unregister("notify_claims")
    return [r.id for r in rows if r.id in taken]


def mark_sent_many(cur: duckdb.DuckDBPyConnection, sent: dict[int, tuple[datetime, str | None]]) -> None:
    """`mark_sent` for several rows ({id: (sent_at, note)}) with one statement (one commit on a lake)."""
    if not sent:
        return
    rows = [{"id": i, "sent_at": at, "note": note} for i, (at, note) in sent.items()]
    cur.register("notify_sent", pa.Table.from_pylist(rows, schema=_SENT_SCHEMA))
    try:
        cur.execute(
            "UPDATE notify_outbox SET status = ?, sent_at = s.sent_at, next_attempt_at = NULL, last_error = s.note"
            " FROM notify_sent s WHERE notify_outbox.id = s.id",
            [Status.SENT.value],
        )
    finally:
        cur.unregister("notify_sent")


def mark_sent(cur: duckdb.DuckDBPyConnection, outbox_id: int, now: datetime, note: str | None = None) -> None:
    cur.execute(
        "UPDATE notify_outbox SET status = ?, sent_at = ?, next_attempt_at = NULL, last_error = ? WHERE id = ?",
        [Status.SENT.value, now, note, outbox_id],
    )


def mark_retry(cur: duckdb.DuckDBPyConnection, outbox_id: int, error: str, next_attempt_at: datetime) -> None:
    cur.execute(
        "UPDATE notify_outbox SET status = ?, last_error = ?, next_attempt_at = ? WHERE id = ?",
        [Status.RETRYING.value, error, next_attempt_at, outbox_id],
    )


def mark_failed(cur: duckdb.DuckDBPyConnection, outbox_id: int, error: str) -> None:
    cur.execute(
        "UPDATE notify_outbox SET status = ?, last_error = ?, next_attempt_at = NULL WHERE id = ?",
        [Status.FAILED.value, error, outbox_id],
    )
