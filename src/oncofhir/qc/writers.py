"""Plain-text QC outputs: Table 2 (``scores.tsv``), per-record scores, the failure drill-down, the gate, JSON.

They hold record ids and values (personal data), so every file is written 0600 and atomically
(:func:`oncofhir.io_utils.write_private`). Every TSV goes through :mod:`oncofhir.tsv`: cells are escaped (a value can
never break a line or a column) and formula injection is neutralised (``failures.tsv`` goes back to the hospital).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..io_utils import write_private
from ..tsv import cell, cells, to_bytes
from .assess import CenterQC
from .model import FAIL
from .scoring import ScoreTable, pct, weight_text

SCORES_COLUMNS = ["Dimension", "Type", "Fail", "Pass", "Total", "Weight", "Score"]
FAILURES_COLUMNS = ["row", "record_id", "variable", "check", "type", "dimension", "value", "message"]
GATE_COLUMNS = ["row", "record_id", "score", "passed", "reason"]


def numbers(values: NDArray[np.float64]) -> list[str]:
    """Record-level percentages with two decimals, rounded as the gate rounds them; blank where there is none.

    Formatted once per distinct value (scores repeat a lot), then spread back to the records.
    """
    distinct, inverse = np.unique(np.round(values, 2), return_inverse=True)
    spelled = ["" if math.isnan(v) else f"{v:.2f}" for v in distinct.tolist()]
    return [spelled[k] for k in inverse.ravel().tolist()]


def table_tsv(table: ScoreTable) -> bytes:
    """Table 2 exactly: Dimension, Type, Fail, Pass, Total, Weight, Score; then the Total row."""
    rows = [[r.dimension, r.type, r.fail, r.passed, r.total, weight_text(r.weight), pct(r.score)] for r in table.rows]
    t = table.total
    rows.append([t.dimension, t.type, t.fail, t.passed, t.total, weight_text(t.weight), pct(t.score)])
    return to_bytes(SCORES_COLUMNS, rows)


def scores_tsv(qc: CenterQC) -> bytes:
    """The center's Table 2 (``scores.tsv``)."""
    return table_tsv(qc.table)


def records_tsv(qc: CenterQC) -> bytes:
    """One line per record: its score and, per type, fail / pass counts and pass rate (blank: no checks)."""
    types = qc.reported_types
    header = ["row", "record_id", "dag", "score", *(f"{t}_{k}" for t in types for k in ("fail", "pass", "score"))]
    n = qc.n_records
    zeros = np.zeros(n, dtype=np.int32)
    cols: list[list[str]] = [
        [str(x) for x in qc.row_numbers],
        cells(qc.record_ids),
        cells(qc.dags),
        numbers(qc.scores),
    ]
    for t in types:
        fail, passed = qc.type_counts.get(t, (zeros, zeros))
        cols.append([str(x) for x in fail.tolist()])
        cols.append([str(x) for x in passed.tolist()])
        cols.append(numbers(qc.type_rates[t]))
    return to_bytes(header, zip(*cols, strict=True) if n else [], ready=True)


def failures_tsv(qc: CenterQC) -> bytes:
    """Every failed check of every record, record by record in dictionary order: the drill-down to send back."""
    result = qc.result
    checks = result.checks
    records, which = np.nonzero((result.status == FAIL).T)  # row-major over records: sorted by record, then check
    prefix = [(str(row), rid) for row, rid in zip(qc.row_numbers, cells(qc.record_ids), strict=True)]
    middle = [(cell(c.variable), cell(c.id), c.type, c.dimension) for c in checks]
    suffix = [cell(c.message) for c in checks]
    # Values are escaped once per distinct value of each variable that has a failure.
    escaped: dict[str, list[str]] = {}
    codes: dict[str, list[int]] = {}
    for k in set(which.tolist()):
        var = checks[k].variable
        if var not in escaped:
            col = result.columns[var]
            escaped[var], codes[var] = cells(col.uniques), col.codes.tolist()
    by_check = [(escaped.get(c.variable, []), codes.get(c.variable, [])) for c in checks]
    rows = (
        (*prefix[r], *middle[k], by_check[k][0][by_check[k][1][r]], suffix[k])
        for r, k in zip(records.tolist(), which.tolist(), strict=True)
    )
    return to_bytes(FAILURES_COLUMNS, rows, ready=True)


def gate_tsv(qc: CenterQC) -> bytes:
    """Every record with its score and the gate's decision; ``reason`` names the scores that fell short."""
    gate = qc.gate
    passed = ["yes" if p else "no" for p in gate.passed.tolist()]
    rows = zip(
        [str(r) for r in qc.row_numbers],
        cells(qc.record_ids),
        numbers(qc.scores),
        passed,
        cells(gate.reasons),
        strict=True,
    )
    return to_bytes(GATE_COLUMNS, rows, ready=True)


SEND_BACK_COLUMNS = ["row", "record_id", "hidden_conflicts", "conflicting_values", "other_failures"]


def send_back_tsv(qc: CenterQC) -> bytes:
    """One line per record with something to send back to the hospital; records whose hidden values contradict
    their own answers first (those values are left out of the bundles and appear nowhere else), then the others.

    ``conflicting_values`` lists ``variable: value`` (``her2_fish: 1 = Positive``); ``other_failures`` counts the
    record's other failed checks, which ``failures.tsv`` details.
    """
    conflicts = dict(qc.hidden_conflicts())
    failed = (qc.result.status == FAIL).sum(axis=0)
    with_failures = np.flatnonzero(failed).tolist()
    order = [r for r in with_failures if r in conflicts] + [r for r in with_failures if r not in conflicts]
    ids = qc.record_ids
    counts = failed.tolist()
    rows = []
    for r in order:
        values = conflicts.get(r, ())
        text = cell("; ".join(f"{v}: {qc.labelled(v, x)}" for v, x in values)) if values else ""
        rows.append((str(qc.row_numbers[r]), cell(ids[r]), str(len(values)), text, str(counts[r] - len(values))))
    return to_bytes(SEND_BACK_COLUMNS, rows, ready=True)


def dump_json(obj: Any) -> bytes:
    """Stable, readable JSON (sorted keys) so an unchanged input gives identical bytes."""
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def write_tables(qc: CenterQC, out_dir: Path, summary: dict[str, Any]) -> None:
    """Write scores.tsv, records.tsv, failures.tsv, send_back.tsv, gate.tsv and qc.json (``summary``)."""
    write_private(out_dir / "scores.tsv", scores_tsv(qc))
    write_private(out_dir / "records.tsv", records_tsv(qc))
    write_private(out_dir / "failures.tsv", failures_tsv(qc))
    write_private(out_dir / "send_back.tsv", send_back_tsv(qc))
    write_private(out_dir / "gate.tsv", gate_tsv(qc))
    write_private(out_dir / "qc.json", dump_json(summary))
