"""The price book: user prices with effective dates, on top of genai-prices.

An entry prices the calls of one provider ("*": any) whose model matches a pattern (a shell-style glob, matched
case-insensitively: "gpt-4o*", or an exact name) and that started in [valid_from, valid_to) (either end open).
Entries of the same provider and pattern must not overlap in time; when entries of different patterns match the
same call, the most specific wins: an exact name over a glob, a named provider over "*", then the longer pattern.
A call no entry matches is priced by genai-prices. The config file's `[[prices]]` are entries too (source
"config"); entries added through the API have source "api". Every change is kept in `price_audit`.

Rates are USD per million tokens. Token kinds follow OTel: cache reads and writes are inside input_tokens,
reasoning inside output_tokens; so cost = uncached input x input + cache reads x cache_read + cache writes x
cache_write + (output - reasoning) x output + reasoning x reasoning. Missing cache/reasoning rates default to the
input/output rate (billed like the tokens they are part of).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from core import audit
from core.access import Principal

RATE_FIELDS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok", "reasoning_mtok")
ENTRY_FIELDS = ("provider", "model", *RATE_FIELDS, "valid_from", "valid_to", "note")
MAX_RATE = 1_000_000.0  # USD per million tokens; anything above is a typo (a dollar per token)


class PriceBookError(ValueError):
    """A price entry that cannot be accepted; the message says why (and the field)."""


@dataclass(frozen=True)
class PriceEntry:
    provider: str  # as recorded on calls (lower case), or "*"
    model: str  # exact model name or glob pattern, lower case
    input_mtok: float
    output_mtok: float
    cache_read_mtok: float | None = None
    cache_write_mtok: float | None = None
    reasoning_mtok: float | None = None
    valid_from: datetime | None = None  # None: since always
    valid_to: datetime | None = None  # exclusive; None: until further notice
    note: str | None = None
    entry_id: int | None = None  # set once stored
    source: str = "api"  # "api" or "config"

    @property
    def is_glob(self) -> bool:
        return any(ch in self.model for ch in "*?[")

    def matches(self, provider: str | None, model: str) -> bool:
        if self.provider != "*" and self.provider != (provider or "").lower():
            return False
        name = model.lower()
        return fnmatch.fnmatchcase(name, self.model) if self.is_glob else name == self.model

    def in_force(self, at_us: int) -> bool:
        return (self.valid_from is None or _us(self.valid_from) <= at_us) and (
            self.valid_to is None or at_us < _us(self.valid_to)
        )

    def specificity(self) -> tuple[int, int, int]:
        return (0 if self.is_glob else 1, 0 if self.provider == "*" else 1, len(self.model))

    def per_token(self) -> tuple[float, float, float, float, float]:
        """(uncached input, cache read, cache write, output, reasoning) in USD per token."""
        per = 1e-6
        inp, out = self.input_mtok, self.output_mtok
        return (
            inp * per,
            (self.cache_read_mtok if self.cache_read_mtok is not None else inp) * per,
            (self.cache_write_mtok if self.cache_write_mtok is not None else inp) * per,
            out * per,
            (self.reasoning_mtok if self.reasoning_mtok is not None else out) * per,
        )

    def label(self) -> str:
        span = f"{_day(self.valid_from) or '…'} to {_day(self.valid_to) or '…'}"
        return f"price book #{self.entry_id}: {self.provider}/{self.model} ({span})"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("valid_from", "valid_to"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def _day(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _instant(raw: Any, name: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        value = raw
    else:
        try:
            value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise PriceBookError(f"{name}: {raw!r} is not an ISO 8601 date or instant") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rate(raw: Any, name: str, *, required: bool) -> float | None:
    if raw is None:
        if required:
            raise PriceBookError(f"{name} is required (USD per million tokens)")
        return None
    if isinstance(raw, bool):
        raise PriceBookError(f"{name}: {raw!r} is not a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise PriceBookError(f"{name}: {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise PriceBookError(f"{name}: {raw!r} must be a price of 0 or more (USD per million tokens)")
    if value > MAX_RATE:
        raise PriceBookError(f"{name}: {raw!r} is above {MAX_RATE:g} USD per million tokens")
    return value


def parse_entry(raw: Mapping[str, Any], *, source: str = "api") -> PriceEntry:
    """A price entry from request or config-file values; PriceBookError names what is wrong."""
    if not isinstance(raw, Mapping):
        raise PriceBookError("a price entry must be an object of fields (provider, model, input_mtok, ...)")
    unknown = set(raw) - set(ENTRY_FIELDS)
    if unknown:
        raise PriceBookError(f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(ENTRY_FIELDS)}")
    provider = str(raw.get("provider") or "").strip().lower()
    model = str(raw.get("model") or "").strip().lower()
    if not provider:
        raise PriceBookError('provider is required (as recorded on calls, or "*" for any)')
    if not model:
        raise PriceBookError("model is required (a model name or a glob pattern such as gpt-4o*)")
    if len(model) > 200 or len(provider) > 100:
        raise PriceBookError("provider or model is too long")
    entry = PriceEntry(
        provider=provider,
        model=model,
        input_mtok=_rate(raw.get("input_mtok"), "input_mtok", required=True),  # type: ignore[arg-type]
        output_mtok=_rate(raw.get("output_mtok"), "output_mtok", required=True),  # type: ignore[arg-type]
        cache_read_mtok=_rate(raw.get("cache_read_mtok"), "cache_read_mtok", required=False),
        cache_write_mtok=_rate(raw.get("cache_write_mtok"), "cache_write_mtok", required=False),
        reasoning_mtok=_rate(raw.get("reasoning_mtok"), "reasoning_mtok", required=False),
        valid_from=_instant(raw.get("valid_from"), "valid_from"),
        valid_to=_instant(raw.get("valid_to"), "valid_to"),
        note=(str(raw["note"])[:500] if raw.get("note") is not None else None),
        source=source,
    )
    if entry.valid_from and entry.valid_to and entry.valid_to <= entry.valid_from:
        raise PriceBookError("valid_to must be after valid_from")
    return entry


def overlapping(entry: PriceEntry, others: Iterable[PriceEntry]) -> PriceEntry | None:
    """An entry of the same provider and pattern whose validity overlaps `entry`'s (other than itself)."""
    lo = _us(entry.valid_from) if entry.valid_from else -math.inf
    hi = _us(entry.valid_to) if entry.valid_to else math.inf
    for other in others:
        if other.entry_id is not None and other.entry_id == entry.entry_id:
            continue
        if (other.provider, other.model) != (entry.provider, entry.model):
            continue
        o_lo = _us(other.valid_from) if other.valid_from else -math.inf
        o_hi = _us(other.valid_to) if other.valid_to else math.inf
        if lo < o_hi and o_lo < hi:
            return other
    return None


