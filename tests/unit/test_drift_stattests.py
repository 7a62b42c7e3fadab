"""Each drift test's score and decision against scipy and the published formulas on fixed inputs: ties, empty and
one-value samples included, plus Evidently's default choice and the two guards Evidently lacks (effect-size floor;
the minimum sample is the job's, see test_drift_job.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analytics.drift import stattests as st
from analytics.drift.stattests import Kind, Sample

REF = [12, 15, 15, 15, 18, 20, 22, 22, 30, 41, 41, 41, 55]  # ties on purpose
CUR = [15, 22, 22, 30, 30, 41, 60, 61, 75, 75, 90]


def ecdf_distance(a: list[float], b: list[float]) -> float:
    """max |F_a - F_b| over every observed value: the KS statistic from its definition."""
    points = np.unique(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), points, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), points, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def wasserstein_by_definition(a: list[float], b: list[float]) -> float:
    """W1 = integral of |F_a(x) - F_b(x)| dx, the ECDFs being step functions between the observed values."""
    points = np.unique(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), points[:-1], side="right") / len(a)
    fb = np.searchsorted(np.sort(b), points[:-1], side="right") / len(b)
    return float(np.sum(np.abs(fa - fb) * np.diff(points)))


def test_ks_equals_scipy_and_the_ecdf_distance_with_ties() -> None:
    result = st.run(Sample.numbers(REF, CUR), "ks")
    want = stats.ks_2samp(REF, CUR)
    assert result.score == pytest.approx(want.pvalue, rel=1e-12)
    assert result.effect_size == pytest.approx(ecdf_distance(REF, CUR)) == pytest.approx(want.statistic)
    assert result.drifted == (want.pvalue < 0.05 and want.statistic >= 0.1)
    assert result.threshold == 0.05 and result.effect_measure == "KS distance D"


def test_ks_one_value_and_constant_samples() -> None:
    one = st.run(Sample.numbers([1.0], [2.0]), "ks")
    assert (one.score, one.effect_size, one.drifted) == (1.0, 1.0, False)  # D = 1 but nothing is significant
    same = st.run(Sample.numbers([3, 3, 3], [3, 3]), "ks")
    assert (same.score, same.effect_size, same.drifted) == (1.0, 0.0, False)


def test_wasserstein_normed_by_the_reference_std() -> None:
    result = st.run(Sample.numbers(REF, CUR), "wasserstein")
    want = wasserstein_by_definition(REF, CUR) / np.std(REF)
    assert result.score == pytest.approx(want, rel=1e-12)
    assert result.score == pytest.approx(stats.wasserstein_distance(REF, CUR) / np.std(REF), rel=1e-12)
    ks_p = stats.ks_2samp(REF, CUR).pvalue
    assert want >= 0.1 and ks_p > 0.05  # far by the distance, but 13 and 11 values: could be noise
    assert not result.drifted and result.p_value == pytest.approx(ks_p) and result.effect_size == result.score
    # a constant reference is normed by its value: 5 -> 7 moved by 40% of it
    const = st.run(Sample.numbers([5] * 30, [7] * 20), "wasserstein")
    assert const.score == pytest.approx(0.4) and const.drifted
    assert st.run(Sample.numbers([0, 0], [0]), "wasserstein").score == 0.0


def test_wasserstein_keeps_small_units() -> None:
    """Costs in USD are ~1e-4: Evidently's 0.001 floor on the norm would divide a real shift by ~5."""
    rng = np.random.default_rng(1)
    ref = rng.lognormal(math.log(2e-4), 0.5, 5000)
    result = st.run(Sample.numbers(ref, ref * 1.5), "wasserstein")
    assert result.score == pytest.approx(stats.wasserstein_distance(ref, ref * 1.5) / np.std(ref))
    assert result.score > 0.5 and result.drifted


def test_a_distance_needs_significance_too() -> None:
    """Sampling noise alone moves a normed Wasserstein distance past 0.1 on small samples: not drift."""
    rng = np.random.default_rng(11)
    ref, cur = rng.lognormal(7, 0.6, 5000), rng.lognormal(7, 0.6, 60)
    result = st.run(Sample.numbers(ref, cur), "wasserstein")
    assert result.score >= 0.1 and result.p_value == pytest.approx(stats.ks_2samp(ref, cur).pvalue)
    assert result.p_value >= st.SIGNIFICANCE and not result.drifted
    below = st.run(Sample.numbers(ref, ref[:2000]), "wasserstein")
    assert below.score < 0.1 and below.p_value is None and not below.drifted  # no gate needed


