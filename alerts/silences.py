"""Silences, as Alertmanager's: label matchers, a start and an end, who made it and why. A silence mutes the alerts
its matchers all match while it is active (starts_at <= now < ends_at); expiring one ends it now."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import duckdb
import orjson

from alerts.matchers import Matcher, MatcherError, matches_all
from alerts.notify_config import ConfigError, parse_duration

MAX_TEXT = 1000


class SilenceError(ValueError):
    """Bad input for a silence; the message starts with the field (`matchers[0].value: ...`)."""


class SilenceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    updated_at: datetime

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return SilenceState.PENDING
        return SilenceState.ACTIVE if now < self.ends_at else SilenceState.EXPIRED

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.state(now) is SilenceState.ACTIVE and matches_all(self.matchers, labels)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [m.as_api() | {"text": str(m)} for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "state": self.state(now).value,
        }


def _instant(raw: Any, field: str) -> datetime:
    if not isinstance(raw, str):
        raise SilenceError(f"{field}: expected an ISO 8601 time such as 2026-01-01T12:00:00Z, got {raw!r}")
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SilenceError(f"{field}: {raw!r} is not an ISO 8601 time such as 2026-01-01T12:00:00Z") from None
    if value.tzinfo is None:
        raise SilenceError(f"{field}: {raw!r} has no UTC offset (add Z or +02:00)")
    return value.astimezone(UTC)


def _text(body: Mapping[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise SilenceError(f"{field}: required, a non-empty string")
    if len(value) > MAX_TEXT:
        raise SilenceError(f"{field}: longer than {MAX_TEXT} characters")
    return value.strip()


FIELDS = ("matchers", "starts_at", "ends_at", "duration", "created_by", "comment")


def parse_silence(body: Any, now: datetime) -> Silence:
    """A new silence from an API body: matchers (Alertmanager's {"name","value","isRegex","isEqual"} objects or
    text like `service=~"chat.*"`), starts_at (default now), ends_at or duration ("2h"), created_by, comment."""
    if not isinstance(body, Mapping):
        raise SilenceError("body: expected a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise SilenceError(f"{unknown[0]}: unknown field; known: {', '.join(FIELDS)}")
    raw_matchers = body.get("matchers")
    if not isinstance(raw_matchers, list) or not raw_matchers:
        raise SilenceError("matchers: required, a non-empty list")
    matchers = []
    for i, raw in enumerate(raw_matchers):
        try:
            matchers.append(Matcher.from_api(raw))
        except MatcherError as exc:
            raise SilenceError(f"matchers[{i}]: {exc}") from None
    if all(m.matches({}) for m in matchers):
        raise SilenceError("matchers: at least one matcher must not match the empty string (it would mute everything)")
    starts_at = _instant(body["starts_at"], "starts_at") if body.get("starts_at") is not None else now
    starts_at = max(starts_at, now)
    if (body.get("ends_at") is None) == (body.get("duration") is None):
        raise SilenceError('ends_at: give ends_at or duration (e.g. "2h"), one of them')
    if body.get("ends_at") is not None:
        ends_at = _instant(body["ends_at"], "ends_at")
    else:
        try:
            ends_at = starts_at + parse_duration(body["duration"], "duration")
        except ConfigError as exc:
            raise SilenceError(str(exc)) from None
    if ends_at <= starts_at:
        raise SilenceError("ends_at: must be after starts_at (and after now)")
    return Silence(
        uuid.uuid4().hex,
        tuple(matchers),
        starts_at,
        ends_at,
        _text(body, "created_by"),
        _text(body, "comment"),
        now,
        now,
    )


_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at"


def _row(row: tuple) -> Silence:
    sid, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at = row
    return Silence(
        sid,
        tuple(Matcher.parse(m) for m in orjson.loads(matchers)),
        starts_at,
        ends_at,
        created_by,
        comment,
        created_at,
        updated_at,
    )


def insert(cur: duckdb.DuckDBPyConnection, silence: Silence) -> None:
    cur.execute(
        f"INSERT INTO silences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 (fixed column list)
        [
            silence.id,
            orjson.dumps([str(m) for m in silence.matchers]).decode(),
            silence.starts_at,
            silence.ends_at,
            silence.created_by,
            silence.comment,
            silence.created_at,
            silence.updated_at,
        ],
    )


def get(cur: duckdb.DuckDBPyConnection, silence_id: str) -> Silence | None:
    rows = cur.execute(f"SELECT {_COLUMNS} FROM silences WHERE id = ?", [silence_id]).fetchall()  # noqa: S608
    return _row(rows[0]) if rows else None


def list_silences(cur: duckdb.DuckDBPyConnection) -> list[Silence]:
    rows = cur.execute(f"SELECT {_COLUMNS} FROM silences ORDER BY created_at DESC, id").fetchall()  # noqa: S608
    return [_row(r) for r in rows]


def active(cur: duckdb.DuckDBPyConnection, now: datetime) -> list[Silence]:
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM silences WHERE starts_at <= ? AND ends_at > ?",  # noqa: S608
        [now, now],
    ).fetchall()
    return [_row(r) for r in rows]


def expire(cur: duckdb.DuckDBPyConnection, silence_id: str, now: datetime) -> Silence | None:
    """End a silence now (a pending one never starts). None when there is no such silence; SilenceError when it
    has already expired."""
    silence = get(cur, silence_id)
    if silence is None:
        return None
    if silence.state(now) is SilenceState.EXPIRED:
        raise SilenceError(f"id: silence {silence_id} has already expired")
    starts_at = min(silence.starts_at, now)
    cur.execute(
        "UPDATE silences SET starts_at = ?, ends_at = ?, updated_at = ? WHERE id = ?",
        [starts_at, now, now, silence_id],
    )
    return get(cur, silence_id)
