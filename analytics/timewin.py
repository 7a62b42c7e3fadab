"""Time ranges and time buckets in a caller-named time zone, DST-correct, computed without per-row ICU calls.

Rows are bucketed on integer microseconds since the epoch. The zone's UTC offset over the queried range is a
piecewise-constant function with few pieces (one per DST transition), so it becomes a small CASE expression of
integer literals that we computed ourselves (never user text). Then:

- minute ... hour buckets are instants: `start = t - ((t + offset(t)) mod width)`. They are aligned to the local
  wall clock (India's hours start at :30 UTC), and the repeated hour of a fall-back transition is two buckets.
- day / week / month buckets are local calendar periods keyed by their local midnight; the key is turned back into
  an instant with the zone's rules after aggregation, so a DST day is 23 or 25 hours long.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from analytics.errors import QueryError

US = 1_000_000
_DAY_US = 86_400 * US
_RELATIVE = re.compile(r"^(\d{1,4})(m|h|d|w)$")
_RELATIVE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Bucket(StrEnum):
    MINUTE = "minute"
    FIVE_MINUTES = "5m"
    FIFTEEN_MINUTES = "15m"
    THIRTY_MINUTES = "30m"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @property
    def width_us(self) -> int | None:
        """Fixed width of an instant bucket; None for calendar buckets."""
        return _WIDTHS.get(self)


_WIDTHS = {
    Bucket.MINUTE: 60 * US,
    Bucket.FIVE_MINUTES: 300 * US,
    Bucket.FIFTEEN_MINUTES: 900 * US,
    Bucket.THIRTY_MINUTES: 1800 * US,
    Bucket.HOUR: 3600 * US,
}
_MAX_BUCKETS = 5000


def parse_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'") from None


def parse_instant(text: str, zone: ZoneInfo, name: str) -> datetime:
    """ISO 8601 with or without an offset (without one it is local time in `zone`), or a date."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(f"{name}={text!r} is not an ISO 8601 time (e.g. 2026-11-01T00:00:00Z)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class TimeRange:
    """A half-open range [start, end) of instants (UTC)."""

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> TimeRange:
        """The period of the same length just before this one."""
        return TimeRange(self.start - self.length, self.start)

    @property
    def start_us(self) -> int:
        return to_us(self.start)

    @property
    def end_us(self) -> int:
        return to_us(self.end)


