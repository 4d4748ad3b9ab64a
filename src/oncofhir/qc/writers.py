"""Plain-text QC outputs: Table 2 (``scores.tsv``), per-record scores, the failure drill-down, the gate, JSON.

The per-record tables are written chunk by chunk (:class:`RecordTables`): a header, then each chunk's lines.

They hold record ids and values (personal data), so every file is written 0600 and atomically
(:func:`oncofhir.io_utils.write_private`). TSV cells escape backslash, tab, CR and LF as ``\\\\``, ``\\t``, ``\\r``,
``\\n`` (the convention of ``rejects.tsv``), so a value can never break a line or a column.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..io_utils import private_writer, write_private
from .assess import CenterQC, ChunkQC
from .model import FAIL
from .scoring import ScoreTable, pct, weight_text

SCORES_COLUMNS = ["Dimension", "Type", "Fail", "Pass", "Total", "Weight", "Score"]
FAILURES_COLUMNS = ["row", "record_id", "variable", "check", "type", "dimension", "value", "message"]
GATE_COLUMNS = ["row", "record_id", "score", "passed", "reason"]
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = re.compile(r"[\\\t\n\r]")


def cell(text: object) -> str:
    """One TSV cell, escaped."""
    return str(text).translate(_ESCAPES)


def _cells(values: list[str]) -> list[str]:
    """Escape a column of cells, translating only the few that need it."""
    return [v.translate(_ESCAPES) if _SPECIAL.search(v) else v for v in values]


def _lines(rows: Iterable[Iterable[object]]) -> bytes:
    return ("\n".join("\t".join(cell(c) for c in row) for row in rows) + "\n").encode("utf-8")


def numbers(values: NDArray[np.float64]) -> list[str]:
    """Record-level percentages with two decimals, rounded as the gate rounds them; blank where there is none.

    Formatted once per distinct value (scores repeat a lot), then spread back to the records.
    """
    distinct, inverse = np.unique(np.round(values, 2), return_inverse=True)
    spelled = ["" if math.isnan(v) else f"{v:.2f}" for v in distinct.tolist()]
    return [spelled[k] for k in inverse.ravel().tolist()]


def table_tsv(table: ScoreTable) -> bytes:
    """Table 2 exactly: Dimension, Type, Fail, Pass, Total, Weight, Score; then the Total row."""
    rows: list[list[object]] = [SCORES_COLUMNS]
    for r in [*table.rows, table.total]:
        rows.append([r.dimension, r.type, r.fail, r.passed, r.total, weight_text(r.weight), pct(r.score)])
    return _lines(rows)


def scores_tsv(qc: CenterQC) -> bytes:
    """The center's Table 2 (``scores.tsv``)."""
    return table_tsv(qc.table)


def records_header(types: list[str]) -> bytes:
    """The header of ``records.tsv`` for the reported types."""
    header = ["row", "record_id", "dag", "score", *(f"{t}_{k}" for t in types for k in ("fail", "pass", "score"))]
    return ("\t".join(header) + "\n").encode("utf-8")


def records_lines(chunk: ChunkQC, types: list[str]) -> bytes:
    """One line per record: its score and, per type, fail / pass counts and pass rate (blank: no checks)."""
    n = chunk.n_records
    if not n:
        return b""
    zeros = np.zeros(n, dtype=np.int32)
    cols: list[list[str]] = [
        [str(x) for x in chunk.row_numbers],
        _cells(chunk.record_ids),
        _cells(chunk.dags),
        numbers(chunk.scores),
    ]
    for t in types:
        fail, passed = chunk.type_counts.get(t, (zeros, zeros))
        cols.append([str(x) for x in fail.tolist()])
        cols.append([str(x) for x in passed.tolist()])
        cols.append(numbers(chunk.type_rates[t]))
    return "".join("\t".join(parts) + "\n" for parts in zip(*cols, strict=True)).encode("utf-8")


