"""Two-sample drift tests, each a small registered unit: reference vs current -> score, threshold, drifted, effect.

Six tests, as Evidently names them: `ks` (Kolmogorov-Smirnov), `chisquare`, `z` (two proportions), `wasserstein`
(normed), `jensenshannon`, `psi`. Two kinds of score:

- p-value tests (ks, chisquare, z): drifted when p < threshold (default 0.05) AND the effect size reaches the
  test's floor. The floor is what Evidently lacks: with a million calls a p-value calls any difference
  significant; a negligible one (KS distance < 0.1, Cramer's V < 0.1, Cohen's h < 0.2: "small" in Cohen's terms)
  is not drift.
- distance tests (wasserstein, jensenshannon, psi): the score is itself an effect size; drifted when score >=
  threshold (default 0.1) AND the two samples differ significantly (KS for numbers, chi-square for categories,
  p < SIGNIFICANCE = 0.05), which is what Evidently lacks on small samples: there noise alone moves a distance
  past its threshold.

Definitions (checked against scipy and the published formulas in tests/unit/test_drift_stattests.py):
- ks: scipy.stats.ks_2samp (two-sided, method "auto"); effect: the KS statistic D.
- chisquare: scipy.stats.chi2_contingency on the 2 x k table of counts (reference, current), without Yates'
  correction. Evidently compares current counts with reference shares taken as exact (a goodness-of-fit test),
  which ignores the reference's own sampling noise and over-flags small references; the contingency test does
  not. Effect: Cramer's V = sqrt(chi2 / n).
- z: the pooled two-proportion z-test, p = 2 * (1 - Phi(|z|)), z = (p1 - p2) / sqrt(P (1 - P) (1/n1 + 1/n2));
  p = 1 when both samples hold only one and the same value (P is 0 or 1). Effect: Cohen's h.
- wasserstein: scipy.stats.wasserstein_distance / std(reference) (population std). Evidently floors the norm at
  0.001, which shrinks the drift of small-valued metrics (cost per call in USD is ~1e-4); here a constant
  reference is normed by |its value| (or 1 when that is 0).
- jensenshannon: scipy.spatial.distance.jensenshannon (natural log, so at most sqrt(ln 2) = 0.83) of the two
  distributions: category shares, or for numbers the shares in 10 bins at the reference's deciles.
- psi: sum((cur - ref) * ln(cur / ref)) over the same bins, a share of 0 replaced by 0.0001 (Evidently's rule).

An empty sample gives no score (None) and is never drifted; callers report "not enough data" well before that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import stats
from scipy.spatial import distance


class Kind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class Score(StrEnum):
    P_VALUE = "p_value"  # drifted when below the threshold
    DISTANCE = "distance"  # drifted when at or above the threshold


@dataclass(frozen=True)
class Sample:
    """Two samples to compare: raw numbers (`values`), or category counts over shared `labels`."""

    kind: Kind
    reference: np.ndarray  # numbers, or counts per label
    current: np.ndarray
    labels: tuple[str, ...] = ()

    @staticmethod
    def numbers(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> Sample:
        return Sample(Kind.NUMERIC, np.asarray(reference, dtype=float), np.asarray(current, dtype=float))

    @staticmethod
    def counts(reference: dict[str, int], current: dict[str, int]) -> Sample:
        """Category counts; a label seen in one window only counts 0 in the other."""
        labels = tuple(sorted(set(reference) | set(current)))
        ref = np.array([reference.get(k, 0) for k in labels], dtype=float)
        cur = np.array([current.get(k, 0) for k in labels], dtype=float)
        return Sample(Kind.CATEGORICAL, ref, cur, labels)

    @property
    def n_reference(self) -> int:
        return int(self.reference.sum()) if self.kind is Kind.CATEGORICAL else len(self.reference)

    @property
    def n_current(self) -> int:
        return int(self.current.sum()) if self.kind is Kind.CATEGORICAL else len(self.current)

    def distinct(self) -> int:
        """Distinct values over both samples (categories with a count)."""
        if self.kind is Kind.CATEGORICAL:
            return int(((self.reference + self.current) > 0).sum())
        return len(np.unique(np.concatenate([self.reference, self.current])))

    def as_counts(self) -> Sample:
        """Numbers as category counts (for numbers with few distinct values, tested as categories)."""
        if self.kind is Kind.CATEGORICAL:
            return self
        labels, inverse = np.unique(np.concatenate([self.reference, self.current]), return_inverse=True)
        n_ref = len(self.reference)
        ref = np.bincount(inverse[:n_ref], minlength=len(labels)).astype(float)
        cur = np.bincount(inverse[n_ref:], minlength=len(labels)).astype(float)
        return Sample(Kind.CATEGORICAL, ref, cur, tuple(_label(v) for v in labels))


def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class Result:
    test: str
    score: float | None
    threshold: float
    drifted: bool
    effect_size: float | None
    effect_measure: str
    effect_floor: float | None
    score_kind: Score
    p_value: float | None = None  # the p-value behind the verdict (distance tests: of the significance gate)

    @property
    def severity(self) -> float | None:
        """How far past the threshold, on one scale for every test: 1 at the threshold, 2 twice as far (distance
        tests: score / threshold; p-value tests: log p / log threshold)."""
        if self.score is None:
            return None
        if self.score_kind is Score.DISTANCE:
            return self.score / self.threshold if self.threshold > 0 else None
        p = max(self.score, 1e-300)
        return math.log(p) / math.log(self.threshold) if 0 < self.threshold < 1 else None


Compute = Callable[[Sample], tuple[float, float]]  # -> (score, effect size)


@dataclass(frozen=True)
class StatTest:
    name: str
    title: str
    kinds: frozenset[Kind]
    score_kind: Score
    default_threshold: float
    effect_measure: str
    effect_floor: float | None  # None: the score is the effect size, the threshold is the floor
    compute: Compute

    def run(self, sample: Sample, threshold: float | None = None) -> Result:
        if sample.kind not in self.kinds:
            raise ValueError(f"the {self.name} test does not apply to {sample.kind} data")
        limit = self.default_threshold if threshold is None else threshold
        if sample.n_reference == 0 or sample.n_current == 0:
            return Result(self.name, None, limit, False, None, self.effect_measure, self.effect_floor, self.score_kind)
        score, effect = self.compute(sample)
        score, effect = float(score), float(effect)
        if self.score_kind is Score.P_VALUE:
            p_value = score
            drifted = score < limit and (self.effect_floor is None or effect >= self.effect_floor)
        else:
            p_value = significance(sample) if score >= limit else None
            drifted = score >= limit and p_value is not None and p_value < SIGNIFICANCE
        return Result(
            self.name, score, limit, drifted, effect, self.effect_measure, self.effect_floor, self.score_kind, p_value
        )


# A distance past its threshold is drift only when the two samples also differ significantly at this level
# (KS for numbers, chi-square for categories): on a small current window sampling noise alone moves a normed
# Wasserstein distance past 0.1 (measured on undrifted traffic: 11% of cells with 100-300 current calls).
SIGNIFICANCE = 0.05


def significance(sample: Sample) -> float:
    """The p-value that the two samples come from one distribution (the gate of the distance tests)."""
    if sample.kind is Kind.NUMERIC:
        return _ks(sample)[0]
    return _chisquare(sample)[0]


REGISTRY: dict[str, StatTest] = {}


def register(test: StatTest) -> StatTest:
    REGISTRY[test.name] = test
    return test


def get(name: str) -> StatTest:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown drift test {name!r}; known: {', '.join(REGISTRY)}") from None


# ---------------------------------------------------------------------------------------------- the tests


def _ks(sample: Sample) -> tuple[float, float]:
    result = stats.ks_2samp(sample.reference, sample.current)
    return float(result.pvalue), float(result.statistic)


def _present(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the categories seen in either window (a category seen in neither has no expected count)."""
    counts = sample.as_counts()
    seen = (counts.reference + counts.current) > 0
    return counts.reference[seen], counts.current[seen]


