"""Atemporal plausibility: values that are each valid but implausible against all centers of the use case.

Per variable, over the pooled values of every center:

- numbers: the robust z of a value is ``|x - median| / (1.4826 × MAD)`` (MAD = median absolute deviation; 1.4826
  makes it the standard deviation for normal data). A value whose robust z exceeds ``max_robust_z`` is an outlier.
  Robust on purpose: a mean and standard deviation would be dragged by the very outliers sought. A variable whose
  MAD is 0 (more than half the values equal) has no outliers (no scale to measure against).
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
    """The pooled centre and robust scale of a numeric variable."""

    median: float
    scale: float  # 1.4826 × MAD

    def z(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Robust z of each value (``inf``-free: a zero scale gives 0)."""
        if self.scale <= 0:
            return np.zeros_like(x)
        return np.abs(x - self.median) / self.scale


def robust_scale(values: NDArray[np.float64], counts: NDArray[np.float64]) -> Scale | None:
    """Pooled median and 1.4826 × MAD of a variable from its distinct values and counts (None if no value)."""
    if counts.sum() == 0:
        return None
    med = weighted_median(values, counts)
    dev = np.abs(values - med)
    order = np.argsort(dev, kind="stable")
    mad = weighted_median(dev[order], counts[order])
    return Scale(med, MAD_SCALE * mad)


def rare_codes(counts: dict[str, int], rare_share: float) -> set[str]:
    """Codes whose share of the pooled values is below ``rare_share``."""
    total = sum(counts.values())
    return {code for code, n in counts.items() if n and total and n / total < rare_share}