def test_chisquare_equals_the_contingency_test() -> None:
    ref = {"stop": 180, "length": 12, "tool_calls": 40}
    cur = {"stop": 70, "length": 14, "tool_calls": 16, "content_filter": 3}
    result = st.run(Sample.counts(ref, cur), "chisquare")
    labels = sorted(set(ref) | set(cur))
    table = np.array([[ref.get(k, 0) for k in labels], [cur.get(k, 0) for k in labels]], dtype=float)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    p = float(stats.chi2.sf(chi2, df=len(labels) - 1))
    assert result.score == pytest.approx(p, rel=1e-10)
    assert result.score == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-10)
    assert result.effect_size == pytest.approx(math.sqrt(chi2 / table.sum()))  # Cramer's V, 2 rows
    assert result.drifted == (p < 0.05 and result.effect_size >= 0.1)


def test_chisquare_one_category_and_a_category_in_one_window_only() -> None:
    same = st.run(Sample.counts({"stop": 5}, {"stop": 9}), "chisquare")
    assert (same.score, same.effect_size, same.drifted) == (1.0, 0.0, False)
    new_only = st.run(Sample.counts({"a": 50}, {"a": 40, "b": 10}), "chisquare")
    want = stats.chi2_contingency(np.array([[50, 0], [40, 10]]), correction=False)
    assert new_only.score == pytest.approx(want.pvalue) and new_only.drifted


def test_z_test_equals_the_formula_and_the_2x2_chisquare() -> None:
    ref, cur = {"ok": 940, "error": 60}, {"ok": 170, "error": 30}
    result = st.run(Sample.counts(ref, cur), "z")
    n1, n2 = 1000, 200
    p1, p2 = 940 / n1, 170 / n2  # the share of "ok" (the second label, sorted)
    pooled = (940 + 170) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert result.score == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))), rel=1e-9)
    chi = stats.chi2_contingency(np.array([[60, 940], [30, 170]]), correction=False)
    assert result.score == pytest.approx(chi.pvalue, rel=1e-9)  # z^2 = chi^2 for two categories
    h = abs(2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2)))
    assert result.effect_size == pytest.approx(h)
    assert result.drifted == (result.score < 0.05 and h >= 0.2)


def test_z_test_constant_samples_and_too_many_categories() -> None:
    same = st.run(Sample.counts({"ok": 10}, {"ok": 3}), "z")
    assert (same.score, same.drifted) == (1.0, False)
    with pytest.raises(ValueError, match="two categories"):
        st.run(Sample.counts({"a": 1, "b": 1, "c": 1}, {"a": 2}), "z")


def test_jensenshannon_and_psi_on_categories_by_their_formulas() -> None:
    ref, cur = {"a": 25, "b": 25, "c": 50}, {"a": 50, "b": 25, "c": 25}
    p, q = np.array([0.25, 0.25, 0.5]), np.array([0.5, 0.25, 0.25])
    m = (p + q) / 2
    js = math.sqrt(0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m)))
    result = st.run(Sample.counts(ref, cur), "jensenshannon")
    chi_p = stats.chi2_contingency(np.array([[25, 25, 50], [50, 25, 25]]), correction=False).pvalue
    assert result.score == pytest.approx(js) and js >= 0.1 and chi_p < 0.05
    assert result.drifted and result.p_value == pytest.approx(chi_p)
    psi = st.run(Sample.counts(ref, cur), "psi")
    assert psi.score == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(2))  # sum (q - p) ln(q / p)
    assert psi.drifted
    # the same shares from 8 calls each: as far by the distance, but not significant, so not drift
    few = st.run(Sample.counts({"a": 2, "b": 2, "c": 4}, {"a": 4, "b": 2, "c": 2}), "jensenshannon")
    assert few.score == pytest.approx(js) and not few.drifted and few.p_value > 0.05
    # a category missing from one window counts as a share of 0.0001 (PSI) / 0 (JS)
    gone = st.run(Sample.counts({"a": 90, "b": 10}, {"a": 100}), "psi")
    assert gone.score == pytest.approx((1 - 0.9) * math.log(1 / 0.9) + (0.0001 - 0.1) * math.log(0.0001 / 0.1))