def _chisquare(sample: Sample) -> tuple[float, float]:
    ref, cur = _present(sample)
    if len(ref) < 2:
        return 1.0, 0.0  # one category in both windows: nothing can differ
    chi2, p, _, _ = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    return float(p), math.sqrt(chi2 / (ref.sum() + cur.sum()))


def _z(sample: Sample) -> tuple[float, float]:
    ref, cur = _present(sample)
    if len(ref) > 2:
        raise ValueError("the z test compares two categories; use chisquare or jensenshannon for more")
    if len(ref) < 2:
        return 1.0, 0.0
    n1, n2 = ref.sum(), cur.sum()
    p1, p2 = ref[1] / n1, cur[1] / n2  # the share of the second category (by sorted label)
    pooled = (ref[1] + cur[1]) / (n1 + n2)
    h = abs(2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2)))
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0, h
    z = (p1 - p2) / se
    return float(2 * stats.norm.sf(abs(z))), h


def _wasserstein(sample: Sample) -> tuple[float, float]:
    norm = float(np.std(sample.reference))
    if norm == 0:
        norm = abs(float(sample.reference[0])) or 1.0
    score = float(stats.wasserstein_distance(sample.reference, sample.current)) / norm
    return score, score


PSI_EPSILON = 0.0001
BINS = 10


