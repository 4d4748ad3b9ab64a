"""The quality gate: which records go on to FHIR, decided on their scores, with the reason for every exclusion.

Scores are compared as reported (rounded to two decimals), so a record shown with ``80.00`` passes a threshold of
80 and the reason printed for an excluded record is always a true inequality between the printed numbers. A type
with no applicable check for a record has no pass rate and cannot fall short. The defaults (threshold 0, no type
minimums) exclude nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from .model import TYPES


@dataclass(slots=True)
class GateResult:
    """Per record: passed, and a reason naming every score that fell short ('' when passed)."""

    passed: NDArray[np.bool_]
    reasons: list[str]
    min_record_score: float
    min_type_scores: dict[str, float]

    @property
    def excluded(self) -> int:
        """Number of records the gate keeps out of FHIR."""
        return int((~self.passed).sum())


def _percent(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}: {value!r} is not a number")
    if not 0 <= value <= 100:
        raise ConfigError(f"{name}: {value} is not a percentage between 0 and 100")
    return float(value)


def check_gate(min_record_score: float, min_type_scores: Mapping[str, float] | None) -> tuple[float, dict[str, float]]:
    """Validate the gate's configuration (percentages; type names known)."""
    threshold = _percent("qc.min_record_score", min_record_score)
    minimums = {}
    for name, value in (min_type_scores or {}).items():
        if name not in TYPES:
            raise ConfigError(f"qc.min_type_scores: unknown check type '{name}' (known: {', '.join(TYPES)})")
        minimums[name] = _percent(f"qc.min_type_scores.{name}", value)
    return threshold, minimums


def apply_gate(
    scores: NDArray[np.float64],
    type_rates: Mapping[str, NDArray[np.float64]],
    min_record_score: float = 0.0,
    min_type_scores: Mapping[str, float] | None = None,
) -> GateResult:
    """Decide every record. ``scores`` and ``type_rates`` are percentages (``NaN``: nothing checked, never short).

    A type named in ``min_type_scores`` that no table row reports (e.g. ``branching`` with weight 0) is still
    gated on its pass rate if ``type_rates`` has it.
    """
    threshold, minimums = check_gate(min_record_score, min_type_scores)
    n = len(scores)
    shown = np.round(scores, 2)
    short = {"score": (shown < threshold) & ~np.isnan(shown)} if threshold > 0 else {}
    for name, minimum in minimums.items():
        rates = type_rates.get(name)
        if rates is None or minimum <= 0:
            continue
        rounded = np.round(rates, 2)
        short[name] = (rounded < minimum) & ~np.isnan(rounded)
    failed = np.zeros(n, dtype=bool)
    for mask in short.values():
        failed |= mask
    reasons = [""] * n
    for i in np.flatnonzero(failed):
        parts = []
        for name, mask in short.items():
            if mask[i]:
                value = shown[i] if name == "score" else np.round(type_rates[name][i], 2)
                limit = threshold if name == "score" else minimums[name]
                parts.append(f"{name} {value:.2f} < {limit:.2f}")
        reasons[i] = "; ".join(parts)
    return GateResult(~failed, reasons, threshold, minimums)
