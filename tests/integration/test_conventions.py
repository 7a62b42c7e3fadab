"""Every convention in collector/conventions.py, replayed from hand-written OTLP/JSON to a running server, comes
out of `callscope export` as exactly the calls in its expected file.

tests/fixtures/conventions/<name>.json is one ExportTraceServiceRequest (or <name>.1.json, <name>.2.json ... sent
as separate requests, in order); <name>.expected.json lists the calls, sorted by start time. The payloads follow
the attributes each library emits (see the reference in the fixtures' "about" notes). A priced call's cost is
checked against genai_prices.calc_price on the expected token counts, not against callscope's own pricer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from collector import conventions
from tests.helpers import FIXTURES, export_rows, post_otlp

CONVENTION_FIXTURES = FIXTURES / "conventions"
# Every expected call states at least these fields (None where the convention carries nothing).
REQUIRED = (
    "span_id",
    "start_time",
    "convention",
    "provider",
    "provider_source",
    "operation",
    "request_model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "streaming",
    "ttft_ms",
    "status",
    "error_type",
    "user_id",
    "session_id",
    "environment",
    "tags",
    "metadata",
    "reported_cost_usd",
    "cost_usd",
    "pricing",
)
APPROX = {"duration_ms": 0.01, "ttft_ms": 0.01, "reported_cost_usd": 1e-12}


def _names() -> list[str]:
    return sorted(p.name.removesuffix(".expected.json") for p in CONVENTION_FIXTURES.glob("*.expected.json"))


def _payloads(name: str) -> list[Path]:
    single = CONVENTION_FIXTURES / f"{name}.json"
    if single.exists():
        return [single]
    parts = [p for p in CONVENTION_FIXTURES.glob(f"{name}.*.json") if re.fullmatch(rf"{name}\.\d+\.json", p.name)]
    return sorted(parts, key=lambda p: int(p.name.split(".")[-2]))


def _expected(name: str) -> list[dict]:
    return json.loads((CONVENTION_FIXTURES / f"{name}.expected.json").read_text())["calls"]


def _independent_cost(exp: dict) -> float:
    """The cost genai-prices itself gives for the expected token counts (OTel meaning: cached inside input)."""
    spec = exp["cost_usd"]["calc_price"]
    usage = Usage(
        input_tokens=exp["input_tokens"],
        output_tokens=exp["output_tokens"],
        cache_read_tokens=exp["cache_read_tokens"],
        cache_write_tokens=exp["cache_write_tokens"],
    )
    return float(calc_price(usage, spec["model_ref"], provider_id=spec.get("provider_id")).total_price)


@pytest.mark.parametrize("name", _names())
def test_fixture_gives_exactly_the_expected_calls(server, name):
    payloads = _payloads(name)
    assert payloads, f"no payload for {name}"
    for path in payloads:
        response = post_otlp(server.http_url, path.read_bytes(), content_type="application/json")
        assert response.status_code == 200, response.text
        assert "partialSuccess" not in response.json(), response.text
    assert server.stop() == 0

    rows = sorted(export_rows(server.data_dir), key=lambda r: r["start_time"])
    expected = _expected(name)
    assert [r["span_id"] for r in rows] == [e["span_id"] for e in expected], "exactly the expected calls"
    for row, exp in zip(rows, expected, strict=True):
        ctx = f"{name} call {exp['span_id']}"
        missing = [k for k in REQUIRED if k not in exp]
        assert not missing, f"{ctx}: the expected file must state {missing}"
        for key, want in exp.items():
            got = row[key]
            if key == "cost_usd" and isinstance(want, dict):
                assert got == pytest.approx(_independent_cost(exp), rel=1e-9), f"{ctx}: cost_usd"
                assert row["price_source"], ctx
            elif key in APPROX and want is not None:
                assert got == pytest.approx(want, abs=APPROX[key]), f"{ctx}: {key}"
            else:
                assert got == want, f"{ctx}: {key} is {got!r}, expected {want!r}"


def test_every_convention_has_a_fixture():
    covered = {call["convention"] for name in _names() for call in _expected(name)}
    missing = {c.name for c in conventions.CONVENTIONS} - covered
    assert not missing, f"conventions without a fixture: {sorted(missing)}"


def test_fixture_files_are_complete():
    """Each payload belongs to an expected file and each expected file has a payload (no silent skips)."""
    names = set(_names())
    for path in CONVENTION_FIXTURES.glob("*.json"):
        if path.name.endswith(".expected.json"):
            continue
        assert path.name.split(".")[0] in names, f"{path.name} has no expected file"
    for name in names:
        assert _payloads(name), f"{name} has no payload"
