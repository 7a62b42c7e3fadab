"""The traffic generator: seeded, vectorised (numpy), one Arrow table of `calls` rows per chunk.

Both ways out use it: sample_data/bulk.py inserts the tables straight into DuckDB (benchmarks), and
sample_data/otlp.py turns the same rows into spans of several conventions sent to a running collector.
Rows are exactly what the collector would store for those spans (costs from the same genai-prices rates), so a
round trip through the collector can be checked row by row.

Shape: traces (requests) arrive with diurnal and weekly seasonality; a trace is one call, two (search: embed then
rerank) or an agent loop of 2-8 steps with tool calls between. Users are Zipf-distributed, sessions are a user's
30-minute windows, latency is lognormal per model and grows with prompt and output tokens. Errors (429, 5xx,
timeouts, 400) have a base rate plus the scripted incidents of sample_data/script.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.records import CALL_COLUMNS, Pricing, ProviderSource, Status, arrow_schema
from sample_data import catalog as cat
from sample_data import script as sc

CALLS_SCHEMA = arrow_schema(CALL_COLUMNS)
PROJECT = "default"
SESSION_SECONDS = 1800
_US = 1_000_000
_ZIPF_EXPONENT = 1.1


@dataclass(frozen=True)
class World:
    """Everything fixed for one run: the script, the users and the models in use."""

    script: sc.Script
    n_users: int
    models: tuple[int, ...]  # indexes into catalog.MODELS

    @staticmethod
    def make(script: sc.Script, *, n_users: int = 5000, n_models: int = 20) -> World:
        if n_users < 1:
            raise ValueError("n_users must be at least 1")
        return World(script, n_users, tuple(cat.models_in_use(n_models)))


# ---------------------------------------------------------------------------------------------- lookup tables


@dataclass(frozen=True)
class _Tables:
    """Per-model and per-service arrays, so the generator indexes instead of looping."""

    svc_weight: np.ndarray
    svc_in: np.ndarray  # (n_services, 2) median, sigma
    svc_out: np.ndarray
    svc_stream: np.ndarray
    svc_agent: np.ndarray
    svc_user: np.ndarray
    conventions: tuple[str, ...]
    m_provider: np.ndarray  # provider code per model
    providers: tuple[str, ...]
    m_base: np.ndarray
    m_tps: np.ndarray
    m_reasoning: np.ndarray
    m_explicit_cache: np.ndarray
    m_auto_cache: np.ndarray
    m_embedding: np.ndarray


@cache
def _tables() -> _Tables:
    conventions = tuple(dict.fromkeys(s.convention for s in cat.SERVICES))
    providers = tuple(dict.fromkeys(m.provider for m in cat.MODELS))
    return _Tables(
        svc_weight=np.array([s.weight for s in cat.SERVICES]),
        svc_in=np.array([s.input_tokens for s in cat.SERVICES]),
        svc_out=np.array([s.output_tokens for s in cat.SERVICES]),
        svc_stream=np.array([s.stream_p for s in cat.SERVICES]),
        svc_agent=np.array([s.agent for s in cat.SERVICES]),
        svc_user=np.array([s.has_user for s in cat.SERVICES]),
        conventions=conventions,
        m_provider=np.array([providers.index(m.provider) for m in cat.MODELS]),
        providers=providers,
        m_base=np.array([m.base_ms for m in cat.MODELS]),
        m_tps=np.array([m.tokens_per_s for m in cat.MODELS]),
        m_reasoning=np.array([m.reasoning_median for m in cat.MODELS], dtype=float),
        m_explicit_cache=np.array([m.caching == "explicit" for m in cat.MODELS]),
        m_auto_cache=np.array([m.caching == "auto" for m in cat.MODELS]),
        m_embedding=np.array([m.operation == "embeddings" for m in cat.MODELS]),
    )


@dataclass(frozen=True)
class _Price:
    rates: np.ndarray  # (3 * n_models, 4): uncached input, cache read, cache write, output (USD per token)
    priced: np.ndarray  # bool per row of rates
    sources: tuple[str | None, ...]
    # Rows whose price depends on the call's time (e.g. DeepSeek's off-peak discount): (row, rates at a time).
    timed: tuple[tuple[int, Callable[[int], tuple[float, float, float, float]]], ...] = ()


@cache
def _prices() -> _Price:
    """Rates per model as the collector finds them: rows 0..n-1 by (provider, response model), rows n..2n-1 by
    the request model and the provider inferred from it (conventions in MODEL_NAME_ONLY), rows 2n..3n-1 by
    (provider, request model)."""
    from collector.pricing import Pricer  # the collector's own rates: costs match what it would compute

    pricer = Pricer()
    inferred = _inferred_providers()
    keys = [(m.provider, m.response) for m in cat.MODELS] + [(inferred[i], m.name) for i, m in enumerate(cat.MODELS)]
    keys += [(m.provider, m.name) for m in cat.MODELS]  # failed calls have no response model
    rates = np.zeros((len(keys), 4))
    priced = np.zeros(len(keys), dtype=bool)
    sources: list[str | None] = []
    timed = []
    for i, (provider, model) in enumerate(keys):
        r = pricer.rates(provider, model, at_ns=_REFERENCE_NS)
        if r is None:
            sources.append(None)
            continue
        rates[i] = (r.uncached_input, r.cache_read, r.cache_write, r.output)
        priced[i] = True
        sources.append(r.source)
        if pricer.is_time_dependent(provider, model):

            def at(us: int, provider: str | None = provider, model: str = model) -> tuple[float, float, float, float]:
                x = pricer.rates(provider, model, at_ns=us * 1000)
                assert x is not None
                return (x.uncached_input, x.cache_read, x.cache_write, x.output)

            timed.append((i, at))
    return _Price(rates, priced, tuple(sources), tuple(timed))


@cache
def _inferred_providers() -> tuple[str | None, ...]:
    """Per model, the provider the collector infers when a span names only the model (None: it infers none)."""
    from collector.pricing import Pricer

    pricer = Pricer()
    return tuple(pricer.provider_for(m.name) for m in cat.MODELS)


@cache
def _model_names() -> tuple[str | None, ...]:
    """Per model, its canonical name as the collector stores it (`model`): genai-prices' id of the model asked for,
    which every call of that model gets whatever its provider was named and whether it failed."""
    from collector.pricing import Pricer

    pricer = Pricer()
    return tuple(pricer.model_name(m.provider, m.name, m.response) for m in cat.MODELS)


def with_model_names(table: pa.Table) -> pa.Table:
    """`table` with the `model` column (added by m012) when it lacks it, e.g. a dataset written before: each row's
    name as the collector would store it, in CALL_COLUMNS order."""
    if "model" in table.column_names:
        return table
    from collector.pricing import Pricer

    pricer = Pricer()
    keys = zip(*(table.column(c).to_pylist() for c in ("provider", "request_model", "response_model")), strict=True)
    names = pa.array([pricer.model_name(*k) for k in keys], pa.string())
    table = table.append_column("model", names)
    return table.select([c.name for c in CALL_COLUMNS if c.name in table.column_names])


_REFERENCE_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z: rates of time-independent models do not depend on it
_SLOT_US = 30 * 60 * _US  # conditional prices change on half hours (off-peak windows) or at midnight (new prices)


def _row_rates(price: _Price, price_row: np.ndarray, start_us: np.ndarray) -> np.ndarray:
    """Per-row rates, with time-dependent models priced at each call's own time (one lookup per half hour)."""
    r = price.rates[price_row].copy()
    for row, at in price.timed:
        rows = np.nonzero(price_row == row)[0]
        if not len(rows):
            continue
        slots = start_us[rows] // _SLOT_US
        unique, inverse = np.unique(slots, return_inverse=True)
        per_slot = np.array([at(int(slot) * _SLOT_US) for slot in unique])
        r[rows] = per_slot[inverse]
    return r


