"""Split one combined REDCap export (all data access groups) into one center's export.

REDCap projects usually hold every hospital in one project, separated by data access groups (DAGs). Splitting by
``redcap_data_access_group`` gives each center its own file, so each center keeps its own jobs and a change in one
hospital's rows reruns only that hospital. Every split also records the DAGs the whole file holds, so rows of a DAG
that no center claims are reported instead of silently dropped.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from .errors import InputDataError
from .ingest import DAG, _Returned, allow_large_fields, file_facts
from .io_utils import private_writer, write_private, write_text_atomic
from .tsv import to_bytes


def split_export(combined: str | Path, dag: str, out_csv: str | Path, out_report: str | Path) -> dict[str, Any]:
    """Write the header and the rows of ``dag`` from ``combined`` to ``out_csv`` (UTF-8, LF), plus a report.

    Streams: one pass in blocks for the checksum and the UTF-8 check (:func:`oncofhir.ingest.file_facts`, the
    same messages as ingest), then one pass row by row, each selected row written as it is read; memory does not
    grow with the combined export (a consortium's every hospital in one file).
    """
    combined = Path(combined)
    facts = file_facts(combined)
    allow_large_fields()
    try:
        with open(combined, encoding="utf-8-sig", newline="") as handle, private_writer(out_csv) as out:
            counts, selected = _select(handle, dag, out, combined)
    except OSError as exc:
        raise InputDataError(f"cannot read export: {exc.strerror}", path=str(combined)) from None
    report = {
        "combined_export": str(combined),
        "sha256": facts["sha256"],
        "dag": dag,
        "selected_rows": selected,
        "rows_by_dag": dict(sorted(counts.items())),
    }
    write_private(out_report, (json.dumps(report, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return report


def _select(handle: TextIO, dag: str, out: BinaryIO, combined: Path) -> tuple[Counter[str], int]:
    """Copy the header and the rows of ``dag`` to ``out``; count the rows of every group."""
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise InputDataError("the export is empty (no header line)", path=str(combined))
    names = [h.strip() for h in header]
    if DAG not in names:
        raise InputDataError(
            f"column '{DAG}' is missing: export with data access groups, or drop the 'dag' column of this center",
            path=str(combined),
        )
    k = names.index(DAG)
    line = csv.writer(_Returned(), lineterminator="\n").writerow
    out.write(line(header).encode("utf-8"))
    counts: Counter[str] = Counter()
    selected = 0
    try:
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            group = cells[k].strip() if k < len(cells) else ""
            counts[group] += 1
            if group == dag:
                out.write(line(cells).encode("utf-8"))
                selected += 1
    except csv.Error as exc:
        raise InputDataError(f"line {reader.line_num}: malformed CSV ({exc})", path=str(combined)) from None
    return counts, selected


def unclaimed_groups(reports: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(combined export, DAG, rows) for every DAG of a combined export that no center selects."""
    claimed: dict[str, set[str]] = {}
    totals: dict[str, dict[str, int]] = {}
    for rep in reports:
        claimed.setdefault(rep["combined_export"], set()).add(rep["dag"])
        totals[rep["combined_export"]] = rep["rows_by_dag"]
    return [
        (export, dag, n)
        for export, by_dag in sorted(totals.items())
        for dag, n in by_dag.items()
        if dag not in claimed[export]
    ]


def write_unclaimed(report_paths: list[str], out: str | Path) -> int:
    """Write ``combined_export, dag, rows`` for every unclaimed group (header only when all are claimed)."""
    reports = [json.loads(Path(p).read_text(encoding="utf-8")) for p in report_paths]
    rows = unclaimed_groups(reports)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    table = to_bytes(["combined_export", "dag", "rows"], [(e, d or "(blank)", n) for e, d, n in rows])
    write_text_atomic(out, table.decode("utf-8"))  # spreadsheet-safe cells (oncofhir.tsv)
    if rows:
        print(f"WARNING: {len(rows)} data access group(s) claimed by no center: see {out}")
    return len(rows)
