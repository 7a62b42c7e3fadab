"""Failed sign-ins: free for a few, then refused for a delay that doubles with each further failure; per name and
per client address; a success clears the name; old failures are forgotten."""

from __future__ import annotations

from analytics import sign_in_throttle as t
from analytics.sign_in_throttle import SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delays_double_after_the_free_failures_and_a_success_clears_them():
    clock = Clock()
    throttle = SignInThrottle(clock)
    for _ in range(t.FREE_FAILURES):
        assert throttle.retry_after("ann", "10.0.0.1") is None
        throttle.failed("ann", "10.0.0.1")
    waits = []
    for _ in range(4):
        wait = throttle.retry_after("ann", "10.0.0.1")
        waits.append(wait)
        clock.now += wait  # the guesser waits as told, then fails again
        assert throttle.retry_after("ann", "10.0.0.1") is None
        throttle.failed("ann", "10.0.0.1")
    assert waits == [1, 2, 4, 8]
    assert throttle.retry_after("bob", "10.0.0.2") is None  # another name from another address is not slowed
    clock.now += 16
    throttle.succeeded("ann")
    assert throttle.retry_after("ann", "10.0.0.3") is None


def test_one_address_guessing_many_names_is_slowed_too():
    clock = Clock()
    throttle = SignInThrottle(clock)
    for i in range(t.FREE_FAILURES_PER_ADDRESS):
        throttle.failed(f"user{i}", "10.0.0.9")
    assert throttle.retry_after("someone-new", "10.0.0.9") == 1
    assert throttle.retry_after("someone-new", "10.0.0.10") is None


def test_failures_are_forgotten_after_the_window_and_delays_are_capped():
    clock = Clock()
    throttle = SignInThrottle(clock)
    for _ in range(t.FREE_FAILURES + 30):
        throttle.failed("ann", None)
    assert throttle.retry_after("ann", None) == t.MAX_DELAY_S
    clock.now += t.WINDOW_S + 1
    assert throttle.retry_after("ann", None) is None


def test_memory_is_bounded():
    throttle = SignInThrottle(Clock())
    for i in range(t.MAX_TRACKED + 50):
        throttle.failed(f"n{i}", None)
    assert len(throttle._failures) == t.MAX_TRACKED
