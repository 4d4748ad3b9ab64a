"""One center's QC assessment: the check results turned into every number the outputs show.

Computed once here so the TSV, JSON and HTML writers only format; each number therefore appears identically in
every output, and the tests can check the assessment without parsing files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .checks import QCResult
from .gate import GateResult, apply_gate
from .model import FAIL, PASS, TYPES
from .scoring import ScoreTable, record_counts, record_scores, score_table, table_types

FORMAT = 1
HISTOGRAM_BINS = 10


@dataclass(slots=True)
class CenterQC:
    """Everything QC found for one (use case, center)."""

    use_case: str
    center: str
    dictionary_version: str
    weights: dict[str, float]
    no_checks: str
    result: QCResult
    row_numbers: list[int]
    record_ids: list[str]
    dags: list[str]
    table: ScoreTable
    counts: dict[str, tuple[int, int]]
    scores: NDArray[np.float64]
    type_rates: dict[str, NDArray[np.float64]]
    type_counts: dict[str, tuple[NDArray[np.int32], NDArray[np.int32]]]
    gate: GateResult
    per_check: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # variable -> code -> label (coded fields)
    _conflicts: list[tuple[int, list[tuple[str, str]]]] | None = field(default=None, repr=False)

    @property
    def n_records(self) -> int:
        """Records assessed."""
        return len(self.record_ids)

    @property
    def reported_types(self) -> list[str]:
        """Scored types (the table's rows), then unscored types that have checks (flags)."""
        scored = table_types(self.weights)
        return [*scored, *(t for t in TYPES if t not in scored and t in self.type_counts)]

    @property
    def unscored_types(self) -> list[str]:
        """Types with checks but not in the score (weight 0 and not one of the paper's types)."""
        scored = table_types(self.weights)
        return [t for t in TYPES if t not in scored and t in self.type_counts]

    def failure_rows(self, limit: int | None = None) -> list[tuple[int, str, str, str, str, str, str, str]]:
        """(row, record_id, variable, check, type, dimension, value, message) of failed checks, record by record."""
        records, which = np.nonzero((self.result.status == FAIL).T)
        if limit is not None:
            records, which = records[:limit], which[:limit]
        out = []
        for r, k in zip(records.tolist(), which.tolist(), strict=True):
            c = self.result.checks[k]
            value = self.result.value(c.variable, r)
            rid = self.record_ids[r]
            out.append((self.row_numbers[r], rid, c.variable, c.id, c.type, c.dimension, value, c.message))
        return out

    def labelled(self, variable: str, value: str) -> str:
        """``1 = Female`` for a coded value with a label; the value itself otherwise."""
        label = self.labels.get(variable, {}).get(value)
        return f"{value} = {label}" if label is not None else value

    def hidden_conflicts(self) -> list[tuple[int, list[tuple[str, str]]]]:
        """Per record with any (record index, [(variable, value)]): values present although the record's own answers
        hide the field (failed ``branching`` checks).

        The FHIR bundle leaves such a value out (right: the answers say it does not apply), so the contradiction
        shows nowhere else; only the hospital can say which side is wrong.
        """
        if self._conflicts is not None:  # the summary, send_back.tsv and the page all ask
            return self._conflicts
        rows = [k for k, c in enumerate(self.result.checks) if c.type == "branching"]
        if not rows:
            self._conflicts = []
            return []
        status = self.result.status[rows]
        records, which = np.nonzero((status == FAIL).T)
        out: dict[int, list[tuple[str, str]]] = {}
        for r, k in zip(records.tolist(), which.tolist(), strict=True):
            variable = self.result.checks[rows[k]].variable
            out.setdefault(r, []).append((variable, self.result.value(variable, r)))
        self._conflicts = list(out.items())
        return self._conflicts

    def groups(self) -> list[dict[str, Any]]:
        """Scores per REDCap data access group (the consortium tool's use case + group level)."""
        names, inverse = np.unique(np.asarray(self.dags, dtype=object), return_inverse=True)
        out = []
        for k, name in enumerate(names):
            members = inverse == k
            counts = {t: (int(f[members].sum()), int(p[members].sum())) for t, (f, p) in self.type_counts.items()}
            table = score_table(counts, self.weights, self.no_checks)
            out.append(
                {
                    "dag": str(name),
                    "records": int(members.sum()),
                    "excluded": int((~self.gate.passed[members]).sum()),
                    "score": table.total.score,
                    "types": {r.type: r.score for r in table.rows},
                }
            )
        return out

    def histogram(self) -> dict[str, Any]:
        """Record scores in ten bins of 10 points (the last one includes 100), plus records with no score."""
        scores = self.scores[~np.isnan(self.scores)]
        bins = np.minimum((np.round(scores, 2) // (100 / HISTOGRAM_BINS)).astype(int), HISTOGRAM_BINS - 1)
        counts = np.bincount(bins, minlength=HISTOGRAM_BINS) if len(bins) else np.zeros(HISTOGRAM_BINS, int)
        return {
            "edges": [k * 100 // HISTOGRAM_BINS for k in range(HISTOGRAM_BINS + 1)],
            "counts": [int(c) for c in counts],
            "no_score": int(np.isnan(self.scores).sum()),
        }

    def summary(self) -> dict[str, Any]:
        """The machine-readable result (``qc.json``): what the combined page pools per use case."""
        scores = self.scores[~np.isnan(self.scores)]
        return {
            "format": FORMAT,
            "use_case": self.use_case,
            "center": self.center,
            "dictionary_version": self.dictionary_version,
            "records": self.n_records,
            "checks": len(self.result.checks),
            "policy": {"weights": self.weights, "no_checks": self.no_checks},
            "table": [_row(r) for r in self.table.rows],
            "total": _row(self.table.total),
            "unscored": [
                {
                    "type": t,
                    "dimension": TYPES[t].dimension,
                    "fail": self.counts[t][0],
                    "pass": self.counts[t][1],
                    "total": sum(self.counts[t]),
                }
                for t in self.unscored_types
            ],
            "record_scores": {
                "mean": float(scores.mean()) if len(scores) else None,
                "median": float(np.median(scores)) if len(scores) else None,
                "min": float(scores.min()) if len(scores) else None,
                "histogram": self.histogram(),
            },
            "gate": {
                "min_record_score": self.gate.min_record_score,
                "min_type_scores": self.gate.min_type_scores,
                "passed": int(self.gate.passed.sum()),
                "excluded": self.gate.excluded,
            },
            "groups": self.groups(),
            "per_check": self.per_check,
            "failures": int(sum(c["fail"] for c in self.per_check)),
            "hidden_conflicts": {
                "values": int(sum(c["fail"] for c in self.per_check if c["type"] == "branching")),
                "records": len(self.hidden_conflicts()),
            },
        }


def _row(r: Any) -> dict[str, Any]:
    return {
        "dimension": r.dimension,
        "type": r.type,
        "fail": r.fail,
        "pass": r.passed,
        "total": r.total,
        "weight": r.weight,
        "score": r.score,
    }


def assess(
    result: QCResult,
    *,
    use_case: str,
    center: str,
    dictionary_version: str,
    row_numbers: list[int],
    record_ids: list[str],
    dags: list[str],
    weights: dict[str, float],
    no_checks: str,
    min_record_score: float,
    min_type_scores: dict[str, float],
    labels: dict[str, dict[str, str]] | None = None,
) -> CenterQC:
    """Score ``result`` per record and per center, and apply the gate."""
    n = result.n_records
    type_counts = record_counts(result)
    counts = {t: (int(f.sum()), int(p.sum())) for t, (f, p) in type_counts.items()}
    table = score_table(counts, weights, no_checks)
    scores, rates = record_scores(type_counts, weights, n, no_checks)
    gate = apply_gate(scores, rates, min_record_score, min_type_scores)
    fails = (result.status == FAIL).sum(axis=1)
    passes = (result.status == PASS).sum(axis=1)
    per_check = [
        {
            "id": c.id,
            "variable": c.variable,
            "type": c.type,
            "dimension": c.dimension,
            "fail": int(fails[k]),
            "pass": int(passes[k]),
            "not_applicable": int(n - fails[k] - passes[k]),
            "message": c.message,
        }
        for k, c in enumerate(result.checks)
    ]
    return CenterQC(
        use_case,
        center,
        dictionary_version,
        weights,
        no_checks,
        result,
        row_numbers,
        record_ids,
        dags,
        table,
        counts,
        scores,
        rates,
        type_counts,
        gate,
        per_check,
        labels or {},
    )