def check_no_overlap(entry: PriceEntry, others: Iterable[PriceEntry]) -> None:
    clash = overlapping(entry, others)
    if clash is not None:
        raise PriceBookError(
            f"overlaps {clash.label()}: entries for the same provider and model must not overlap in time"
            " (end the other one first with valid_to, or change it)"
        )


class PriceBook:
    """Entries and the lookup of the one in force for a call. Immutable; a change makes a new book."""

    def __init__(self, entries: Sequence[PriceEntry] = (), generation: int = 0) -> None:
        self.entries = tuple(entries)
        self.generation = generation
        self._by_model: dict[tuple[str | None, str], tuple[PriceEntry, ...]] = {}

    def candidates(self, provider: str | None, model: str) -> tuple[PriceEntry, ...]:
        """Entries matching (provider, model), most specific first (cached per model)."""
        key = (provider, model)
        found = self._by_model.get(key)
        if found is None:
            if len(self._by_model) > 10_000:
                self._by_model.clear()
            found = tuple(sorted((e for e in self.entries if e.matches(provider, model)), key=_rank))
            self._by_model[key] = found
        return found

    def entry_at(self, provider: str | None, model: str, at_us: int) -> PriceEntry | None:
        for entry in self.candidates(provider, model):
            if entry.in_force(at_us):
                return entry
        return None


def _rank(entry: PriceEntry) -> tuple:
    spec = entry.specificity()
    return (-spec[0], -spec[1], -spec[2], entry.entry_id or 0)


# ---- the store -------------------------------------------------------------------------------------------------

_COLUMNS = ("entry_id", "source", *ENTRY_FIELDS)


def load_entries(db: Any) -> list[PriceEntry]:
    rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM price_entries WHERE NOT deleted ORDER BY entry_id").fetchall()  # noqa: S608
    out = []
    for row in rows:
        values = dict(zip(_COLUMNS, row, strict=True))
        out.append(PriceEntry(**values))
    return out


def _entry_json(entry: PriceEntry | None) -> str | None:
    return None if entry is None else orjson.dumps(entry.as_dict()).decode()


Actor = Principal | str  # a signed-in user or key; a plain name for the config file


