"""Scores: pass / fail / total per check type, weighted into one score per record, center or use case.

The formula (docs/qc.md has the worked example): a type's pass rate is ``s_t = pass_t / total_t`` over the checks
that *applied* (not-applicable checks are not counted at all). The score is the weighted mean

    score = 100 * sum_t(w_t * s_t) / W,        W = sum_t(w_t)

and Table 2's ``Score`` column is each type's share ``100 * w_t * s_t / W``, so the column adds up to the total.
With the paper's weights (W = 100) a type's share is simply ``w_t * s_t``: minimal_req 50 x 16/18 = 44.44.

A type with no applicable check has no pass rate. Policy ``renormalise`` (default) leaves it out of both sums (no
evidence, no credit and no penalty); ``full_credit`` counts it as ``s_t = 1`` (what the consortium tool does).
The same function scores a record (its own counts), a center and a use case (summed counts).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from .checks import QCResult
from .model import (
    DEFAULT_NO_CHECKS,
    DEFAULT_WEIGHTS,
    FAIL,
    NO_CHECKS_POLICIES,
    PAPER_TYPES,
    PASS,
    TYPES,
    Check,
)

#: A ``qc.thresholds`` key: a type, variable or rule id, optionally ``<variable>.<type>``.
THRESHOLD_KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z_]+)?")


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One line of Table 2. ``score`` is the type's share of the total in percent (``None``: no checks, left out)."""

    dimension: str
    type: str
    fail: int
    passed: int
    total: int
    weight: float
    score: float | None


@dataclass(frozen=True, slots=True)
class ScoreTable:
    """Table 2: one row per scored type and the Total row (``weight`` there is ``W``, the weights that counted)."""

    rows: list[ScoreRow]
    total: ScoreRow
    no_checks: str


