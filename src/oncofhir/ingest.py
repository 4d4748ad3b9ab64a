"""Read one center's REDCap raw-data export against its dictionary.

Accepts what REDCap produces (UTF-8 with or without BOM, CRLF or LF, ``redcap_data_access_group``,
``<form>_complete``, event and repeat columns) and writes a normalised table in dictionary order. Nothing is
silently lost: rows that cannot be used (blank or duplicated record id, repeating instruments, ragged rows) go to
the rejects file with a reason, and ``rows_in = records + rejected`` is asserted before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dictionary.compiled import CompiledDictionary
from .errors import InputDataError
from .io_utils import write_private
from .tsv import to_bytes, unescape

DAG = "redcap_data_access_group"
EVENT = "redcap_event_name"
REPEAT_INSTRUMENT = "redcap_repeat_instrument"
REPEAT_INSTANCE = "redcap_repeat_instance"
REDCAP_SYSTEM_COLUMNS = {DAG, EVENT, REPEAT_INSTRUMENT, REPEAT_INSTANCE, "redcap_survey_identifier"}
REJECT_COLUMNS = ["row", "record_id", "stage", "reason"]


@dataclass(slots=True)
class Reject:
    """A row that could not be used, with the 1-based line number of the export it came from."""

    row: int
    record_id: str
    stage: str
    reason: str


@dataclass(slots=True)
class Records:
    """The usable records of one center: row dicts in dictionary columns, plus provenance."""

    columns: list[str]
    rows: list[dict[str, str]]
    row_numbers: list[int]
    dags: list[str]

    def column_arrays(self) -> dict[str, list[str]]:
        """Column-major view for vectorised logic evaluation."""
        return {c: [r[c] for r in self.rows] for c in self.columns}


@dataclass(slots=True)
class IngestResult:
    """Records, rejects and the findings a data manager needs to see."""

    records: Records
    rejects: list[Reject]
    report: dict[str, Any] = field(default_factory=dict)


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputDataError(
            f"not UTF-8 at byte {exc.start} (line {line}): re-export from REDCap, or convert the file to UTF-8",
            path=str(path),
        ) from None


def ingest_export(path: str | Path, dd: CompiledDictionary, *, require_complete: bool = False) -> IngestResult:
    """Read ``path`` against ``dd``. Raises InputDataError only when the file as a whole is unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputDataError(f"cannot read export: {exc.strerror}", path=str(path)) from None
    text = _decode(data, path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputDataError("the export is empty (no header line)", path=str(path)) from None
    except csv.Error as exc:
        raise InputDataError(f"not a CSV file: {exc}", path=str(path)) from None
    header = [h.strip() for h in header]
    dupes = [h for h, n in Counter(header).items() if n > 1]
    if dupes:
        raise InputDataError(f"duplicate column(s) in header: {', '.join(dupes)}", path=str(path))

    fields = dd.fields
    expected = list(fields)
    complete_cols = dd.complete_columns
    checkbox_cols = {
        f"{name}___{code}": name for name, f in fields.items() if f.type == "checkbox" for code in f.choices
    }
    known = set(expected) | set(complete_cols) | REDCAP_SYSTEM_COLUMNS | set(checkbox_cols)
    known |= {f"{form}_timestamp" for form in dd.forms}
    unknown = [h for h in header if h not in known]
    data_fields = [n for n, f in fields.items() if f.type not in {"descriptive", "checkbox"}]
    missing = [n for n in data_fields if n not in header]
    if dd.record_id not in header:
        raise InputDataError(
            f"record id column '{dd.record_id}' is missing (header starts: {', '.join(header[:5])})", path=str(path)
        )
    missing_required = [n for n in missing if fields[n].minimal is True]
    if missing_required:
        raise InputDataError(
            f"required (minimal) column(s) missing: {', '.join(missing_required)}: "
            "export all fields of the instrument from REDCap",
            path=str(path),
        )
    index = {h: i for i, h in enumerate(header)}
    out_columns = [n for n in expected if fields[n].type != "descriptive"] + complete_cols
    rows: list[dict[str, str]] = []
    row_numbers: list[int] = []
    dags: list[str] = []
    rejects: list[Reject] = []
    extras: list[tuple[int, str, str | None, str | None, str | None]] = []
    rows_in = 0
    line = 1
    ncols = len(header)
    rid_i = index[dd.record_id]
    try:
        for cells in reader:
            line = reader.line_num
            if not cells or (all(not c.strip() for c in cells) and len(cells) <= 1):
                continue  # blank line (e.g. trailing newline variants): not a record
            rows_in += 1
            rid = cells[rid_i].strip() if rid_i < len(cells) else ""
            if len(cells) != ncols:
                rejects.append(Reject(line, rid, "ingest", f"row has {len(cells)} cells, the header has {ncols}"))
                continue
            if not rid:
                rejects.append(Reject(line, "", "ingest", f"blank record id (column '{dd.record_id}')"))
                continue
            rec: dict[str, str] = {}
            for name in out_columns:
                rec[name] = cells[index[name]].strip() if name in index else ""
            for col, name in checkbox_cols.items():
                if col in index and cells[index[col]].strip() == "1":
                    code = col.split("___", 1)[1]
                    rec[name] = f"{rec[name]},{code}" if rec[name] else code
            event = cells[index[EVENT]].strip() if EVENT in index else None
            rpt = cells[index[REPEAT_INSTRUMENT]].strip() if REPEAT_INSTRUMENT in index else None
            inst = cells[index[REPEAT_INSTANCE]].strip() if REPEAT_INSTANCE in index else None
            extras.append((line, rid, event, rpt, inst))
            rows.append(rec)
            row_numbers.append(line)
            dags.append(cells[index[DAG]].strip() if DAG in index else "")
    except csv.Error as exc:
        raise InputDataError(f"line {line}: malformed CSV ({exc})", path=str(path)) from None

    # Repeating instruments and duplicate record ids: reported, never merged or overwritten.
    drop: dict[int, str] = {}
    for k, (_, _, _, rpt, inst) in enumerate(extras):
        if rpt or (inst and inst not in {"", "1"}):
            drop[k] = (
                f"repeating instrument '{rpt or '?'}' instance {inst or '?'}: "
                "this data model has no repeating instruments"
            )
    by_id: dict[str, list[int]] = defaultdict(list)
    for k, (_, rid, *_rest) in enumerate(extras):
        if k not in drop:
            by_id[rid].append(k)
    for rid, ks in by_id.items():
        if len(ks) > 1:
            lines = ", ".join(str(extras[k][0]) for k in ks)
            events = {extras[k][2] for k in ks if extras[k][2]}
            what = f"{len(events)} events ({', '.join(sorted(events))})" if len(events) > 1 else "duplicate rows"
            for k in ks:
                drop[k] = f"record id '{rid}' appears on lines {lines} ({what}): resolve in REDCap, none is used"
    if require_complete and complete_cols:
        for k, rec in enumerate(rows):
            if k not in drop and any(rec.get(c) != "2" for c in complete_cols):
                states = ", ".join(f"{c}={rec.get(c) or 'blank'}" for c in complete_cols)
                drop[k] = f"form not marked Complete ({states}) and ingest.require_complete is on"
    if drop:
        keep = [k for k in range(len(rows)) if k not in drop]
        for k in sorted(drop):
            rejects.append(Reject(row_numbers[k], rows[k][dd.record_id], "ingest", drop[k]))
        rows = [rows[k] for k in keep]
        row_numbers = [row_numbers[k] for k in keep]
        dags = [dags[k] for k in keep]
    rejects.sort(key=lambda r: r.row)
    if rows_in != len(rows) + len(rejects):  # pragma: no cover - a bug, not bad input
        raise AssertionError(f"ingest lost rows: {rows_in} in, {len(rows)} kept, {len(rejects)} rejected")
    report = {
        "export": str(path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "bom": data.startswith(b"\xef\xbb\xbf"),
        "line_endings": "CRLF" if b"\r\n" in data else "LF",
        "use_case": dd.use_case,
        "dictionary_version": dd.version,
        "rows_in": rows_in,
        "records": len(rows),
        "rejected": len(rejects),
        "unknown_columns": unknown,
        "missing_columns": missing,
        "data_access_groups": dict(sorted(Counter(dags).items())),
    }
    return IngestResult(Records(out_columns, rows, row_numbers, dags), rejects, report)


def write_records(records: Records, path: str | Path) -> None:
    """Write the normalised table: ``_row``, ``_dag`` then the dictionary's columns, RFC 4180, UTF-8, 0600."""
    handle = io.StringIO()
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["_row", "_dag", *records.columns])
    for line, dag, rec in zip(records.row_numbers, records.dags, records.rows, strict=True):
        writer.writerow([line, dag, *(rec[c] for c in records.columns)])
    write_private(path, handle.getvalue().encode("utf-8"))


def read_records(path: str | Path) -> Records:
    """Read a table written by :func:`write_records`."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = header[2:]
        rows, numbers, dags = [], [], []
        for cells in reader:
            numbers.append(int(cells[0]))
            dags.append(cells[1])
            rows.append(dict(zip(columns, cells[2:], strict=True)))
    return Records(columns, rows, numbers, dags)


def write_rejects(rejects: list[Reject], path: str | Path) -> None:
    """Write rejects as TSV (row, record_id, stage, reason) with :mod:`oncofhir.tsv` (escaped, formulas neutralised)."""
    write_private(path, to_bytes(REJECT_COLUMNS, [(str(r.row), r.record_id, r.stage, r.reason) for r in rejects]))


def read_rejects(path: str | Path) -> list[Reject]:
    """Read a rejects TSV written by :func:`write_rejects`.

    A neutralised id keeps its apostrophe (``'=1``): written again, it stays as it is (:func:`oncofhir.tsv.cell`).
    """
    out = []
    with open(path, encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            cells = [unescape(c) for c in line.rstrip("\n").split("\t")]
            out.append(Reject(int(cells[0]), cells[1], cells[2], cells[3]))
    return out