def span_name(convention: str, model: cat.Model, streaming: bool) -> str:
    """The span name each library gives a call."""
    op = model.operation
    if convention == "openllmetry":
        return f"{model.provider.split('.')[-1]}.{op}"
    if convention == "openinference":
        return "CreateEmbeddings" if op == "embeddings" else "ChatCompletion"
    if convention == "vercel_ai":
        return "ai.streamText.doStream" if streaming else "ai.generateText.doGenerate"
    if convention == "langfuse":
        return "extract-fields"
    if convention == "logfire":
        return "Chat Completion with {request_data[model]!r}"  # Logfire names spans by their message template
    return f"{op} {model.name}"


# ---------------------------------------------------------------------------------------------- seasonality


def intensity(t_us: np.ndarray) -> np.ndarray:
    """Relative request rate at instants t: a working-day curve (UTC, Europe + US afternoon), quiet weekends."""
    hours = (t_us / (3600 * _US)) % 24
    day = (t_us // (86400 * _US) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    diurnal = 0.18 + np.exp(-(((hours - 14.0) / 4.0) ** 2)) + 0.35 * np.exp(-(((hours - 20.5) / 2.0) ** 2))
    weekly = np.where(day == 5, 0.5, np.where(day == 6, 0.4, 1.0))
    return diurnal * weekly


def _sample_times(rng: np.random.Generator, n: int, start_us: int, end_us: int) -> np.ndarray:
    edges = np.arange(start_us, end_us, 60 * _US, dtype=np.int64)
    widths = np.diff(np.append(edges, end_us))
    weights = intensity(edges + widths // 2) * widths
    bins = rng.choice(len(edges), size=n, p=weights / weights.sum())
    return edges[bins] + (rng.random(n) * widths[bins]).astype(np.int64)


def _batch_times(rng: np.random.Generator, n: int, start_us: int, end_us: int) -> np.ndarray | None:
    """The nightly batch job: 02:00-03:15 UTC on the nights inside the window (None when there is none)."""
    day = 86400 * _US
    first = (start_us // day) * day + 2 * 3600 * _US
    nights = np.arange(first, end_us, day, dtype=np.int64)
    nights = nights[(nights >= start_us) & (nights + 75 * 60 * _US <= end_us)]
    if len(nights) == 0:
        return None
    return nights[rng.integers(0, len(nights), n)] + (rng.random(n) * 75 * 60 * _US).astype(np.int64)


# ---------------------------------------------------------------------------------------------- generation


def generate(
    world: World,
    rng: np.random.Generator,
    n_calls: int,
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    received_by: int | None = None,
) -> pa.Table:
    """n_calls rows of `calls` (CALL_COLUMNS order) whose traces start in [start_us, end_us) (default: the script's
    window). Deterministic for a given generator state.

    A trace's later calls (an agent's steps) and the time until a span is sent can fall after end_us. With
    `received_by` only the calls received by then are kept, as a collector would hold them at that moment: a
    store filled up to now then holds no call from the future, which a range ending now would miss. Without it
    (the live trickle, whose calls are sent as they come) every call is kept."""
    s_us, e_us = world.script.start, world.script.end
    start_us = sc.to_us(s_us) if start_us is None else start_us
    end_us = sc.to_us(e_us) if end_us is None else end_us
    if n_calls <= 0:
        return CALLS_SCHEMA.empty_table()
    n_traces = int(n_calls / 1.35) + 16
    while True:
        cols = _generate(world, rng, n_traces, start_us, end_us)
        if received_by is not None:
            kept = _received_us(cols) <= received_by
            cols = {k: v[kept] for k, v in cols.items()}
        if len(cols["start"]) >= n_calls:
            break
        n_traces *= 2
    return _to_arrow(world, {k: v[:n_calls] for k, v in cols.items()})


def _lognormal(rng: np.random.Generator, median: np.ndarray | float, sigma: np.ndarray | float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def _generate(world: World, rng: np.random.Generator, nt: int, start_us: int, end_us: int) -> dict[str, np.ndarray]:
    t = _tables()
    script = world.script
    models = np.array(world.models)
    tail = [i for i in world.models if not any(i == cat.MODEL_INDEX[m] for s in cat.SERVICES for m, _ in s.models)]
    tail = [i for i in tail if cat.MODELS[i].name != cat.UNPRICED_MODEL and not t.m_embedding[i]]
    weights = t.svc_weight.copy()
    playground = cat.SERVICE_INDEX["playground"]
    if not tail:
        weights[playground] = 0.0

    # --- traces
    svc = rng.choice(len(cat.SERVICES), size=nt, p=weights / weights.sum())
    t0 = _sample_times(rng, nt, start_us, end_us)
    for i, s in enumerate(cat.SERVICES):
        if s.batch:
            mask = svc == i
            night = _batch_times(rng, int(mask.sum()), start_us, end_us)
            if night is not None:
                t0[mask] = night
    env_p = np.array([p for _, p in cat.ENVIRONMENTS])
    env = rng.choice(len(env_p), size=nt, p=env_p / env_p.sum())
    ranks = np.arange(1, world.n_users + 1, dtype=float) ** -_ZIPF_EXPONENT
    user = rng.choice(world.n_users, size=nt, p=ranks / ranks.sum())  # a user's rank: 0 is the heaviest
    user = np.where(t.svc_user[svc], user, -1)
    stream_t = rng.random(nt) < t.svc_stream[svc]
    feature = rng.integers(0, 2, nt)

    chat_model = np.zeros(nt, dtype=np.int64)
    for i, s in enumerate(cat.SERVICES):
        mask = svc == i
        k = int(mask.sum())
        if not k:
            continue
        if s.models:
            names = [cat.MODEL_INDEX[m] for m, _ in s.models]
            p = np.array([w for _, w in s.models])
        else:
            names = tail
            p = np.arange(1, len(tail) + 1, dtype=float) ** -1.0
        chat_model[mask] = np.array(names)[rng.choice(len(names), size=k, p=p / p.sum())]
    unpriced = (
        (svc == cat.SERVICE_INDEX[sc.UNPRICED_SERVICE])
        & (t0 >= sc.to_us(script.unpriced_from))
        & (rng.random(nt) < sc.UNPRICED_SHARE)
    )
    chat_model[unpriced] = cat.MODEL_INDEX[cat.UNPRICED_MODEL]
    assert np.isin(chat_model[weights[svc] > 0], models).all()

    counts = np.ones(nt, dtype=np.int64)
    has_embed = np.array([s.embedding_model is not None for s in cat.SERVICES])
    counts[has_embed[svc]] = 2
    agent = t.svc_agent[svc]
    counts[agent] = np.minimum(1 + rng.geometric(0.4, int(agent.sum())), 8)

    # --- calls
    n = int(counts.sum())
    tr = np.repeat(np.arange(nt), counts)
    first = np.cumsum(counts) - counts
    step = np.arange(n) - first[tr]
    last = step == counts[tr] - 1
    c_svc = svc[tr]
    model = chat_model[tr]
    embed_model = np.array([cat.MODEL_INDEX[s.embedding_model] if s.embedding_model else -1 for s in cat.SERVICES])
    is_embed_step = has_embed[c_svc] & (step == 0)
    model[is_embed_step] = embed_model[c_svc[is_embed_step]]
    provider = t.m_provider[model]
    embedding = t.m_embedding[model]
    c_t0 = t0[tr]

    prompt_changed = (c_svc == cat.SERVICE_INDEX[sc.PROMPT_CHANGE_SERVICE]) & (c_t0 >= sc.to_us(script.prompt_change))
    released = (c_svc == cat.SERVICE_INDEX[sc.RELEASE_SERVICE]) & (c_t0 >= sc.to_us(script.release))

    # tokens
    inp = _lognormal(rng, t.svc_in[c_svc, 0], t.svc_in[c_svc, 1], n) * np.where(t.svc_agent[c_svc], 1 + 0.7 * step, 1)
    inp = np.where(embedding, _lognormal(rng, 40.0, 0.5, n), inp)
    inp *= np.where(prompt_changed, sc.PROMPT_CHANGE_INPUT, 1.0) * np.where(released, sc.RELEASE_INPUT, 1.0)
    inp = np.clip(np.rint(inp), 8, 150_000).astype(np.int64)
    visible = _lognormal(rng, t.svc_out[c_svc, 0], t.svc_out[c_svc, 1], n)
    visible *= np.where(prompt_changed, sc.PROMPT_CHANGE_OUTPUT, 1.0)
    visible = np.where(embedding, 0, np.clip(np.rint(visible), 1, 16_000)).astype(np.int64)
    reasoning_med = t.m_reasoning[model]
    reasoning = np.where(reasoning_med > 0, np.rint(_lognormal(rng, np.maximum(reasoning_med, 1), 0.8, n)), 0)
    reasoning = np.clip(reasoning, 0, 30_000).astype(np.int64)
    out = visible + reasoning
    conv = np.array([s.convention for s in cat.SERVICES])[c_svc]
    no_cache = np.isin(conv, list(cat.NO_CACHE))
    u = rng.random(n)
    frac = rng.uniform(0.3, 0.9, n)
    explicit = t.m_explicit_cache[model] & ~no_cache
    cache_read = np.where(explicit & (u < 0.75), np.rint(inp * frac), 0)
    cache_write = np.where(explicit & (u >= 0.75) & (u < 0.87), np.rint(inp * frac * 0.8), 0)
    cache_write = np.where(np.isin(conv, list(cat.NO_CACHE_WRITE)), 0, cache_write)
    auto = t.m_auto_cache[model] & ~no_cache & (inp >= 1024) & (u < 0.45)
    cache_read = np.where(auto, np.floor(inp * frac / 128) * 128, cache_read).astype(np.int64)
    cache_write = cache_write.astype(np.int64)

    # latency
    streaming = stream_t[tr] & ~embedding
    lo, hi = script.latency_spike.start, script.latency_spike.end
    spike = (provider == t.providers.index(sc.SPIKE_PROVIDER)) & (c_t0 >= sc.to_us(lo)) & (c_t0 < sc.to_us(hi))
    tps = t.m_tps[model] / np.where(spike, 1.8, 1.0)
    ttft = _lognormal(rng, t.m_base[model], 0.35, n) * np.where(spike, sc.SPIKE_LATENCY, 1.0)
    ttft += inp * 0.04 + reasoning / tps * 1000
    duration = ttft + visible / tps * 1000 * _lognormal(rng, 1.0, 0.2, n)
    duration = np.where(embedding, _lognormal(rng, t.m_base[model], 0.3, n) + inp * 0.002, duration)

    # errors: base rates plus the incidents
    p = np.tile(np.array(cat.BASE_ERROR_P), (n, 1))
    storm = _in(c_t0, script.rate_limit_storm) & (provider == t.providers.index(sc.STORM_PROVIDER))
    outage = _in(c_t0, script.server_errors) & (provider == t.providers.index(sc.OUTAGE_PROVIDER))
    p[storm, 0] = 0.35
    p[outage, 1] = 0.2
    p[outage, 2] = 0.15
    p[spike, 3] = 0.04
    p[spike, 2] = 0.03
    kind = (rng.random(n)[:, None] >= np.cumsum(p, axis=1)).sum(axis=1)  # len(ERRORS) = no error
    ok = kind == len(cat.ERRORS)
    err_med = np.array([e.duration_ms[0] for e in cat.ERRORS] + [1.0])
    err_sigma = np.array([e.duration_ms[1] for e in cat.ERRORS] + [0.0])
    duration = np.where(ok, duration, _lognormal(rng, err_med[kind], err_sigma[kind], n))

    # finish reasons: 0 stop, 1 length, 2 tool_calls, -1 none
    finish = np.where(rng.random(n) < 0.02, 1, 0)
    finish = np.where(t.svc_agent[c_svc] & ~last, 2, finish)
    finish = np.where(embedding | ~ok, -1, finish)

    # times inside a trace: each call waits for the previous one, agent steps for a tool call between
    gap = np.where(step == 0, _lognormal(rng, 15.0, 0.5, n), 15.0)
    gap = np.where(t.svc_agent[c_svc] & (step > 0), _lognormal(rng, 900.0, 0.8, n), gap)
    item = gap + duration
    before = np.cumsum(item) - item
    rel_ms = before - before[first][tr] + gap
    start = c_t0 + (rel_ms * 1000).astype(np.int64)

    trace_ids = np.frombuffer(rng.bytes(16 * nt), dtype=np.uint8).reshape(nt, 16)
    roots = np.frombuffer(rng.bytes(8 * nt), dtype=np.uint8).reshape(nt, 8)
    span_ids = np.frombuffer(rng.bytes(8 * n), dtype=np.uint8).reshape(n, 8)
    return {
        "trace_id": trace_ids[tr],
        "span_id": span_ids,
        "parent": roots[tr],
        "has_parent": (counts > 1)[tr],
        "svc": c_svc,
        "env": env[tr],
        "start": start,
        "duration": duration,
        "ttft": np.where(streaming & ok, ttft, np.nan),
        "model": model,
        "input": inp,
        "output": out,
        "cache_read": cache_read,
        "cache_write": cache_write,
        "reasoning": reasoning,
        "streaming": streaming,
        "kind": kind,
        "finish": finish,
        "user": user[tr],
        "feature": feature[tr],
        "changed": prompt_changed | released,
        "received_lag": _lognormal(rng, 2500.0, 0.5, n),
    }


def _end_us(c: dict[str, np.ndarray]) -> np.ndarray:
    return c["start"] + (c["duration"] * 1000).astype(np.int64)


def _received_us(c: dict[str, np.ndarray]) -> np.ndarray:
    """When the collector receives each call: its span ends, then the exporter's batch delay."""
    return _end_us(c) + (c["received_lag"] * 1000).astype(np.int64)


def _in(t_us: np.ndarray, window: sc.Window) -> np.ndarray:
    lo, hi = window.us()
    return (t_us >= lo) & (t_us < hi)


# ---------------------------------------------------------------------------------------------- Arrow rendering


def _binary(rows: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A (n, width) uint8 matrix as an Arrow binary column (zero-length and null where not valid)."""
    n, width = rows.shape
    if valid is None:
        offsets = np.arange(0, width * (n + 1), width, dtype=np.int32)
        return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(rows.tobytes())])
    lengths = np.where(valid, width, 0).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    data = pa.py_buffer(rows[valid].tobytes())
    return pa.Array.from_buffers(pa.binary(), n, [bitmap, pa.py_buffer(offsets), data], null_count=int((~valid).sum()))


def _take(values: list, codes: np.ndarray, typ: pa.DataType | None = None) -> pa.Array:
    """values[codes] as an Arrow column (null where code < 0). Strings stay dictionary-encoded (no copy; DuckDB
    and Parquet read dictionaries natively); lists and maps are taken in C++."""
    if typ is None:  # a dictionary holds no nulls: a None value is a null index
        none = np.array([v is None for v in values] + [True])
        idx = pa.array(codes.astype(np.int32), mask=none[codes])  # codes < 0 index the trailing True
        return pa.DictionaryArray.from_arrays(idx, pa.array(["" if v is None else v for v in values], pa.string()))
    return pa.array(values, typ).take(pa.array(codes.astype(np.int32), mask=codes < 0))


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64), pa.int64()).cast(pa.timestamp("us", tz="UTC"))


@cache
def _labels(n_users: int) -> tuple[list[str], np.ndarray]:
    """User ids, shuffled so the heaviest users are not user-00000..; and each rank's plan tier code."""
    perm = np.random.default_rng(n_users).permutation(n_users)
    names = [f"user-{i:05d}" for i in perm]
    rank = np.arange(n_users)
    tier = np.where(rank < max(1, n_users * 0.02), 0, np.where(rank < n_users * 0.22, 1, 2))
    return names, tier


@cache
def _meta_table() -> list[list[tuple[str, str]]]:
    """metadata maps indexed by (service, feature, changed): feature, prompt or app version."""
    maps = []
    for s in cat.SERVICES:
        for f in range(2):
            for changed in (False, True):
                feature = s.features[f % len(s.features)]
                entries = [("feature", feature)]
                if s.name == sc.RELEASE_SERVICE:
                    entries.append(("app_version", sc.RELEASE_VERSIONS[int(changed)]))
                entries.append(("prompt_version", "v4" if changed and s.name == sc.PROMPT_CHANGE_SERVICE else "v3"))
                maps.append(entries)
    return maps


def _release_codes(svc: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """Index into RELEASE_VERSIONS per call: the release service reports service.version (before or after its
    release); the other services report none (-1)."""
    released = cat.SERVICE_INDEX[sc.RELEASE_SERVICE]
    return np.where(svc == released, changed.astype(np.int64), -1)


def _to_arrow(world: World, c: dict[str, np.ndarray]) -> pa.Table:
    t = _tables()
    price = _prices()
    n = len(c["start"])
    model, svc, kind = c["model"], c["svc"], c["kind"]
    ok = kind == len(cat.ERRORS)
    n_models = len(cat.MODELS)

    end = _end_us(c)
    tok_null = ~ok

    def tokens(a: np.ndarray) -> pa.Array:
        return pa.array(a, pa.int64(), mask=tok_null)

    conv_names = [s.convention for s in cat.SERVICES]
    no_provider = np.isin(np.array(conv_names)[svc], list(cat.MODEL_NAME_ONLY))
    no_finish = np.isin(np.array(conv_names)[svc], list(cat.NO_FINISH_REASON))
    inferred_known = np.array([p is not None for p in _inferred_providers()])
    price_row = np.where(no_provider, model + n_models, np.where(ok, model, model + 2 * n_models))
    r = _row_rates(price, price_row, c["start"])
    cost = (
        (c["input"] - c["cache_read"] - c["cache_write"]) * r[:, 0]
        + c["cache_read"] * r[:, 1]
        + c["cache_write"] * r[:, 2]
        + c["output"] * r[:, 3]
    )
    cost = np.where(ok, cost, 0.0)
    priced = price.priced[price_row]
    reports = np.isin(np.array(conv_names)[svc], ["openlit", "langfuse"]) & ok & priced

    user_names, tier = _labels(world.n_users)
    has_user = c["user"] >= 0
    user_codes = np.where(has_user, c["user"], -1)
    bucket = c["start"] // (SESSION_SECONDS * _US)
    session = pc.binary_join_element_wise(
        pa.array(user_names).take(pa.array(np.where(has_user, user_codes, 0))), pa.array(bucket).cast(pa.string()), "-"
    )  # a session is a user's 30-minute window: "user-01234-984521"
    session = pc.if_else(pa.array(has_user), session, pa.scalar(None, pa.string()))

    tagsets = []
    for s in cat.SERVICES:
        for tier_name in cat.TIERS:
            tagsets.append([*s.tags, tier_name] if s.convention in cat.TAG_CONVENTIONS else None)
    tag_codes = svc * len(cat.TIERS) + np.where(has_user, tier[np.maximum(user_codes, 0)], 2)
    tag_codes = np.where(np.array([tagsets[i] is None for i in range(len(tagsets))])[tag_codes], -1, tag_codes)

    names = [
        span_name(conv_names[s], cat.MODELS[m], bool(st))
        for s in range(len(cat.SERVICES))
        for m in range(n_models)
        for st in (0, 1)
    ]
    name_codes = (svc * n_models + model) * 2 + c["streaming"]
    err_types = [e.error_type for e in cat.ERRORS] + [None]
    err_messages = [e.message for e in cat.ERRORS] + [None]
    http = np.array([e.http_status or -1 for e in cat.ERRORS] + [-1])[kind]

    columns = {
        "trace_id": _binary(c["trace_id"]),
        "span_id": _binary(c["span_id"]),
        "parent_span_id": _binary(c["parent"], c["has_parent"]),
        "project": _take([PROJECT], np.zeros(n, dtype=np.int32)),
        "service": _take([s.name for s in cat.SERVICES], svc),
        "environment": _take([e for e, _ in cat.ENVIRONMENTS], c["env"]),
        "start_time": _ts(c["start"]),
        "end_time": _ts(end),
        "duration_ms": pa.array((end - c["start"]) / 1000.0),
        "ttft_ms": pa.array(c["ttft"], mask=np.isnan(c["ttft"])),
        # a convention that names no provider: the collector infers it from the model (and says so)
        "provider": _take(
            [*t.providers, *_inferred_providers()], np.where(no_provider, len(t.providers) + model, t.m_provider[model])
        ),
        "operation": _take([m.operation for m in cat.MODELS], model),
        "request_model": _take([m.name for m in cat.MODELS], model),
        "response_model": _take([m.response for m in cat.MODELS], np.where(ok & ~no_provider, model, -1)),
        "input_tokens": tokens(c["input"]),
        "output_tokens": tokens(c["output"]),
        "cache_read_tokens": tokens(c["cache_read"]),
        "cache_write_tokens": tokens(c["cache_write"]),
        "reasoning_tokens": tokens(c["reasoning"]),
        "cost_usd": pa.array(cost, mask=~priced),
        "pricing": _take([Pricing.PRICED.value, Pricing.UNPRICED.value], np.where(priced, 0, 1)),
        "price_source": _take(list(price.sources), np.where(priced, price_row, -1)),
        "reported_cost_usd": pa.array(np.round(cost, 10), mask=~reports),
        "streaming": pa.array(c["streaming"]),
        "status": _take([Status.OK.value, Status.ERROR.value], np.where(ok, 0, 1)),
        "error_type": _take(err_types, np.where(ok, -1, kind)),
        "http_status": pa.array(http, pa.int32(), mask=http < 0),
        "finish_reason": _take(["stop", "length", "tool_calls"], np.where(no_finish, -1, c["finish"])),
        "user_id": _take(user_names, user_codes),
        "session_id": session,
        "tags": _take(tagsets, tag_codes, pa.list_(pa.string())),
        "metadata": _take(
            _meta_table(), (svc * 2 + c["feature"]) * 2 + c["changed"], pa.map_(pa.string(), pa.string())
        ),
        "convention": _take(conv_names, svc),
        "span_name": _take(names, name_codes),
        "input_content": pa.nulls(n, pa.string()),
        "output_content": pa.nulls(n, pa.string()),
        "received_at": _ts(_received_us(c)),
        "error_message": _take(err_messages, np.where(ok, -1, kind)),
        "provider_source": _take(
            [ProviderSource.CLIENT.value, ProviderSource.INFERRED.value],
            np.where(no_provider, np.where(inferred_known[model], 1, -1), 0),
        ),
        "service_version": _take(list(sc.RELEASE_VERSIONS), _release_codes(svc, c["changed"])),
        "model": _take(list(_model_names()), model),
        "price_entry_id": pa.nulls(n, pa.int64()),  # generated calls are priced by genai-prices
    }
    return pa.Table.from_arrays([columns[col.name] for col in CALL_COLUMNS], names=[col.name for col in CALL_COLUMNS])