def test_jensenshannon_and_psi_bin_numbers_at_the_reference_deciles() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(100, 10, 2000)
    cur = rng.normal(104, 10, 500)
    edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    p = np.histogram(ref, [-np.inf, *edges, np.inf])[0] / len(ref)
    q = np.histogram(cur, [-np.inf, *edges, np.inf])[0] / len(cur)
    assert st.run(Sample.numbers(ref, cur), "jensenshannon").score == pytest.approx(
        float(stats.entropy(p, (p + q) / 2) / 2 + stats.entropy(q, (p + q) / 2) / 2) ** 0.5
    )
    assert st.run(Sample.numbers(ref, cur), "psi").score == pytest.approx(float(np.sum((q - p) * np.log(q / p))))


@pytest.mark.parametrize("name", list(st.REGISTRY))
def test_an_empty_sample_is_never_drifted(name: str) -> None:
    test = st.REGISTRY[name]
    kind = Kind.NUMERIC if Kind.NUMERIC in test.kinds else Kind.CATEGORICAL
    for ref, cur in (([], [1.0, 2.0]), ([1.0, 2.0], []), ([], [])):
        sample = Sample.numbers(ref, cur) if kind is Kind.NUMERIC else Sample.numbers(ref, cur).as_counts()
        result = test.run(sample)
        assert result.score is None and not result.drifted and result.severity is None


def test_numbers_refused_by_a_categories_only_test() -> None:
    with pytest.raises(ValueError, match="does not apply"):
        st.run(Sample.numbers([1.0, 2.0], [3.0]), "chisquare")
    with pytest.raises(ValueError, match="unknown drift test"):
        st.run(Sample.numbers([1.0], [1.0]), "anderson")


def test_default_choice_follows_evidently() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=1000), rng.normal(size=1001)
    assert st.default_test(Sample.numbers(small, small[:50])).name == "ks"
    assert st.default_test(Sample.numbers(large, large[:50])).name == "wasserstein"
    few = np.array([1, 2, 3, 4, 5] * 200)
    assert st.default_test(Sample.numbers(few, few[:10])).name == "chisquare"
    assert st.default_test(Sample.numbers(np.append(few, 5), few[:10])).name == "jensenshannon"  # 1001 rows
    assert st.default_test(Sample.numbers(few[:11] % 2, few[:10] % 2)).name == "z"
    assert st.default_test(Sample.counts({"a": 600, "b": 400}, {"a": 5})).name == "z"
    assert st.default_test(Sample.counts({"a": 600, "b": 300, "c": 100}, {"a": 5})).name == "chisquare"
    assert st.default_test(Sample.counts({"a": 601, "b": 400}, {"a": 5})).name == "jensenshannon"
    # numbers with few distinct values are tested as categories, as Evidently does
    result = st.run(Sample.numbers(few, np.array([1] * 80 + [5] * 20)))
    assert result.test == "chisquare" and result.effect_measure == "Cramer's V" and result.drifted


def test_the_effect_floor_keeps_a_negligible_shift_on_a_huge_sample_from_being_drift() -> None:
    rng = np.random.default_rng(7)
    ref, cur = rng.normal(0, 1, 200_000), rng.normal(0.03, 1, 200_000)
    result = st.run(Sample.numbers(ref, cur), "ks")
    assert result.score < 1e-10  # "significant", as any difference is at this size
    assert result.effect_size < 0.1 and not result.drifted
    shares = st.run(Sample.counts({"a": 500_000, "b": 500_000}, {"a": 510_000, "b": 490_000}), "chisquare")
    assert shares.score < 1e-10 and shares.effect_size < 0.1 and not shares.drifted
    big = st.run(Sample.numbers(ref, rng.normal(0.5, 1, 2000)), "ks")
    assert big.drifted and big.effect_size >= 0.1


def test_thresholds_and_severity() -> None:
    sample = Sample.numbers(REF, CUR)
    default = st.run(sample, "ks")  # p = 0.118
    lenient = st.run(sample, "ks", threshold=0.2)
    assert not default.drifted and lenient.drifted and lenient.score == default.score
    assert default.severity == pytest.approx(math.log(default.score) / math.log(0.05))
    distance = st.run(sample, "wasserstein", threshold=0.2)
    assert distance.severity == pytest.approx(distance.score / 0.2)
