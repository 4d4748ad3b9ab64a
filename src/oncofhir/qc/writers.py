"""Plain-text QC outputs: Table 2 (``scores.tsv``), per-record scores, the failure drill-down, the gate, JSON.

The per-record tables are written chunk by chunk (:class:`RecordTables`): a header, then each chunk's lines.
``send_back.tsv`` puts records with hidden-value conflicts first: their lines are kept in memory (such records are
few, and :class:`~oncofhir.qc.assess.CenterQC` holds them anyway for ``qc.json`` and the page), the other records'
lines go to an anonymous temporary file (0600, gone with the process) copied in after them. Memory stays bounded by
the chunk, and the file does not depend on the chunk size.

They hold record ids and values (personal data), so every file is written 0600 and atomically
(:func:`oncofhir.io_utils.write_private`). Every TSV goes through :mod:`oncofhir.tsv`: cells are escaped (a value can
never break a line or a column) and formula injection is neutralised (``failures.tsv`` goes back to the hospital).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from ..io_utils import no_space, private_writer, write_private
from ..tsv import cell, cells, to_bytes
from .assess import CenterQC, ChunkQC, labelled
from .model import FAIL
from .scoring import ScoreTable, pct, weight_text

SCORES_COLUMNS = ["Dimension", "Type", "Fail", "Pass", "Total", "Weight", "Score"]
FAILURES_COLUMNS = ["row", "record_id", "variable", "check", "type", "dimension", "value", "message"]
GATE_COLUMNS = ["row", "record_id", "score", "passed", "reason"]
SEND_BACK_COLUMNS = ["row", "record_id", "hidden_conflicts", "conflicting_values", "other_failures"]


def numbers(values: NDArray[np.float64]) -> list[str]:
    """Record-level percentages with two decimals, rounded as the gate rounds them; blank where there is none.

    Formatted once per distinct value (scores repeat a lot), then spread back to the records.
    """
    distinct, inverse = np.unique(np.round(values, 2), return_inverse=True)
    spelled = ["" if math.isnan(v) else f"{v:.2f}" for v in distinct.tolist()]
    return [spelled[k] for k in inverse.ravel().tolist()]


def table_tsv(table: ScoreTable) -> bytes:
    """Table 2 exactly: Dimension, Type, Fail, Pass, Total, Weight, Score; then the Total row."""
    rows = [
        [r.dimension, r.type, r.fail, r.passed, r.total, weight_text(r.weight), pct(r.score)]
        for r in [*table.rows, table.total]
    ]
    return to_bytes(SCORES_COLUMNS, rows)


def scores_tsv(qc: CenterQC) -> bytes:
    """The center's Table 2 (``scores.tsv``)."""
    return table_tsv(qc.table)


def records_header(types: list[str]) -> bytes:
    """The header of ``records.tsv`` for the reported types."""
    header = ["row", "record_id", "dag", "score", *(f"{t}_{k}" for t in types for k in ("fail", "pass", "score"))]
    return to_bytes(header, [])