def resolve_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """Table 2's weights overridden by ``weights`` (a partial mapping changes only the types it names)."""
    out = dict(DEFAULT_WEIGHTS)
    for name, value in (weights or {}).items():
        if name not in DEFAULT_WEIGHTS:  # pool checks are weighted in qc.pool.weights (scored in the QC index)
            raise ConfigError(f"qc.weights: unknown check type '{name}' (known: {', '.join(DEFAULT_WEIGHTS)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"qc.weights.{name}: {value!r} is not a number >= 0")
        out[name] = float(value)
    if sum(out.values()) <= 0:
        raise ConfigError("qc.weights: every weight is 0, so no score can be computed")
    return out


def check_thresholds(thresholds: Mapping[str, float] | None) -> dict[str, float]:
    """``qc.thresholds`` checked: {check type, variable, rule id or ``<variable>.<type>``: failure rate in percent,
    0-100}. Which names exist depends on the use case, so the workflow checks the names against every dictionary
    before any job (:func:`oncofhir.workflow_config.check_thresholds`); here only the values and the spelling."""
    out: dict[str, float] = {}
    for name, value in (thresholds or {}).items():
        if not isinstance(name, str) or not THRESHOLD_KEY.fullmatch(name):
            raise ConfigError(f"qc.thresholds: '{name}' is not a check type, variable, rule id or <variable>.<type>")
        if "." in name and name.split(".", 1)[1] not in TYPES:
            raise ConfigError(f"qc.thresholds.{name}: unknown check type '{name.split('.', 1)[1]}'")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise ConfigError(f"qc.thresholds.{name}: {value!r} is not a failure rate in percent (0-100)")
        out[name] = float(value)
    return out


def threshold_of(check: Check, thresholds: Mapping[str, float]) -> float | None:
    """The failure-rate threshold (percent) that applies to ``check``: the most specific name wins (the check's
    id, i.e. a rule id or ``<variable>.<type>``; then its variable, for checks of one variable; then its type)."""
    for key in (check.id, None if check.rule else check.variable, check.type):
        if key is not None and key in thresholds:
            return thresholds[key]
    return None


def check_policy(no_checks: str) -> str:
    """Validate the policy for types with no applicable checks."""
    if no_checks not in NO_CHECKS_POLICIES:
        raise ConfigError(f"qc.no_checks: '{no_checks}' is not one of {', '.join(NO_CHECKS_POLICIES)}")
    return no_checks


def table_types(weights: Mapping[str, float]) -> list[str]:
    """The rows of the score table: the paper's six types, then any other type given a weight, in Table 1 order."""
    return [t.name for t in TYPES.values() if t.name in PAPER_TYPES or weights.get(t.name, 0) > 0]


def score_table(
    counts: Mapping[str, tuple[int, int]], weights: Mapping[str, float], no_checks: str = DEFAULT_NO_CHECKS
) -> ScoreTable:
    """Table 2 from ``counts`` = {type: (fail, pass)} (types absent from ``counts`` have no checks)."""
    check_policy(no_checks)
    types = table_types(weights)
    rates: dict[str, float | None] = {}
    used = 0.0
    for t in types:
        fail, passed = counts.get(t, (0, 0))
        total = fail + passed
        rates[t] = passed / total if total else (1.0 if no_checks == "full_credit" else None)
        if rates[t] is not None:
            used += weights[t]
    rows = []
    for t in types:
        fail, passed = counts.get(t, (0, 0))
        rate = rates[t]
        share = None if rate is None or used == 0 else 100.0 * weights[t] * rate / used
        rows.append(ScoreRow(TYPES[t].dimension, t, fail, passed, fail + passed, weights[t], share))
    total_score = sum(r.score for r in rows if r.score is not None) if used else None
    total = ScoreRow(
        "Total",
        "",
        sum(r.fail for r in rows),
        sum(r.passed for r in rows),
        sum(r.total for r in rows),
        used,
        total_score,
    )
    return ScoreTable(rows, total, no_checks)


def center_counts(result: QCResult) -> dict[str, tuple[int, int]]:
    """{type: (fail, pass)} over the whole center, for every type that has checks."""
    out: dict[str, tuple[int, int]] = {}
    for t, (fail, passed) in record_counts(result).items():
        out[t] = (int(fail.sum()), int(passed.sum()))
    return out


def record_counts(result: QCResult) -> dict[str, tuple[NDArray[np.int32], NDArray[np.int32]]]:
    """{type: (fail per record, pass per record)} for every type that has at least one check."""
    kinds = np.array([c.type for c in result.checks], dtype=object)
    weights = np.array([c.weight for c in result.checks], dtype=np.int32)
    out = {}
    for t in TYPES:
        rows = np.flatnonzero(kinds == t)
        if len(rows):
            block = result.status[rows]
            w = weights[rows]
            if (w == 1).all():
                out[t] = (
                    (block == FAIL).sum(axis=0, dtype=np.int32),
                    (block == PASS).sum(axis=0, dtype=np.int32),
                )
            else:  # a rule's weight: its result counts as that many checks (0: reported, not counted)
                out[t] = (
                    (w @ (block == FAIL)).astype(np.int32),
                    (w @ (block == PASS)).astype(np.int32),
                )
    return out


def record_scores(
    counts: Mapping[str, tuple[NDArray[np.int32], NDArray[np.int32]]],
    weights: Mapping[str, float],
    n: int,
    no_checks: str = DEFAULT_NO_CHECKS,
) -> tuple[NDArray[np.float64], dict[str, NDArray[np.float64]]]:
    """Per record: the score (percent, ``NaN`` if nothing was checked) and each type's pass rate (percent, ``NaN``).

    Exactly :func:`score_table`'s formula, vectorised over records. Rates are given for the table's types and for
    any other type that has checks (unscored, but a gate minimum may name it).
    """
    check_policy(no_checks)
    numerator = np.zeros(n)
    denominator = np.zeros(n)
    rates: dict[str, NDArray[np.float64]] = {}
    scored = table_types(weights)
    for t in [*scored, *(t for t in counts if t not in scored)]:
        fail, passed = counts.get(t, (np.zeros(n, np.int32), np.zeros(n, np.int32)))
        total = fail + passed
        has = total > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(has, passed / np.maximum(total, 1), np.nan)
        rates[t] = 100.0 * rate
        if t not in scored:  # reported (e.g. for a gate minimum), not scored
            continue
        w = weights[t]
        if no_checks == "full_credit":
            numerator += w * np.where(has, rate, 1.0)
            denominator += w
        else:
            numerator += w * np.where(has, rate, 0.0)
            denominator += w * has
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(denominator > 0, 100.0 * numerator / np.maximum(denominator, 1e-300), np.nan)
    return score, rates


def pct(value: float | None) -> str:
    """A score as Table 2 prints it: ``44.44%``; ``n/a`` when there is none."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}%"


def weight_text(value: float) -> str:
    """A weight without a spurious ``.0`` (``50``, ``0.4``)."""
    return f"{value:g}"
