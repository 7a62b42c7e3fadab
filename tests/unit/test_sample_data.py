"""The traffic generator: deterministic for a seed, its incidents where the script puts them, the shipped dataset
up to date. Figures are recomputed with numpy on the generated rows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sample_data import dataset
from sample_data import script as sc
from sample_data.catalog import UNPRICED_MODEL
from sample_data.traffic import World, generate
from tests.helpers import DEMO_CONVENTIONS

END = datetime(2026, 2, 20, 18, tzinfo=UTC)
DAYS = 10


@pytest.fixture(scope="module")
def world() -> World:
    return World.make(sc.script_for(END, DAYS), n_users=2000)


@pytest.fixture(scope="module")
def calls(world: World) -> pa.Table:
    return generate(world, np.random.default_rng(42), 200_000)


def _us(table: pa.Table, col: str = "start_time") -> np.ndarray:
    return table.column(col).cast(pa.int64()).to_numpy()


def _where(table: pa.Table, **equal: str) -> pa.Table:
    mask = None
    for col, value in equal.items():
        m = pc.equal(table.column(col).cast(pa.string()), value)
        mask = m if mask is None else pc.and_(mask, m)
    return table.filter(mask)


def _split(table: pa.Table, at: datetime) -> tuple[pa.Table, pa.Table]:
    t = _us(table)
    cut = sc.to_us(at)
    return table.filter(pa.array(t < cut)), table.filter(pa.array(t >= cut))


def _mean(table: pa.Table, col: str) -> float:
    return float(np.nanmean(table.column(col).to_numpy(zero_copy_only=False).astype(float)))


def test_same_seed_same_calls_other_seed_other_calls(world: World, calls: pa.Table) -> None:
    few = generate(world, np.random.default_rng(7), 20_000)
    assert generate(world, np.random.default_rng(7), 20_000).equals(few)
    other = generate(world, np.random.default_rng(8), 20_000)
    assert not other.column("trace_id").equals(few.column("trace_id"))
    assert len(set(zip(calls["trace_id"].to_pylist(), calls["span_id"].to_pylist(), strict=True))) == 200_000


def test_received_by_keeps_no_call_from_the_future(world: World) -> None:
    """A store filled up to now holds no call from the future: agent steps and the exporter's delay would push the
    last traces' calls past the end, and a range ending now would then miss them (a lake test once counted
    5998 of 6000 calls). Without `received_by` (the live trickle) calls may end after the window."""
    start, end = sc.to_us(world.script.start), sc.to_us(world.script.end)
    late = _us(generate(world, np.random.default_rng(3), 20_000), "received_at")
    assert late.max() > end  # what received_by is for
    cut = generate(world, np.random.default_rng(3), 20_000, received_by=end)
    received, started = _us(cut, "received_at"), _us(cut)
    assert cut.num_rows == 20_000
    assert received.max() <= end
    assert started.min() >= start
    assert (started <= received).all()


def test_latency_spike_only_on_its_provider_and_window(calls: pa.Table, world: World) -> None:
    ok = _where(calls, status="ok", operation="chat")
    spike = world.script.latency_spike
    t = _us(ok)
    inside = (t >= sc.to_us(spike.start)) & (t < sc.to_us(spike.end))
    slow = np.array(ok["provider"].to_pylist()) == sc.SPIKE_PROVIDER
    duration = ok["duration_ms"].to_numpy()
    assert (inside & slow).sum() > 30
    assert np.median(duration[inside & slow]) > 1.4 * np.median(duration[~inside & slow])
    # the other providers are not slower in that window
    ratio = np.median(duration[inside & ~slow]) / np.median(duration[~inside & ~slow])
    assert 0.6 < ratio < 1.4, ratio


def test_rate_limit_storm_on_its_provider(calls: pa.Table, world: World) -> None:
    storm = world.script.rate_limit_storm
    t = _us(calls)
    inside = (t >= sc.to_us(storm.start)) & (t < sc.to_us(storm.end))
    provider = np.array(calls["provider"].to_pylist())
    rate_limited = np.array(calls["http_status"].fill_null(0).to_numpy()) == 429
    storm_rate = rate_limited[inside & (provider == sc.STORM_PROVIDER)].mean()
    base_rate = rate_limited[~inside & (provider == sc.STORM_PROVIDER)].mean()
    assert storm_rate > 0.2 and base_rate < 0.02, (storm_rate, base_rate)
    errors = np.array(calls["status"].to_pylist()) == "error"
    assert 0.015 < errors.mean() < 0.035


def test_cost_per_call_jumps_after_the_prompt_change(calls: pa.Table, world: World) -> None:
    service = _where(calls, service=sc.PROMPT_CHANGE_SERVICE, status="ok")
    before, after = _split(service, world.script.prompt_change)
    assert before.num_rows > 500 and after.num_rows > 500
    assert _mean(after, "cost_usd") > 1.7 * _mean(before, "cost_usd")  # ~2x by the script
    others = _where(calls, service="support-bot", status="ok")
    o_before, o_after = _split(others, world.script.prompt_change)
    assert _mean(o_after, "output_tokens") == pytest.approx(_mean(o_before, "output_tokens"), rel=0.15)


def test_prompt_length_drifts_after_the_release(calls: pa.Table, world: World) -> None:
    service = _where(calls, service=sc.RELEASE_SERVICE, status="ok")
    before, after = _split(service, world.script.release)
    med_before = np.median(before["input_tokens"].to_numpy())
    med_after = np.median(after["input_tokens"].to_numpy())
    assert med_after / med_before == pytest.approx(sc.RELEASE_INPUT, rel=0.12)
    versions = {dict(m)["app_version"] for m in after["metadata"].to_pylist()}
    assert versions == {"2.14.0"}


def test_unpriced_model_only_after_its_date(calls: pa.Table, world: World) -> None:
    new = _where(calls, request_model=UNPRICED_MODEL)
    assert new.num_rows > 100
    assert _us(new).min() >= sc.to_us(world.script.unpriced_from)
    assert set(new["pricing"].to_pylist()) == {"unpriced"} and new["cost_usd"].null_count == new.num_rows
    assert set(new["service"].to_pylist()) == {sc.UNPRICED_SERVICE}


def test_diurnal_and_weekly_seasonality(calls: pa.Table) -> None:
    t = _us(calls) / 1e6
    hours = (t // 3600) % 24
    weekday = ((t // 86400) + 3) % 7
    weekdays = weekday < 5
    peak = np.isin(hours, [13, 14, 15])[weekdays].sum()
    night = np.isin(hours, [3, 4, 5])[weekdays].sum()
    assert peak > 3 * night
    assert (~weekdays).sum() / 2 < 0.7 * weekdays.sum() / 5  # a weekend day is quieter than a weekday


def test_shipped_dataset_is_what_the_generator_makes() -> None:
    """The shipped file is regenerated by `python -m sample_data.dataset`; this fails when it is stale."""
    shipped = dataset.load(now=dataset.END)  # shifted to end at the build's end time
    fresh = dataset.build()
    assert dataset.PATH.stat().st_size < 4_000_000
    assert shipped.table.num_rows == fresh.num_rows == dataset.CALLS
    for col in ("span_id", "cost_usd", "input_tokens", "service", "convention", "request_model"):
        assert shipped.table.column(col).to_pylist() == fresh.column(col).to_pylist(), col
    assert set(shipped.table["convention"].to_pylist()) == DEMO_CONVENTIONS