def records_lines(chunk: ChunkQC, types: list[str]) -> bytes:
    """One line per record: its score and, per type, fail / pass counts and pass rate (blank: no checks)."""
    n = chunk.n_records
    if not n:
        return b""
    zeros = np.zeros(n, dtype=np.int32)
    cols: list[list[str]] = [
        [str(x) for x in chunk.row_numbers],
        cells(chunk.record_ids),
        cells(chunk.dags),
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
    return to_bytes(FAILURES_COLUMNS, [])


def failures_lines(chunk: ChunkQC, labels: dict[str, dict[str, str]] | None = None) -> bytes:
    """Every failed check of every record, record by record in dictionary order: the drill-down to send back.

    A rule's or calculation's failure shows every variable it names (``bcstproxy: 0 = Basal-like; er: 45``),
    coded values labelled with ``labels``."""
    result = chunk.result
    checks = result.checks
    records, which = np.nonzero((result.status == FAIL).T)  # row-major over records: sorted by record, then check
    prefix = [f"{row}\t{rid}\t" for row, rid in zip(chunk.row_numbers, cells(chunk.record_ids), strict=True)]
    middle = [f"{cell(c.variable)}\t{cell(c.id)}\t{c.type}\t{c.dimension}\t" for c in checks]
    suffix = [f"\t{cell(c.message)}\n" for c in checks]
    # Values are escaped once per distinct value of each variable that has a failure.
    escaped: dict[str, list[str]] = {}
    codes: dict[str, list[int]] = {}
    for k in set(which.tolist()):
        var = checks[k].variable
        if checks[k].variables:
            continue
        if var not in escaped:
            col = result.columns[var]
            escaped[var], codes[var] = cells(col.uniques), col.codes.tolist()
    by_check = [(escaped.get(c.variable, []), codes.get(c.variable, [])) for c in checks]
    out = []
    append = out.append
    for r, k in zip(records.tolist(), which.tolist(), strict=True):
        if checks[k].variables:
            append(prefix[r] + middle[k] + cell(result.shown(k, r, labels or {})) + suffix[k])
            continue
        values, value_codes = by_check[k]
        append(prefix[r] + middle[k] + values[value_codes[r]] + suffix[k])
    return "".join(out).encode("utf-8")


def gate_header() -> bytes:
    """The header of ``gate.tsv``."""
    return to_bytes(GATE_COLUMNS, [])


def gate_lines(chunk: ChunkQC) -> bytes:
    """Every record with its score and the gate's decision; ``reason`` names the scores that fell short."""
    gate = chunk.gate
    passed = ["yes" if p else "no" for p in gate.passed.tolist()]
    columns = zip(
        chunk.row_numbers, cells(chunk.record_ids), numbers(chunk.scores), passed, cells(gate.reasons), strict=True
    )
    return "".join(f"{r}\t{i}\t{s}\t{p}\t{why}\n" for r, i, s, p, why in columns).encode("utf-8")


def send_back_lines(chunk: ChunkQC, labels: dict[str, dict[str, str]]) -> tuple[bytes, bytes]:
    """The chunk's ``send_back.tsv`` lines: (records with hidden-value conflicts, the other records with a failed
    check), each in record order.

    ``conflicting_values`` lists ``variable: value`` with the code's label (``her2_fish: 1 = Positive``);
    ``other_failures`` counts the record's other failed checks, which ``failures.tsv`` details.
    """
    conflicts = dict(chunk.hidden_conflicts())
    failed = chunk.failed_per_record()
    counts = failed.tolist()
    ids = chunk.record_ids
    first, rest = [], []
    for r in np.flatnonzero(failed).tolist():
        values = conflicts.get(r, ())
        text = cell("; ".join(f"{v}: {labelled(labels, v, x)}" for v, x in values)) if values else ""
        line = f"{chunk.row_numbers[r]}\t{cell(ids[r])}\t{len(values)}\t{text}\t{counts[r] - len(values)}\n"
        (first if values else rest).append(line)
    return "".join(first).encode("utf-8"), "".join(rest).encode("utf-8")


class SendBack:
    """``send_back.tsv`` in the making: one line per record with a failed check, hidden-value conflicts first."""

    def __init__(self, path: Path, spool: IO[bytes], labels: dict[str, dict[str, str]]) -> None:
        self.path, self.spool, self.labels = path, spool, labels
        self.first: list[bytes] = []

    def add(self, chunk: ChunkQC) -> None:
        """Keep the chunk's conflict lines; spool the others."""
        first, rest = send_back_lines(chunk, self.labels)
        if first:
            self.first.append(first)
        try:
            self.spool.write(rest)
        except OSError as exc:
            raise no_space(exc, self.path) or exc from None


@contextlib.contextmanager
def send_back_writer(path: Path, labels: dict[str, dict[str, str]]) -> Iterator[SendBack]:
    """A :class:`SendBack` whose file is written (atomically, 0600) when the block completes: header, the records
    with conflicts, then the spooled others."""
    with tempfile.TemporaryFile(dir=path.parent) as spool:
        send_back = SendBack(path, spool, labels)
        yield send_back
        spool.seek(0)
        with private_writer(path) as out:
            out.write(to_bytes(SEND_BACK_COLUMNS, []))
            out.writelines(send_back.first)
            shutil.copyfileobj(spool, out, 1 << 20)


def dump_json(obj: Any) -> bytes:
    """Stable, readable JSON (sorted keys) so an unchanged input gives identical bytes."""
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


class RecordTables:
    """``records.tsv``, ``failures.tsv``, ``gate.tsv`` and ``send_back.tsv`` written chunk by chunk (0600, renamed
    when complete); ``labels`` (variable -> code -> label) label the values in ``send_back.tsv``."""

    def __init__(self, out_dir: Path, types: list[str], labels: dict[str, dict[str, str]] | None = None) -> None:
        self._stack = contextlib.ExitStack()
        self.types = types
        self.labels = labels or {}
        self.records = self._stack.enter_context(private_writer(out_dir / "records.tsv"))
        self.failures = self._stack.enter_context(private_writer(out_dir / "failures.tsv"))
        self.gate = self._stack.enter_context(private_writer(out_dir / "gate.tsv"))
        self.send_back = self._stack.enter_context(send_back_writer(out_dir / "send_back.tsv", labels or {}))
        self.records.write(records_header(types))
        self.failures.write(failures_header())
        self.gate.write(gate_header())

    def add(self, chunk: ChunkQC) -> None:
        """Append one chunk's lines."""
        self.records.write(records_lines(chunk, self.types))
        self.failures.write(failures_lines(chunk, self.labels))
        self.gate.write(gate_lines(chunk))
        self.send_back.add(chunk)

    def __enter__(self) -> RecordTables:
        return self

    def __exit__(self, *exc: object) -> bool | None:
        return self._stack.__exit__(*exc)  # type: ignore[arg-type]


def write_tables(qc: CenterQC, out_dir: Path, summary: dict[str, Any]) -> None:
    """Write scores.tsv and qc.json (``summary``) into ``out_dir`` (the per-record tables: :class:`RecordTables`)."""
    write_private(out_dir / "scores.tsv", scores_tsv(qc))
    write_private(out_dir / "qc.json", dump_json(summary))
