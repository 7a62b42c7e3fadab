"""Failed password sign-ins slow down whoever guesses.

A password check costs ~0.15 s of argon2id, so guessing is slow but not stopped: ~24,000 guesses a day per core.
After FREE_FAILURES failed sign-ins for one name within WINDOW_S (or FREE_FAILURES_PER_ADDRESS from one client
address: one guesser trying many names), every further attempt for that name or from that address is refused with
429 and Retry-After, without checking the password, until a delay has passed that doubles with each further
failure (1 s, 2 s, 4 s ... at most MAX_DELAY_S). A successful sign-in clears its name's failures. The counts live in
the server's memory (per node; a restart forgets them) and are bounded (the oldest are forgotten first).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock

FREE_FAILURES = 5
FREE_FAILURES_PER_ADDRESS = 20  # many people may share an address (a proxy, an office)
WINDOW_S = 60 * 60.0  # failures older than this are forgotten (longer than the longest delay)
BASE_DELAY_S = 1.0
MAX_DELAY_S = 15 * 60.0
MAX_TRACKED = 10_000  # names and addresses kept; more evicts the least recently failed


@dataclass
class _Failures:
    count: int
    last: float  # when the latest failure was


class SignInThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        self._lock = Lock()

    def retry_after(self, name: str, address: str | None) -> int | None:
        """Seconds to wait before `name` may try again from `address`; None: it may try now."""
        now = self._clock()
        with self._lock:
            waits = [
                self._wait(("name", name), FREE_FAILURES, now),
                self._wait(("address", address), FREE_FAILURES_PER_ADDRESS, now) if address else None,
            ]
        longest = max((w for w in waits if w is not None), default=None)
        return None if longest is None else max(1, math.ceil(longest))

    def failed(self, name: str, address: str | None) -> None:
        now = self._clock()
        with self._lock:
            for key in (("name", name), *((("address", address),) if address else ())):
                entry = self._current(key, now)
                if entry is None:
                    entry = _Failures(0, now)
                entry.count += 1
                entry.last = now
                self._failures[key] = entry
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_TRACKED:
                self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(("name", name), None)

    def _current(self, key: tuple[str, str], now: float) -> _Failures | None:
        entry = self._failures.get(key)
        if entry is not None and now - entry.last > WINDOW_S:
            del self._failures[key]
            return None
        return entry

    def _wait(self, key: tuple[str, str], free: int, now: float) -> float | None:
        entry = self._current(key, now)
        if entry is None or entry.count < free:
            return None
        delay = min(BASE_DELAY_S * 2 ** (entry.count - free), MAX_DELAY_S)
        left = entry.last + delay - now
        return left if left > 0 else None