def failures_header() -> bytes:
    """The header of ``failures.tsv``."""
    return ("\t".join(FAILURES_COLUMNS) + "\n").encode("utf-8")


def failures_lines(chunk: ChunkQC) -> bytes:
    """Every failed check of every record, record by record in dictionary order: the drill-down to send back."""
    result = chunk.result
    checks = result.checks
    records, which = np.nonzero((result.status == FAIL).T)  # row-major over records: sorted by record, then check
    prefix = [f"{row}\t{rid}\t" for row, rid in zip(chunk.row_numbers, _cells(chunk.record_ids), strict=True)]
    middle = [f"{cell(c.variable)}\t{cell(c.id)}\t{c.type}\t{c.dimension}\t" for c in checks]
    suffix = [f"\t{cell(c.message)}\n" for c in checks]
    # Values are escaped once per distinct value of each variable that has a failure.
    escaped: dict[str, list[str]] = {}
    codes: dict[str, list[int]] = {}
    for k in set(which.tolist()):
        var = checks[k].variable
        if var not in escaped:
            col = result.columns[var]
            escaped[var], codes[var] = _cells(col.uniques), col.codes.tolist()
    by_check = [(escaped.get(c.variable, []), codes.get(c.variable, [])) for c in checks]
    out = []
    append = out.append
    for r, k in zip(records.tolist(), which.tolist(), strict=True):
        values, value_codes = by_check[k]
        append(prefix[r] + middle[k] + values[value_codes[r]] + suffix[k])
    return "".join(out).encode("utf-8")


def gate_header() -> bytes:
    """The header of ``gate.tsv``."""
    return ("\t".join(GATE_COLUMNS) + "\n").encode("utf-8")


def gate_lines(chunk: ChunkQC) -> bytes:
    """Every record with its score and the gate's decision; ``reason`` names the scores that fell short."""
    gate = chunk.gate
    passed = ["yes" if p else "no" for p in gate.passed.tolist()]
    columns = zip(
        chunk.row_numbers, _cells(chunk.record_ids), numbers(chunk.scores), passed, _cells(gate.reasons), strict=True
    )
    return "".join(f"{r}\t{i}\t{s}\t{p}\t{why}\n" for r, i, s, p, why in columns).encode("utf-8")


def dump_json(obj: Any) -> bytes:
    """Stable, readable JSON (sorted keys) so an unchanged input gives identical bytes."""
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


class RecordTables:
    """``records.tsv``, ``failures.tsv`` and ``gate.tsv`` written chunk by chunk (0600, renamed when complete)."""

    def __init__(self, out_dir: Path, types: list[str]) -> None:
        self._stack = contextlib.ExitStack()
        self.types = types
        self.records = self._stack.enter_context(private_writer(out_dir / "records.tsv"))
        self.failures = self._stack.enter_context(private_writer(out_dir / "failures.tsv"))
        self.gate = self._stack.enter_context(private_writer(out_dir / "gate.tsv"))
        self.records.write(records_header(types))
        self.failures.write(failures_header())
        self.gate.write(gate_header())

    def add(self, chunk: ChunkQC) -> None:
        """Append one chunk's lines."""
        self.records.write(records_lines(chunk, self.types))
        self.failures.write(failures_lines(chunk))
        self.gate.write(gate_lines(chunk))

    def __enter__(self) -> RecordTables:
        return self

    def __exit__(self, *exc: object) -> bool | None:
        return self._stack.__exit__(*exc)  # type: ignore[arg-type]


def write_tables(qc: CenterQC, out_dir: Path, summary: dict[str, Any]) -> None:
    """Write scores.tsv and qc.json (``summary``) into ``out_dir`` (the per-record tables: :class:`RecordTables`)."""
    write_private(out_dir / "scores.tsv", scores_tsv(qc))
    write_private(out_dir / "qc.json", dump_json(summary))
