"""Atemporal plausibility: values that are each valid but implausible against all centers of the use case.

Per variable, over the pooled values of every center:

- numbers: the robust z of a value is ``|x - median| / (1.4826 × MAD)`` (MAD = median absolute deviation; 1.4826
  makes it the standard deviation for normal data), with the MAD taken on the value's own side of the median (the
  "double MAD": one for the values at or below the median, one for those at or above). A value whose robust z
  exceeds ``max_robust_z`` is an outlier. Robust on purpose: a mean and standard deviation would be dragged by the
  very outliers sought. Two-sided because clinical numbers are rarely symmetric: receptor percentages pile up near 0
  with a long tail to 100, and one MAD, set by the crowd near 0, made every ER of 98 % an "outlier" (measured on
  the demo data: 15 false reports in one run of 6 centers). A side whose MAD is 0 (more than half its values
  equal the median) takes the other side's scale; when both are 0 the variable has no outliers (no scale to
  measure against).
- codes: a code whose pooled share is below ``rare_share`` is rare (a pool of fewer than 1 / ``rare_share``
  values can therefore have no rare code: one value is already that share).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MAD_SCALE = 1.4826


def weighted_median(values: NDArray[np.float64], counts: NDArray[np.float64]) -> float:
    """Median of ``values`` (sorted ascending) repeated ``counts`` times (mean of the two middle ones if even)."""
    total = int(counts.sum())
    cum = np.cumsum(counts)
    lower = values[np.searchsorted(cum, (total - 1) // 2, side="right")]
    upper = values[np.searchsorted(cum, total // 2, side="right")]
    return float((lower + upper) / 2)


@dataclass(frozen=True, slots=True)
class Scale:
    """The pooled centre and robust scale, below and above it, of a numeric variable."""

    median: float
    low: float  # 1.4826 × MAD of the values at or below the median
    high: float  # 1.4826 × MAD of the values at or above the median

    @property
    def scale(self) -> float:
        """The larger side's scale: 0 only when neither side has one."""
        return max(self.low, self.high)

    def z(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Robust z of each value against its side's scale (``inf``-free: a zero scale gives 0)."""
        low, high = self.low or self.high, self.high or self.low  # a side without a scale borrows the other's
        side = np.where(x < self.median, low, high)
        out = np.zeros_like(x, dtype=float)
        np.divide(np.abs(x - self.median), side, out=out, where=side > 0)
        return out


def _mad(values: NDArray[np.float64], counts: NDArray[np.float64], centre: float) -> float:
    dev = np.abs(values - centre)
    order = np.argsort(dev, kind="stable")
    return weighted_median(dev[order], counts[order]) if counts.sum() else 0.0


def robust_scale(values: NDArray[np.float64], counts: NDArray[np.float64]) -> Scale | None:
    """Pooled median and the double MAD (× 1.4826) of a variable from its distinct values (ascending) and counts
    (None if no value)."""
    if counts.sum() == 0:
        return None
    med = weighted_median(values, counts)
    below, above = values <= med, values >= med
    low = _mad(values[below], counts[below], med)
    high = _mad(values[above], counts[above], med)
    return Scale(med, MAD_SCALE * low, MAD_SCALE * high)


def rare_codes(counts: dict[str, int], rare_share: float) -> set[str]:
    """Codes whose share of the pooled values is below ``rare_share``."""
    total = sum(counts.values())
    return {code for code, n in counts.items() if n and total and n / total < rare_share}
