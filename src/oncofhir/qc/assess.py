"""One center's QC assessment: the check results turned into every number the outputs show.

Computed once here so the TSV, JSON and HTML writers only format; each number therefore appears identically in
every output, and the tests can check the assessment without parsing files.

A center is assessed chunk by chunk so memory stays flat whatever its size: :func:`assess_chunk` scores the records
of one chunk (everything per record: scores, gate, the drill-down lines), and :class:`CenterAccumulator` adds up
what the center-level outputs need (counts per type, check and data access group; every record's score, 8 bytes
each, for the median and histogram; the first exclusions for the page; every hidden-value conflict, which are few:
a value in a field the record's own answers hide). Every per-record number
depends on that record alone, and the center's numbers are sums (or statistics of the full score array), so any
chunk size gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .checks import QCResult
from .gate import GateResult, apply_gate
from .model import FAIL, PASS, TYPES, Check, labelled
from .scoring import ScoreTable, pct, record_counts, record_scores, score_table, table_types, threshold_of

FORMAT = 1
HISTOGRAM_BINS = 10
PREVIEW = 200

FailureRow = tuple[int, str, str, str, str, str, str, str]
#: A record whose hidden values contradict its answers: (row, record id, [(variable, value)]).
Conflict = tuple[int, str, list[tuple[str, str]]]


@dataclass(slots=True)
class ChunkQC:
    """The per-record results of one chunk of a center's records."""

    result: QCResult
    row_numbers: list[int]
    record_ids: list[str]
    dags: list[str]
    scores: NDArray[np.float64]
    type_rates: dict[str, NDArray[np.float64]]
    type_counts: dict[str, tuple[NDArray[np.int32], NDArray[np.int32]]]
    gate: GateResult
    _conflicts: list[tuple[int, list[tuple[str, str]]]] | None = field(default=None, repr=False)

    @property
    def n_records(self) -> int:
        """Records in the chunk."""
        return len(self.record_ids)

    def failure_rows(self, limit: int | None = None) -> list[FailureRow]:
        """(row, record_id, variable, check, type, dimension, value, message) of failed checks, record by record."""
        records, which = np.nonzero((self.result.status == FAIL).T)
        if limit is not None:
            records, which = records[:limit], which[:limit]
        out = []
        for r, k in zip(records.tolist(), which.tolist(), strict=True):
            c = self.result.checks[k]
            value = self.result.shown(k, r, {}) if c.variables else self.result.value(c.variable, r)
            rid = self.record_ids[r]
            out.append((self.row_numbers[r], rid, c.variable, c.id, c.type, c.dimension, value, c.message))
        return out

    def failed_per_record(self) -> NDArray[np.int64]:
        """How many checks each record of the chunk failed."""
        return (self.result.status == FAIL).sum(axis=0)

    def hidden_conflicts(self) -> list[tuple[int, list[tuple[str, str]]]]:
        """Per record with any (chunk index, [(variable, value)]): values present although the record's own answers
        hide the field (failed ``branching`` checks).

        The FHIR bundle leaves such a value out (right: the answers say it does not apply), so the contradiction
        shows nowhere else; only the hospital can say which side is wrong.
        """
        if self._conflicts is not None:  # the accumulator and send_back.tsv both ask
            return self._conflicts
        rows = [k for k, c in enumerate(self.result.checks) if c.type == "branching"]
        if not rows:
            self._conflicts = []
            return []
        records, which = np.nonzero((self.result.status[rows] == FAIL).T)
        out: dict[int, list[tuple[str, str]]] = {}
        for r, k in zip(records.tolist(), which.tolist(), strict=True):
            variable = self.result.checks[rows[k]].variable
            out.setdefault(r, []).append((variable, self.result.value(variable, r)))
        self._conflicts = list(out.items())
        return self._conflicts