def _audit(cur: Any, actor: Actor, action: str, entry_id: int, old: PriceEntry | None, new: PriceEntry | None) -> None:
    """The price book's own history (price_audit, shown beside the book) and the server's audit log of every
    change (core/audit.py), in the caller's transaction."""
    who = actor if isinstance(actor, Principal) else Principal(actor, "config")
    cur.execute(
        'INSERT INTO price_audit (audit_id, "at", actor, action, entry_id, old, new)'
        " SELECT coalesce(max(audit_id), 0) + 1, now(), ?, ?, ?, ?, ? FROM price_audit",
        [who.name, action, entry_id, _entry_json(old), _entry_json(new)],
    )
    before = None if old is None else old.as_dict()
    after = None if new is None else new.as_dict()
    audit.record(cur, who, action, "price", str(entry_id), before=before, after=after)


def add_entry(cur: Any, entry: PriceEntry, actor: Actor) -> PriceEntry:
    """Store a new entry (checked against the stored ones) and audit it. `cur` is inside a transaction."""
    check_no_overlap(entry, load_entries(cur))
    (entry_id,) = cur.execute("SELECT coalesce(max(entry_id), 0) + 1 FROM price_entries").fetchone()
    stored = replace(entry, entry_id=entry_id)
    _write(cur, stored)
    _audit(cur, actor, "create", entry_id, None, stored)
    return stored


def update_entry(cur: Any, entry_id: int, entry: PriceEntry, actor: Actor) -> PriceEntry:
    old = get_entry(cur, entry_id)
    stored = replace(entry, entry_id=entry_id, source=old.source)
    check_no_overlap(stored, load_entries(cur))
    cur.execute("DELETE FROM price_entries WHERE entry_id = ?", [entry_id])
    _write(cur, stored)
    _audit(cur, actor, "update", entry_id, old, stored)
    return stored


def delete_entry(cur: Any, entry_id: int, actor: Actor) -> PriceEntry:
    """Deleting keeps the row (calls name the entry they were priced by), marked deleted."""
    old = get_entry(cur, entry_id)
    cur.execute("UPDATE price_entries SET deleted = true WHERE entry_id = ?", [entry_id])
    _audit(cur, actor, "delete", entry_id, old, None)
    return old


def get_entry(cur: Any, entry_id: int, *, include_deleted: bool = False) -> PriceEntry:
    rows = cur.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM price_entries WHERE entry_id = ?"  # noqa: S608
        + ("" if include_deleted else " AND NOT deleted"),
        [entry_id],
    ).fetchall()
    if not rows:
        raise LookupError(f"no price entry #{entry_id}")
    return PriceEntry(**dict(zip(_COLUMNS, rows[0], strict=True)))


def _write(cur: Any, entry: PriceEntry) -> None:
    values = [getattr(entry, c) for c in _COLUMNS]
    cur.execute(
        f"INSERT INTO price_entries ({', '.join(_COLUMNS)}, created_at, deleted)"  # noqa: S608
        f" VALUES ({', '.join('?' for _ in _COLUMNS)}, now(), false)",
        values,
    )


def sync_config_entries(cur: Any, configured: Sequence[PriceEntry]) -> int:
    """Make the stored config-file entries equal the config file's (audited as actor "config file"); returns the
    number of changes. Entries added through the API are left alone, but a config entry that overlaps one fails."""
    stored = [e for e in load_entries(cur) if e.source == "config"]
    key = lambda e: (e.provider, e.model, e.valid_from, e.valid_to)  # noqa: E731
    wanted = {key(e): replace(e, source="config") for e in configured}
    have = {key(e): e for e in stored}
    changes = 0
    for k, entry in have.items():
        if k not in wanted:
            delete_entry(cur, entry.entry_id, "config file")  # type: ignore[arg-type]
            changes += 1
    for k, entry in wanted.items():
        old = have.get(k)
        if old is None:
            add_entry(cur, entry, "config file")
            changes += 1
        elif replace(old, entry_id=None, note=entry.note) != replace(entry, entry_id=None, note=entry.note):
            update_entry(cur, old.entry_id, entry, "config file")  # type: ignore[arg-type]
            changes += 1
    return changes


def audit_log(cur: Any, limit: int = 500) -> list[dict[str, Any]]:
    rows = cur.execute(
        'SELECT audit_id, "at", actor, action, entry_id, old, new FROM price_audit ORDER BY audit_id DESC LIMIT ?',
        [limit],
    ).fetchall()
    return [
        {
            "audit_id": a,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "entry_id": entry_id,
            "old": orjson.loads(old) if old else None,
            "new": orjson.loads(new) if new else None,
        }
        for a, at, actor, action, entry_id, old, new in rows
    ]
