"""Cross-center drift: each center's distribution of a variable against the pool of the other centers.

A center that codes a variable differently (every "unknown" entered as "no", months entered as years) passes every
per-center check: each value is valid. It shows only next to the other centers. Per (center, variable):

- coded variables: the Jensen–Shannon distance (base 2, 0 = same distribution, 1 = disjoint) between the center's
  code shares and the others', with the likelihood-ratio (G) test of homogeneity on the 2 × k table of counts;
- numbers: the two-sample Kolmogorov–Smirnov statistic D (largest gap between the two empirical CDFs), with its
  asymptotic p-value.

A pair is flagged when the statistic reaches its threshold *and* the p-value is below ``alpha`` *and* both sides
have at least ``min_n`` values: the distance measures how much the coding differs (what matters to a model), the
test keeps a small center's sampling noise from being flagged.

Written with numpy rather than scipy (a 35 MB wheel for three short formulas); the formulas are the textbook
ones (Lin 1991 for JS; Numerical Recipes' ``probks`` for the Kolmogorov distribution; Wilson–Hilferty for the
chi-square tail of the G statistic, accurate to ~1e-3 in p, ample for a flag), and the tests compare them with
table values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

JS, KS = "jensen_shannon", "kolmogorov_smirnov"


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One (center, variable) comparison."""

    statistic: str
    value: float
    p_value: float
    n: int
    n_other: int


def js_distance(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two count vectors over the same categories."""
    p, q = a / a.sum(), b / b.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kq = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max(0.0, (kp + kq) / 2)))


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square variable with ``df`` degrees of freedom (Wilson–Hilferty; exact for df = 2)."""
    if df <= 0 or x <= 0:
        return 1.0
    if df == 2:
        return math.exp(-x / 2)
    h = 2 / (9 * df)
    z = ((x / df) ** (1 / 3) - (1 - h)) / math.sqrt(h)
    return 0.5 * math.erfc(z / math.sqrt(2))


def g_homogeneity(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """p-value of the likelihood-ratio (G) test that two count vectors come from one distribution (empty codes
    dropped). G = 2 Σ O ln(O / E) is 2 N ln 2 times the Jensen–Shannon divergence weighted by the sample sizes, so
    the test and the distance measure the same thing; unlike Pearson's chi-square it does not understate a code
    the center never uses (the recoding case: a cell of 0 where the others have a third of their values)."""
    keep = (a + b) > 0
    a, b = a[keep], b[keep]
    if len(a) < 2:
        return 1.0
    na, nb = a.sum(), b.sum()
    total = a + b
    ea, eb = total * na / (na + nb), total * nb / (na + nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = 2 * float(
            np.where(a > 0, a * np.log(a / ea), 0.0).sum() + np.where(b > 0, b * np.log(b / eb), 0.0).sum()
        )
    return chi2_sf(stat, len(a) - 1)


def ks_statistic(values: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Two-sample KS D from counts ``a`` and ``b`` over the same sorted distinct ``values``."""
    del values  # the counts are already in value order; the values only define it
    return float(np.abs(np.cumsum(a) / a.sum() - np.cumsum(b) / b.sum()).max())


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic p-value of KS D for samples of ``n`` and ``m`` values (Kolmogorov distribution, Stephens'
    small-sample correction as in Numerical Recipes)."""
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 0.2:
        return 1.0
    total, sign = 0.0, 1.0
    for j in range(1, 101):
        term = sign * math.exp(-2 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
        sign = -sign
    return min(1.0, max(0.0, 2 * total))


def categorical_drift(center: NDArray[np.float64], others: NDArray[np.float64]) -> DriftResult:
    """JS distance and G-test p between a center's code counts and the others' (same code order)."""
    n, m = int(center.sum()), int(others.sum())
    if n == 0 or m == 0:
        return DriftResult(JS, math.nan, math.nan, n, m)
    return DriftResult(JS, js_distance(center, others), g_homogeneity(center, others), n, m)


def numeric_drift(values: NDArray[np.float64], center: NDArray[np.float64], others: NDArray[np.float64]) -> DriftResult:
    """KS D and its p between a center's value counts and the others' over the pooled sorted distinct values."""
    n, m = int(center.sum()), int(others.sum())
    if n == 0 or m == 0:
        return DriftResult(KS, math.nan, math.nan, n, m)
    d = ks_statistic(values, center, others)
    return DriftResult(KS, d, ks_pvalue(d, n, m), n, m)


def flagged(result: DriftResult, threshold: float, alpha: float, min_n: int) -> bool:
    """Whether a comparison is drift: statistic >= threshold, p < alpha, and enough values on both sides."""
    if result.n < min_n or result.n_other < min_n or math.isnan(result.value):
        return False
    return result.value >= threshold and result.p_value < alpha