def shares(sample: Sample, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """The two samples as shares of the same bins: categories, or for numbers `bins` bins cut at the reference's
    quantiles (equal-frequency bins; repeated values can make fewer), open at both ends."""
    if sample.kind is Kind.CATEGORICAL:
        ref, cur = _present(sample)
    else:
        inner = np.unique(np.quantile(sample.reference, np.linspace(0, 1, bins + 1)[1:-1]))
        # bin i holds values in [inner[i-1], inner[i]) (numpy.digitize), the first and last open-ended
        ref = np.bincount(np.digitize(sample.reference, inner), minlength=len(inner) + 1).astype(float)
        cur = np.bincount(np.digitize(sample.current, inner), minlength=len(inner) + 1).astype(float)
    return ref / ref.sum(), cur / cur.sum()


def _jensenshannon(sample: Sample) -> tuple[float, float]:
    ref, cur = shares(sample)
    score = float(distance.jensenshannon(ref, cur))
    return score, score


def _psi(sample: Sample) -> tuple[float, float]:
    ref, cur = shares(sample)
    ref = np.where(ref == 0, PSI_EPSILON, ref)
    cur = np.where(cur == 0, PSI_EPSILON, cur)
    score = float(np.sum((cur - ref) * np.log(cur / ref)))
    return score, score


BOTH = frozenset(Kind)
CATEGORIES = frozenset({Kind.CATEGORICAL})
KS = register(
    StatTest(
        "ks", "Kolmogorov-Smirnov p-value", frozenset({Kind.NUMERIC}), Score.P_VALUE, 0.05, "KS distance D", 0.1, _ks
    )
)
CHISQUARE = register(
    StatTest("chisquare", "chi-square p-value", CATEGORIES, Score.P_VALUE, 0.05, "Cramer's V", 0.1, _chisquare)
)
Z = register(StatTest("z", "z-test for proportions p-value", CATEGORIES, Score.P_VALUE, 0.05, "Cohen's h", 0.2, _z))
WASSERSTEIN = register(
    StatTest(
        "wasserstein",
        "Wasserstein distance (normed)",
        frozenset({Kind.NUMERIC}),
        Score.DISTANCE,
        0.1,
        "normed Wasserstein distance",
        None,
        _wasserstein,
    )
)
JENSENSHANNON = register(
    StatTest(
        "jensenshannon",
        "Jensen-Shannon distance",
        BOTH,
        Score.DISTANCE,
        0.1,
        "Jensen-Shannon distance",
        None,
        _jensenshannon,
    )
)
PSI = register(StatTest("psi", "population stability index", BOTH, Score.DISTANCE, 0.1, "PSI", None, _psi))

SMALL_REFERENCE = 1000  # Evidently's switch from p-value tests to distances
FEW_VALUES = 5  # numbers with at most this many distinct values are tested as categories


def default_test(sample: Sample) -> StatTest:
    """The test Evidently picks (legacy/calculations/stattests/registry.py, _get_default_stattest): by the
    reference's size, the column kind and the number of distinct values over both samples."""
    n_values = sample.distinct()
    numeric = sample.kind is Kind.NUMERIC
    if sample.n_reference <= SMALL_REFERENCE:
        if numeric and n_values > FEW_VALUES:
            return KS
        return CHISQUARE if n_values > 2 else Z
    if numeric and n_values > FEW_VALUES:
        return WASSERSTEIN
    return JENSENSHANNON


def run(sample: Sample, test: str | None = None, threshold: float | None = None) -> Result:
    """Run `test` (default: Evidently's choice for the sample; numbers with at most FEW_VALUES distinct values
    are then tested as category counts, as Evidently does)."""
    if test is not None:
        return get(test).run(sample, threshold)
    chosen = default_test(sample)
    if sample.kind is Kind.NUMERIC and sample.distinct() <= FEW_VALUES:
        sample = sample.as_counts()
    return chosen.run(sample, threshold)
