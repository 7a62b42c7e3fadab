"""The scripted incidents of a demo window: where each one is, as exact instants.

Every incident is placed at a fixed fraction of the window, so a window of any length shows all of them and a
test can look exactly where the script says. After a change point (prompt change, release, new model) the
changed behaviour persists, so live traffic generated after the window continues the story.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

STORM_PROVIDER = "openai"  # 429 storm: rate limits on one provider
SPIKE_PROVIDER = "anthropic"  # latency spike (and some timeouts) on one provider
OUTAGE_PROVIDER = "gcp.gemini"  # a burst of 5xx answers
PROMPT_CHANGE_SERVICE = "summarizer"  # a prompt change makes answers longer: cost per call jumps
RELEASE_SERVICE = "support-bot"  # a release adds context to the prompt: prompt length drifts up
UNPRICED_SERVICE = "email-drafter"  # starts trying a model genai-prices does not price yet

PROMPT_CHANGE_INPUT = 1.8  # input tokens x this after the prompt change (few-shot examples added)
PROMPT_CHANGE_OUTPUT = 2.6  # output tokens x this after the prompt change
RELEASE_INPUT = 1.45  # input tokens x this after the release
RELEASE_VERSIONS = ("2.13.4", "2.14.0")  # the release service's service.version before and after its release
SPIKE_LATENCY = 4.0  # time to first token x this during the spike
UNPRICED_SHARE = 0.25  # share of the service's calls on the new model after its date


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def us(self) -> tuple[int, int]:
        return to_us(self.start), to_us(self.end)


@dataclass(frozen=True)
class Script:
    start: datetime
    end: datetime
    rate_limit_storm: Window
    latency_spike: Window
    server_errors: Window
    prompt_change: datetime
    release: datetime
    unpriced_from: datetime

    def shifted(self, delta: timedelta) -> Script:
        """The same script moved in time (the shipped dataset is shifted to end now)."""
        return Script(
            self.start + delta,
            self.end + delta,
            Window(self.rate_limit_storm.start + delta, self.rate_limit_storm.end + delta),
            Window(self.latency_spike.start + delta, self.latency_spike.end + delta),
            Window(self.server_errors.start + delta, self.server_errors.end + delta),
            self.prompt_change + delta,
            self.release + delta,
            self.unpriced_from + delta,
        )


def script_for(end: datetime, days: float) -> Script:
    """The incidents of the window of `days` days that ends at `end` (timezone-aware)."""
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    span = timedelta(days=days)
    start = end - span

    def at(fraction: float) -> datetime:
        return start + span * fraction

    def window(fraction: float, minutes: float) -> Window:
        length = min(timedelta(minutes=minutes), span * 0.1)
        return Window(at(fraction), at(fraction) + length)

    return Script(
        start=start,
        end=end,
        rate_limit_storm=window(0.28, 45),
        latency_spike=window(0.45, 180),
        server_errors=window(0.65, 30),
        prompt_change=at(0.55),
        release=at(0.70),
        unpriced_from=at(0.80),
    )


def demo_script(end: datetime, days: float, recent: timedelta = timedelta(hours=24)) -> Script:
    """The shipped demo's script: a window of `days` days whose incidents all lie in its last `recent` (placed
    there as script_for places them in a window of that length), so the dashboard's default view (the last 24
    hours) shows every one of them, against days of ordinary traffic before (the "previous period" the Overview
    compares with)."""
    if timedelta(days=days) <= recent:
        return script_for(end, days)
    return replace(script_for(end, recent.total_seconds() / 86400), start=end - timedelta(days=days))


def to_us(t: datetime) -> int:
    return round(t.timestamp() * 1_000_000)


def calm_script(end: datetime, days: float) -> Script:
    """A window of `days` days ending at `end` where nothing is scripted: every incident lies a year before it and
    every change a year after it (undrifted traffic, for measuring false alarms)."""
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    before, after = end - timedelta(days=days + 365), end + timedelta(days=365)
    quiet = Window(before, before + timedelta(minutes=1))
    return Script(end - timedelta(days=days), end, quiet, quiet, quiet, after, after, after)
