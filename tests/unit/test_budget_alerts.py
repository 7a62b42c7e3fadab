"""Budget signals as alert metrics: a rule on budget_spent_share / budget_forecast_share fires per budget, with
the value the budget evaluation gives; bad budget rules are refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.rules import RuleError, parse_rule
from analytics.budgets import evaluate, parse_budget, save_budget
from tests.alert_calls import Store, call

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


def test_budget_rules_fire_per_budget_with_the_budget_value(tmp_path: Path):
    # $1 per call (cost_usd set directly), 3 calls a day on service a from Apr 1, 1 a day on service b
    rows = []
    for d in range(19):
        day = datetime(2026, 4, 1, 9, tzinfo=UTC) + timedelta(days=d)
        rows += [call(day + timedelta(minutes=i), service="a", cost_usd=1.0) for i in range(3)]
        rows.append(call(day, service="b", cost_usd=1.0))
    store = Store(tmp_path, rows)
    big = save_budget(store.db, parse_budget({"name": "a-budget", "amount_usd": 60, "filters": {"service": "a"}}))
    save_budget(store.db, parse_budget({"name": "b-budget", "amount_usd": 1000, "filters": {"service": "b"}}))
    spent = parse_rule(
        {
            "name": "BudgetSpent",
            "metric": "budget_spent_share",
            "window": "1h",
            "op": ">=",
            "warning": 0.8,
            "critical": 1.0,
        }
    )
    overrun = parse_rule(
        {
            "name": "BudgetOverrun",
            "metric": "budget_forecast_share",
            "window": "1h",
            "op": ">",
            "critical": 1.0,
            "filters": {"budget": "a-budget"},
        }
    )
    assert spent.group_by == ("budget",)
    store.evaluator.evaluate([spent, overrun], NOW)
    expected = evaluate(store.db, big, NOW)
    assert expected["spent_usd"] == 57.0  # 19 days x 3 calls x $1
    got = {
        (i.rule_id, i.labels["budget"], i.labels["severity"]): i
        for r in ("BudgetSpent", "BudgetOverrun")
        for i in store.states.instances(r)
    }
    warning = got[("BudgetSpent", "a-budget", "warning")]
    assert warning.firing and warning.value == pytest.approx(57 / 60)
    assert not got[("BudgetSpent", "a-budget", "critical")].firing
    assert not got[("BudgetSpent", "b-budget", "warning")].firing
    assert got[("BudgetSpent", "b-budget", "warning")].value == pytest.approx(19 / 1000)
    over = got[("BudgetOverrun", "a-budget", "critical")]
    assert over.firing and over.value == pytest.approx(expected["forecast_share"])
    assert not any(k[0] == "BudgetOverrun" and k[1] == "b-budget" for k in got)
    store.close()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"filters": {"service": "a"}}, "filters"),
        ({"group_by": ["model"]}, "group_by"),
        ({"relative_to": "previous_window"}, "relative_to"),
        ({"min_calls": 5}, "min_calls"),
    ],
)
def test_bad_budget_rules_name_the_field(extra, field):
    spec = {"name": "B", "metric": "budget_spent_share", "window": "1h", "op": ">", "warning": 0.5}
    with pytest.raises(RuleError) as caught:
        parse_rule(spec | extra)
    assert caught.value.field == field


def test_the_pm_digest_has_a_budgets_section(tmp_path: Path):
    from alerts.digest import compute, csv_rows
    from alerts.digest_render import render_html, render_text
    from alerts.notify_config import DigestConfig

    rows = [call(datetime(2026, 4, 1, 9, tzinfo=UTC) + timedelta(days=d), service="a", cost_usd=2.0) for d in range(19)]
    store = Store(tmp_path, rows)
    budget = save_budget(store.db, parse_budget({"name": "team-a", "amount_usd": 40, "filters": {"service": "a"}}))
    cur = store.db.cursor()
    figures = compute(cur, DigestConfig("pm", "0 8 * * *", ("pm@example.com",)), NOW, "http://dash")
    expected = evaluate(store.db, budget, NOW)
    assert [b["budget"]["name"] for b in figures.budgets] == ["team-a"]
    assert figures.budgets[0]["spent_usd"] == 38.0 == expected["spent_usd"]
    assert figures.budgets[0]["forecast_usd"] == pytest.approx(expected["forecast_usd"])
    text = render_text(figures)
    assert "team-a: $38.00 of $40.00 (95%)" in text and "forecast" in text
    assert "team-a" in render_html(figures)
    budget_rows = [r for r in csv_rows(figures) if r["section"] == "budgets"]
    assert {r["metric"]: r["now"] for r in budget_rows}["spent_usd"] == 38.0
    assert all(r["previous"] == 40 for r in budget_rows)
    cur.close()
    store.close()