def assess_chunk(
    result: QCResult,
    *,
    row_numbers: list[int],
    record_ids: list[str],
    dags: list[str],
    weights: dict[str, float],
    no_checks: str,
    min_record_score: float,
    min_type_scores: dict[str, float],
) -> ChunkQC:
    """Score every record of ``result`` and apply the gate."""
    n = result.n_records
    type_counts = record_counts(result)
    scores, rates = record_scores(type_counts, weights, n, no_checks)
    gate = apply_gate(scores, rates, min_record_score, min_type_scores)
    return ChunkQC(result, row_numbers, record_ids, dags, scores, rates, type_counts, gate)


@dataclass(slots=True)
class GateSummary:
    """The gate over the whole center: its settings and how many records passed or were excluded."""

    min_record_score: float
    min_type_scores: dict[str, float]
    passed: int
    excluded: int


@dataclass(slots=True)
class CenterQC:
    """Everything QC found for one (use case, center), summed over its chunks."""

    use_case: str
    center: str
    dictionary_version: str
    weights: dict[str, float]
    no_checks: str
    checks: list[Check]
    checked_types: list[str]
    n_records: int
    table: ScoreTable
    counts: dict[str, tuple[int, int]]
    scores: NDArray[np.float64]
    gate: GateSummary
    per_check: list[dict[str, Any]]
    group_counts: dict[str, dict[str, Any]]
    excluded_preview: list[tuple[int, str, str, str]] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # variable -> code -> label (coded fields)
    thresholds: dict[str, float] = field(default_factory=dict)  # qc.thresholds: name -> failure rate (percent)

    def labelled(self, variable: str, value: str) -> str:
        """``1 = Female`` for a coded value with a label; the value itself otherwise."""
        return labelled(self.labels, variable, value)

    @property
    def reported_types(self) -> list[str]:
        """Scored types (the table's rows), then unscored types that have checks (flags)."""
        return reported_types(self.weights, self.checked_types)

    @property
    def unscored_types(self) -> list[str]:
        """Types with checks but not in the score (weight 0 and not one of the paper's types)."""
        scored = table_types(self.weights)
        return [t for t in TYPES if t not in scored and t in self.checked_types]

    def groups(self) -> list[dict[str, Any]]:
        """Scores per REDCap data access group (the consortium tool's use case + group level)."""
        out = []
        for name in sorted(self.group_counts):
            g = self.group_counts[name]
            table = score_table(g["counts"], self.weights, self.no_checks)
            out.append(
                {
                    "dag": name,
                    "records": g["records"],
                    "excluded": g["excluded"],
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
            "checks": len(self.checks),
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
                "passed": self.gate.passed,
                "excluded": self.gate.excluded,
            },
            "groups": self.groups(),
            "per_check": self.per_check,
            "thresholds": self.thresholds,
            "above_threshold": [c["id"] for c in self.per_check if c["above_threshold"]],
            "failures": int(sum(c["fail"] for c in self.per_check)),
            "hidden_conflicts": {
                "values": int(sum(c["fail"] for c in self.per_check if c["type"] == "branching")),
                "records": len(self.conflicts),
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


def reported_types(weights: dict[str, float], checked: list[str]) -> list[str]:
    """Scored types (the table's rows), then unscored types that have checks (flags)."""
    scored = table_types(weights)
    return [*scored, *(t for t in TYPES if t not in scored and t in checked)]


class CenterAccumulator:
    """Adds up the chunks of one center into a :class:`CenterQC`."""

    def __init__(
        self,
        *,
        use_case: str,
        center: str,
        dictionary_version: str,
        weights: dict[str, float],
        no_checks: str,
        min_record_score: float,
        min_type_scores: dict[str, float],
        preview: int = PREVIEW,
        labels: dict[str, dict[str, str]] | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> None:
        self.thresholds = thresholds or {}
        self.use_case, self.center, self.dictionary_version = use_case, center, dictionary_version
        self.weights, self.no_checks = weights, no_checks
        self.min_record_score, self.min_type_scores = min_record_score, min_type_scores
        self.preview = preview
        self.labels = labels or {}
        self.conflicts: list[Conflict] = []
        self.checks: list[Check] = []
        self.checked_types: list[str] = []
        self.n = 0
        self.passed = 0
        self.counts: dict[str, list[int]] = {}
        self.fails: NDArray[np.int64] | None = None
        self.passes: NDArray[np.int64] | None = None
        self.scores: list[NDArray[np.float64]] = []
        self.groups: dict[str, dict[str, Any]] = {}
        self.excluded: list[tuple[int, str, str, str]] = []

    def add(self, chunk: ChunkQC) -> None:
        """Count one chunk in."""
        status = chunk.result.status
        if not self.checks:
            self.checks = list(chunk.result.checks)
            self.checked_types = list(chunk.type_counts)
            self.fails = np.zeros(len(self.checks), dtype=np.int64)
            self.passes = np.zeros(len(self.checks), dtype=np.int64)
        assert self.fails is not None and self.passes is not None
        self.n += chunk.n_records
        self.fails += (status == FAIL).sum(axis=1)
        self.passes += (status == PASS).sum(axis=1)
        for t, (f, p) in chunk.type_counts.items():
            total = self.counts.setdefault(t, [0, 0])
            total[0] += int(f.sum())
            total[1] += int(p.sum())
        self.scores.append(chunk.scores)
        passed = chunk.gate.passed
        self.passed += int(passed.sum())
        if chunk.n_records:
            names, inverse = np.unique(np.asarray(chunk.dags, dtype=object), return_inverse=True)
            for k, name in enumerate(names.tolist()):
                members = inverse.ravel() == k
                g = self.groups.setdefault(str(name), {"records": 0, "excluded": 0, "counts": {}})
                g["records"] += int(members.sum())
                g["excluded"] += int((~passed[members]).sum())
                for t, (f, p) in chunk.type_counts.items():
                    fp = g["counts"].get(t, (0, 0))
                    g["counts"][t] = (fp[0] + int(f[members].sum()), fp[1] + int(p[members].sum()))
        self.conflicts += [
            (chunk.row_numbers[r], chunk.record_ids[r], values) for r, values in chunk.hidden_conflicts()
        ]
        if len(self.excluded) < self.preview:
            for i in np.flatnonzero(~passed)[: self.preview - len(self.excluded)].tolist():
                score = pct(float(chunk.scores[i]))
                self.excluded.append((chunk.row_numbers[i], chunk.record_ids[i], score, chunk.gate.reasons[i]))

    def finish(self) -> CenterQC:
        """The center's assessment."""
        n = self.n
        counts = {t: (f, p) for t, (f, p) in self.counts.items()}
        fails = self.fails if self.fails is not None else np.zeros(0, dtype=np.int64)
        passes = self.passes if self.passes is not None else np.zeros(0, dtype=np.int64)
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
                **_threshold(c, int(fails[k]), int(passes[k]), self.thresholds),
            }
            for k, c in enumerate(self.checks)
        ]
        gate = GateSummary(self.min_record_score, self.min_type_scores, self.passed, n - self.passed)
        return CenterQC(
            self.use_case,
            self.center,
            self.dictionary_version,
            self.weights,
            self.no_checks,
            self.checks,
            self.checked_types,
            n,
            score_table(counts, self.weights, self.no_checks),
            counts,
            np.concatenate(self.scores) if self.scores else np.zeros(0),
            gate,
            per_check,
            self.groups,
            self.excluded,
            self.conflicts,
            self.labels,
            self.thresholds,
        )


def _threshold(check: Check, fail: int, passed: int, thresholds: dict[str, float]) -> dict[str, Any]:
    """A check's failure rate (percent of the records it applied to; ``None``: never applied), the threshold that
    applies to it (``qc.thresholds``; ``None``: none) and whether the rate is above it (DQD's rule: flagged when
    the rate exceeds the threshold, so a threshold of 0 flags any failure)."""
    total = fail + passed
    rate = 100.0 * fail / total if total else None
    limit = threshold_of(check, thresholds)
    return {
        "fail_rate": rate,
        "threshold": limit,
        "above_threshold": bool(rate is not None and limit is not None and round(rate, 2) > limit),
    }