def to_us(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def parse_range(
    start: str | None, end: str | None, last: str | None, zone: ZoneInfo, *, now: datetime | None = None
) -> TimeRange:
    """`from`/`to` (ISO 8601) or `last` (e.g. 15m, 24h, 7d, 4w); default the last 24 hours up to now."""
    now = now or datetime.now(UTC)
    if last is not None:
        if start is not None:
            raise QueryError("give either last or from/to, not both")
        match = _RELATIVE.match(last.strip())
        if not match:
            raise QueryError(f"last={last!r} is not a duration such as 15m, 24h, 7d or 4w")
        length = timedelta(**{_RELATIVE_UNITS[match[2]]: int(match[1])})
        end_at = parse_instant(end, zone, "to") if end else now
        result = TimeRange(end_at - length, end_at)
    else:
        end_at = parse_instant(end, zone, "to") if end else now
        start_at = parse_instant(start, zone, "from") if start else end_at - timedelta(hours=24)
        result = TimeRange(start_at, end_at)
    if result.end <= result.start:
        raise QueryError(f"the time range is empty or reversed: from {result.start} to {result.end}")
    if result.start.year < 1970 or result.end.year > 2200:
        raise QueryError("the time range must lie between 1970 and 2200")
    return result


def offset_pieces(zone: ZoneInfo, start_us: int, end_us: int) -> list[tuple[int, int]]:
    """[(from_us, offset_us), ...]: the zone's UTC offset from each instant on, covering [start_us, end_us)."""

    def offset_at(us: int) -> int:
        moment = from_us(us)
        return int(moment.astimezone(zone).utcoffset().total_seconds()) * US  # type: ignore[union-attr]

    pieces = [(start_us, offset_at(start_us))]
    step = 6 * 3600 * US  # zones change offset at most a few times a year, never twice in 6 hours
    probe = start_us
    while probe < end_us:
        nxt = min(probe + step, end_us)
        if offset_at(nxt) != pieces[-1][1]:
            lo, hi = probe, nxt  # offset_at(lo) is the current piece's, offset_at(hi) differs
            while hi - lo > US:
                mid = (lo + hi) // 2
                if offset_at(mid) == pieces[-1][1]:
                    lo = mid
                else:
                    hi = mid
            pieces.append((hi, offset_at(hi)))
        probe = nxt
    return pieces


def offset_sql(pieces: list[tuple[int, int]], ts_us: str) -> str:
    """A CASE expression of integer literals (computed here, never user text) giving the offset of `ts_us`."""
    if len(pieces) == 1:
        return str(pieces[0][1])
    whens = " ".join(f"WHEN {ts_us} < {nxt[0]} THEN {cur[1]}" for cur, nxt in itertools.pairwise(pieces))
    return f"(CASE {whens} ELSE {pieces[-1][1]} END)"


@dataclass(frozen=True)
class Bucketing:
    bucket: Bucket
    zone: ZoneInfo
    range: TimeRange

    def key_sql(self, ts_us: str = "epoch_us(start_time)") -> str:
        """SQL giving each row's bucket key: an instant (us) for fixed widths, a local-midnight key otherwise."""
        offset = offset_sql(offset_pieces(self.zone, self.range.start_us, self.range.end_us), ts_us)
        width = self.bucket.width_us
        if width is not None:
            return f"({ts_us} - (({ts_us} + {offset}) % {width}))"
        local_day = f"(({ts_us} + {offset}) // {_DAY_US})"
        if self.bucket is Bucket.DAY:
            return local_day
        if self.bucket is Bucket.WEEK:  # 1970-01-01 was a Thursday; weeks start on Monday (ISO)
            return f"({local_day} - (({local_day} + 3) % 7))"
        return f"(year(make_timestamp({ts_us} + {offset})) * 12 + month(make_timestamp({ts_us} + {offset})) - 1)"

    def key_to_start(self, key: int) -> datetime:
        """The bucket's first instant, as an aware datetime in the caller's zone."""
        if self.bucket.width_us is not None:
            return from_us(key).astimezone(self.zone)
        if self.bucket is Bucket.MONTH:
            local = date(key // 12, key % 12 + 1, 1)
        else:
            local = date(1970, 1, 1) + timedelta(days=key)
        return datetime(local.year, local.month, local.day, tzinfo=self.zone)

    def all_keys(self) -> list[int]:
        """Every bucket key overlapping the range, in order (to show empty buckets as zeros)."""
        start_key = self._key_of(self.range.start)
        end_key = self._key_of(self.range.end - timedelta(microseconds=1))
        width = self.bucket.width_us
        if width is not None:
            keys, key = [], start_key
            while key <= end_key:
                keys.append(key)
                key = self._key_of(from_us(key + width))
            result = keys
        elif self.bucket is Bucket.WEEK:
            result = list(range(start_key, end_key + 1, 7))
        else:
            result = list(range(start_key, end_key + 1))
        if len(result) > _MAX_BUCKETS:
            raise QueryError(f"{len(result)} buckets of {self.bucket} over this range; choose a wider bucket")
        return result

    def _key_of(self, moment: datetime) -> int:
        us = to_us(moment)
        offset = int(moment.astimezone(self.zone).utcoffset().total_seconds()) * US  # type: ignore[union-attr]
        width = self.bucket.width_us
        if width is not None:
            return us - ((us + offset) % width)
        day = (us + offset) // _DAY_US
        if self.bucket is Bucket.DAY:
            return day
        if self.bucket is Bucket.WEEK:
            return day - ((day + 3) % 7)
        local = moment.astimezone(self.zone)
        return local.year * 12 + local.month - 1


def auto_bucket(length: timedelta) -> Bucket:
    """A bucket giving roughly 50-300 points for the range."""
    hours = length.total_seconds() / 3600
    if hours <= 3:
        return Bucket.MINUTE
    if hours <= 12:
        return Bucket.FIVE_MINUTES
    if hours <= 48:
        return Bucket.FIFTEEN_MINUTES
    if hours <= 24 * 14:
        return Bucket.HOUR
    if hours <= 24 * 180:
        return Bucket.DAY
    return Bucket.WEEK


def parse_bucket(text: str | None, length: timedelta) -> Bucket:
    if text is None or text == "auto":
        return auto_bucket(length)
    try:
        return Bucket(text)
    except ValueError:
        choices = ", ".join(b.value for b in Bucket)
        raise QueryError(f"bucket={text!r} is not one of auto, {choices}") from None
