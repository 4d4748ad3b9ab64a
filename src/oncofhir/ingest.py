"""Read one center's REDCap raw-data export against its dictionary, streaming.

Accepts what REDCap produces (UTF-8 with or without BOM, CRLF or LF, ``redcap_data_access_group``,
``<form>_complete``, event and repeat columns, notes fields of any size) and writes a normalised table in dictionary
order. Nothing is silently lost: rows that cannot be used (blank or duplicated record id, repeating instruments,
ragged rows, a stray quote) go to the rejects file with a reason, and ``rows_in = records + rejected`` is asserted
before anything is written.

Memory stays flat whatever the export's size: the export is read row by row and the normalised rows go, in chunks,
to an anonymous spool file (0600, unlinked from the start, so even a killed job leaves nothing behind). Only what
the decisions about whole-file duplicates need stays in memory: per row its line number, the hash of its record
id and its DAG (about 30 bytes; the ids of rows whose hash repeats are read back from the spool).
A file that is not a raw-data CSV export (labels instead of codes, semicolons, no header) fails the center with
a message that says what to export instead. Errors never quote the export's values: only column names, line
numbers, and the dictionary's own labels.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import tempfile
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from .dictionary.compiled import CompiledDictionary
from .errors import InputDataError
from .io_utils import DIR_MODE, no_space, private_writer, write_private
from .tsv import cell, unescape

DAG = "redcap_data_access_group"
EVENT = "redcap_event_name"
REPEAT_INSTRUMENT = "redcap_repeat_instrument"
REPEAT_INSTANCE = "redcap_repeat_instance"
REDCAP_SYSTEM_COLUMNS = {DAG, EVENT, REPEAT_INSTRUMENT, REPEAT_INSTANCE, "redcap_survey_identifier"}
REJECT_COLUMNS = ["row", "record_id", "stage", "reason"]
RECORDS_PREFIX = ["_row", "_dag"]

#: The csv module refuses fields over 128 KiB by default; a REDCap notes field can hold far more. The largest
#: value a C long takes on every platform: in practice no limit.
FIELD_LIMIT = 2**31 - 1
#: Cells per chunk of normalised rows held in memory (rows per chunk = this / columns): ~10 MB of text.
CHUNK_CELLS = 200_000
#: Values REDCap's label export writes in checkbox columns and ``<form>_complete`` columns, folded -> (raw, label).
CHECKBOX_LABELS = {"checked": ("1", "Checked"), "unchecked": ("0", "Unchecked")}
FORM_STATUS = {"Incomplete": "0", "Unverified": "1", "Complete": "2"}
FORM_STATUS_LABELS = {label.casefold(): (code, label) for label, code in FORM_STATUS.items()}
LABELS_ERROR = "this export holds labels; export raw data (codes) from REDCap"
BLOCK = 1 << 20


def allow_large_fields() -> None:
    """Lift the csv module's field size limit (process-wide) before reading an export or a records table."""
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)


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


def _norm(text: str) -> str:
    """A label as compared with a cell: white space collapsed, case folded."""
    return " ".join(text.split()).casefold()


def file_facts(path: Path) -> dict[str, Any]:
    """sha256, size, BOM and line endings of the export, read in blocks; fails on the first byte that is not UTF-8.

    Checked before any row is parsed, so a file in the wrong encoding fails with the exact byte and line.
    """
    sha = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = newlines = 0
    crlf = bom = False
    last = b""
    try:
        with open(path, "rb") as handle:
            while block := handle.read(BLOCK):
                if size == 0:
                    bom = block.startswith(codecs.BOM_UTF8)
                sha.update(block)
                crlf = crlf or b"\r\n" in block or (last == b"\r" and block[:1] == b"\n")
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    before = newlines + block[: max(exc.start - pending, 0)].count(b"\n")
                    raise _not_utf8(path, size - pending + exc.start, before) from None
                newlines += block.count(b"\n")
                size += len(block)
                last = block[-1:]
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, size - pending + exc.start, newlines) from None
    except OSError as exc:
        raise InputDataError(f"cannot read export: {exc.strerror}", path=str(path)) from None
    return {
        "sha256": sha.hexdigest(),
        "bytes": size,
        "bom": bom,
        "line_endings": "CRLF" if crlf else "LF",
    }


def _not_utf8(path: Path, offset: int, newlines: int) -> InputDataError:
    return InputDataError(
        f"not UTF-8 at byte {offset} (line {newlines + 1}): re-export from REDCap, or convert the file to UTF-8",
        path=str(path),
    )


def _first_line(path: Path) -> str:
    """The export's first physical line (at most 1 MiB), for telling what kind of file it is."""
    with open(path, "rb") as handle:
        head = handle.read(BLOCK)
    lines = head.decode("utf-8-sig", errors="replace").splitlines()
    return lines[0] if lines else ""


class _Columns:
    """Where each output column comes from in the export's header, and what the header says about the file."""

    def __init__(self, header: list[str], dd: CompiledDictionary, path: Path) -> None:
        fields = dd.fields
        self.header = header
        self.record_id = dd.record_id
        self.checkbox_cols = {
            f"{name}___{code}": name for name, f in fields.items() if f.type == "checkbox" for code in f.choices
        }
        known = set(fields) | set(dd.complete_columns) | REDCAP_SYSTEM_COLUMNS | set(self.checkbox_cols)
        known |= {f"{form}_timestamp" for form in dd.forms}
        if dd.record_id not in header:
            raise InputDataError(_no_record_id(header, dd, known, path), path=str(path))
        dupes = [h for h, n in Counter(header).items() if n > 1]
        if dupes:  # which copy holds the data is unknowable: name every position so the export can be fixed
            where = "; ".join(
                f"{h} (columns {', '.join(str(i + 1) for i, c in enumerate(header) if c == h)})" for h in dupes
            )
            raise InputDataError(f"line 1: duplicate column(s) in header: {where}", path=str(path))
        self.unknown = [h for h in header if h not in known]
        data_fields = [n for n, f in fields.items() if f.type not in {"descriptive", "checkbox"}]
        self.missing = [n for n in data_fields if n not in header]
        missing_required = [n for n in self.missing if fields[n].minimal is True]
        if missing_required:
            # Mostly columns this dictionary does not know: not a partial export but another use case's.
            data_cols = [h for h in header if h != dd.record_id and h not in REDCAP_SYSTEM_COLUMNS]
            foreign = [h for h in data_cols if h not in known]
            advice = "export all fields of the instrument from REDCap"
            if len(foreign) * 2 > len(data_cols):
                advice = (
                    f"{len(foreign)} of the header's {len(data_cols)} columns are not in the {dd.use_case} "
                    "dictionary: this is another use case's export, or the centers sheet gives the wrong use case"
                )
            raise InputDataError(
                f"required (minimal) column(s) missing: {', '.join(missing_required)}: {advice}", path=str(path)
            )
        index = {h: i for i, h in enumerate(header)}
        self.index = index
        self.out = [n for n in fields if fields[n].type != "descriptive"] + dd.complete_columns
        position = {name: k for k, name in enumerate(self.out)}
        self.sources = [index.get(name, -1) for name in self.out]
        self.checkboxes = [
            (index[col], position[name], col.split("___", 1)[1])
            for col, name in self.checkbox_cols.items()
            if col in index
        ]
        self.complete = [position[c] for c in dd.complete_columns]
        self.event = index.get(EVENT)
        self.repeat = index.get(REPEAT_INSTRUMENT)
        self.instance = index.get(REPEAT_INSTANCE)
        self.dag = index.get(DAG)
        # Columns that cannot hold a line break (all but notes fields and columns the dictionary does not know).
        self.single_line = [
            i for i, h in enumerate(header) if h in known and getattr(fields.get(h), "type", "") != "notes"
        ]
        # Coded columns, their codes, and their labels (folded -> (code, label as the dictionary spells it)).
        self.coded: list[tuple[int, str, frozenset[str], dict[str, tuple[str, str]]]] = []
        for name, f in fields.items():
            if not f.choices:
                continue
            if f.type == "checkbox":
                for code, label in f.choices.items():
                    col = f"{name}___{code}"
                    if col in index:
                        spelled = {**CHECKBOX_LABELS, _norm(label): ("1", label)}
                        self.coded.append((index[col], col, frozenset({"0", "1"}), spelled))
            elif name in index:
                spelled = {_norm(label): (code, label) for code, label in f.choices.items()}
                self.coded.append((index[name], name, frozenset(f.choices), spelled))
        for col in dd.complete_columns:
            if col in index:
                self.coded.append((index[col], col, frozenset(FORM_STATUS.values()), FORM_STATUS_LABELS))


def _no_record_id(header: list[str], dd: CompiledDictionary, known: set[str], path: Path) -> str:
    """Why the header has no record id column, naming only the dictionary's columns and labels (never a value)."""
    line = _first_line(path)
    for sep, name in ((";", "semicolon"), ("\t", "tab")):
        if sep in line:
            cells = next(csv.reader([line], delimiter=sep))
            names = {c.strip() for c in cells}
            if dd.record_id in names or len(names & known) >= 2:
                return f"{name}-separated; export CSV from REDCap (comma-separated raw data, not a file saved by Excel)"
    labels = {_norm(f.label) for f in dd.fields.values() if f.label.strip()}
    cells = [h for h in header if h.strip()]
    as_labels = [h for h in cells if h not in known and _norm(h) in labels]
    if as_labels and len(as_labels) * 2 >= len(cells):
        return (
            f"{LABELS_ERROR} with variable names as headers (line 1 holds field labels, "
            f"not variable names such as '{dd.record_id}')"
        )
    named = [h for h in header if h in known]
    if not named:
        return (
            f"record id column '{dd.record_id}' is missing and line 1 names no column of the {dd.use_case} "
            "dictionary: the header line is missing, or this is another use case's export"
        )
    more = f" and {len(named) - 3} more" if len(named) > 3 else ""
    return f"record id column '{dd.record_id}' is missing (the header names {', '.join(named[:3])}{more})"


class _ListSpool:
    """Candidate rows kept in memory (:func:`ingest_export`)."""

    def __init__(self, rid_position: int) -> None:
        self.rows: list[tuple[int, str, list[str]]] = []
        self.rid_position = rid_position

    def add(self, chunk: list[tuple[int, str, list[str]]]) -> None:
        self.rows.extend(chunk)

    def record_ids(self, ks: list[int]) -> list[str]:
        """The record ids of candidate rows ``ks``."""
        return [self.rows[k][2][self.rid_position] for k in ks]


class _FileSpool:
    """Candidate rows as normalised CSV lines in an anonymous temp file, with the end offset of each row."""

    def __init__(self, folder: Path, rid_position: int) -> None:
        self.handle: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 - 0600, already unlinked
        self.ends = array("q")
        self.size = 0
        self.writer = csv.writer(_Returned(), lineterminator="\n")
        self.rid_position = rid_position

    def add(self, chunk: list[tuple[int, str, list[str]]]) -> None:
        writerow = self.writer.writerow
        parts = [writerow([line, dag, *values]).encode("utf-8") for line, dag, values in chunk]
        ends = self.ends
        size = self.size
        for part in parts:
            size += len(part)
            ends.append(size)
        self.size = size
        self.handle.write(b"".join(parts))

    def _span(self, k: int) -> tuple[int, int]:
        return (self.ends[k - 1] if k else 0), self.ends[k]

    def record_ids(self, ks: list[int]) -> list[str]:
        """The record ids of candidate rows ``ks``, read back from the spool (a few rows: the duplicates)."""
        self.handle.flush()
        out = []
        for k in ks:
            start, end = self._span(k)
            self.handle.seek(start)
            text = self.handle.read(end - start).decode("utf-8")
            out.append(next(csv.reader(io.StringIO(text, newline="")))[2 + self.rid_position])
        return out

    def copy_to(self, out: IO[bytes], drop: set[int]) -> None:
        """Copy every row not in ``drop`` to ``out``, in order, in large blocks."""
        self.handle.flush()
        start = 0
        for k in sorted(drop):
            begin, end = self._span(k)
            _copy_range(self.handle, out, start, begin - start)
            start = end
        _copy_range(self.handle, out, start, self.size - start)

    def close(self) -> None:
        self.handle.close()


class _Returned:
    """A file-like object whose ``write`` returns its argument: ``csv.writer.writerow`` then returns the line."""

    def write(self, text: str) -> str:
        return text


def _copy_range(src: IO[bytes], out: IO[bytes], start: int, length: int) -> None:
    src.seek(start)
    while length > 0:
        block = src.read(min(length, BLOCK))
        out.write(block)
        length -= len(block)


@dataclass(slots=True)
class _Scan:
    """What one pass over the export found: counts, immediate rejects, and per candidate row what decisions need."""

    rows_in: int = 0
    lines: int = 0
    rejects: list[Reject] = field(default_factory=list)
    lines_of: array = field(default_factory=lambda: array("q"))
    hashes: array = field(default_factory=lambda: array("q"))
    incomplete: dict[int, tuple[str, str]] = field(default_factory=dict)
    dag_codes: array = field(default_factory=lambda: array("l"))
    dag_names: dict[str, int] = field(default_factory=dict)
    event_codes: array = field(default_factory=lambda: array("l"))
    event_names: dict[str, int] = field(default_factory=dict)
    codes: int = 0
    labels: int = 0
    other: int = 0
    label_hits: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    unclosed: tuple[int, Reject] | None = None


class _Ingest:
    """One export against one dictionary: the header, one streaming pass, the decisions, the report."""

    def __init__(self, path: Path, dd: CompiledDictionary, require_complete: bool, chunk_rows: int | None) -> None:
        self.path = path
        self.dd = dd
        self.require_complete = require_complete
        self.facts = file_facts(path)
        allow_large_fields()
        self.handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed in close()
        self.reader = csv.reader(self.handle)
        try:
            header = next(self.reader)
        except StopIteration:
            self.close()
            raise InputDataError("the export is empty (no header line)", path=str(path)) from None
        except csv.Error as exc:
            self.close()
            raise InputDataError(f"not a CSV file: {exc}", path=str(path)) from None
        try:
            self.cols = _Columns([h.strip() for h in header], dd, path)
        except BaseException:
            self.close()
            raise
        self.chunk_rows = chunk_rows or max(1, CHUNK_CELLS // max(len(header), 1))

    def close(self) -> None:
        self.handle.close()

    def scan(self, spool: _ListSpool | _FileSpool) -> _Scan:
        """Read every row once: reject what is wrong on its own, spool the rest, note ids for the duplicates."""
        cols, scan, reader = self.cols, _Scan(), self.reader
        ncols = len(cols.header)
        rid_i = cols.index[cols.record_id]
        sources, checkboxes, complete = cols.sources, cols.checkboxes, cols.complete
        pick = itemgetter(*sources) if len(sources) > 1 else (lambda c: (c[sources[0]],))
        chunk: list[tuple[int, str, list[str]]] = []
        line = reader.line_num  # the header's last line
        tail: tuple[Reject | int, int, int, str] | None = None  # the last row, if a quote may run to the end
        tail_id = ""
        try:
            for cells in reader:
                start, line = line + 1, reader.line_num
                if not cells or (len(cells) <= 1 and all(not c.strip() for c in cells)):
                    continue  # blank line (e.g. trailing newline variants): not a record
                scan.rows_in += 1
                tail = None
                rid = cells[rid_i].strip() if rid_i < len(cells) else ""
                if _breaks(rid):
                    rid = ""  # a stray quote in the record id column swallowed other rows: not an id
                if len(cells) != ncols:
                    quoted = next((k for k, c in enumerate(cells) if "\n" in c or "\r" in c), None)
                    if quoted is not None and line > start:
                        column = _column(cols.header, quoted)
                        why = _quote_reason(
                            start, line, column, f"one row of {len(cells)} cells (the header has {ncols})"
                        )
                        reject = Reject(start, rid, "ingest", why)
                        if _runs_on(cells):
                            tail = (reject, start, line, _column(cols.header, len(cells) - 1))
                    else:
                        reject = Reject(line, rid, "ingest", f"row has {len(cells)} cells, the header has {ncols}")
                    scan.rejects.append(reject)
                    continue
                broken = next((i for i in cols.single_line if _breaks(cells[i])), None) if line > start else None
                if broken is not None:
                    why = _quote_reason(start, line, cols.header[broken], "that field, which cannot hold line breaks")
                    reject = Reject(start, rid, "ingest", why)
                    scan.rejects.append(reject)
                    if _runs_on(cells):
                        tail = (reject, start, line, cols.header[-1])
                    continue
                if not rid:
                    scan.rejects.append(Reject(line, "", "ingest", f"blank record id (column '{cols.record_id}')"))
                    continue
                bad = _control(rid)
                if bad is not None:
                    why = f"record id holds the control character {bad} (column '{cols.record_id}'): fix it in REDCap"
                    scan.rejects.append(Reject(line, rid.encode("unicode_escape").decode("ascii"), "ingest", why))
                    continue
                rpt = cells[cols.repeat].strip() if cols.repeat is not None else None
                inst = cells[cols.instance].strip() if cols.instance is not None else None
                if rpt or (inst and inst not in {"", "1"}):
                    scan.rejects.append(
                        Reject(
                            line,
                            rid,
                            "ingest",
                            f"repeating instrument '{rpt or '?'}' instance {inst or '?'}: "
                            "this data model has no repeating instruments",
                        )
                    )
                    continue
                runs_on = line > start and _runs_on(cells)
                cells.append("")  # what index -1 (a column absent from the export) picks
                values = list(map(str.strip, pick(cells)))
                for col_i, pos, code in checkboxes:
                    if cells[col_i].strip() == "1":
                        values[pos] = f"{values[pos]},{code}" if values[pos] else code
                if self.require_complete and complete and any(values[p] != "2" for p in complete):
                    names = self.dd.complete_columns
                    states = ", ".join(f"{c}={values[p] or 'blank'}" for c, p in zip(names, complete, strict=True))
                    scan.incomplete[len(scan.hashes)] = (rid, states)
                dag = cells[cols.dag].strip() if cols.dag is not None else ""
                scan.lines_of.append(line)
                scan.hashes.append(hash(rid))
                if cols.event is not None:
                    event = cells[cols.event].strip()
                    scan.event_codes.append(scan.event_names.setdefault(event, len(scan.event_names)))
                scan.dag_codes.append(scan.dag_names.setdefault(dag, len(scan.dag_names)))
                chunk.append((line, dag, values, cells))  # type: ignore[arg-type]
                if runs_on:
                    tail = (len(scan.hashes) - 1, start, line, cols.header[-1])
                    tail_id = rid
                if len(chunk) >= self.chunk_rows:
                    self._flush(chunk, spool, scan)
                    chunk = []
        except csv.Error as exc:
            raise InputDataError(f"line {line}: malformed CSV ({exc})", path=str(self.path)) from None
        self._flush(chunk, spool, scan)
        if tail is not None:  # the last row ran to the end of the file inside a quote: it never closed
            ref, first, end, column = tail
            why = _quote_reason(first, end, column, None)
            if isinstance(ref, Reject):
                ref.reason = why
            else:
                scan.unclosed = (ref, Reject(first, tail_id, "ingest", why))
        scan.lines = line
        return scan

    def _flush(self, chunk: list[Any], spool: _ListSpool | _FileSpool, scan: _Scan) -> None:
        """Count codes and labels of a chunk's coded columns (C-level counting), then spool the chunk."""
        if not chunk:
            return
        cells_of = [row[3] for row in chunk]
        for col_i, name, codes, labels in self.cols.coded:
            for value, n in Counter(map(itemgetter(col_i), cells_of)).items():
                value = value.strip()
                if not value:
                    continue
                if value in codes:
                    scan.codes += n
                elif (hit := labels.get(_norm(value))) is not None:
                    scan.labels += n
                    scan.label_hits[(name, *hit)] += n
                else:
                    scan.other += n
        spool.add([(line, dag, values) for line, dag, values, _ in chunk])

    def check_labels(self, scan: _Scan) -> None:
        """Fail the center when most values of its coded columns are choice labels: a labels export."""
        total = scan.codes + scan.labels + scan.other
        if not scan.labels or scan.labels * 2 <= total:
            return
        (name, code, label), _ = scan.label_hits.most_common(1)[0]
        field_ = self.dd.fields.get(name)
        if field_ is not None and field_.choices.get(code) == label:
            example = f"column '{name}' holds '{label}', the label of code {code}"
        else:
            example = f"column '{name}' holds '{label}' (raw data: {code})"
        raise InputDataError(
            f"{LABELS_ERROR} ({scan.labels} of {total} values of coded columns are choice labels; e.g. {example})",
            path=str(self.path),
        )

    def decide(self, scan: _Scan, spool: _ListSpool | _FileSpool) -> dict[int, Reject]:
        """Duplicate record ids (all rows of that id) and, with require_complete, incomplete forms: rejected.

        Rows are compared by the hash of their record id (8 bytes a row; sorting them finds the repeats); the ids
        of the few rows whose hash repeats are read back, so a hash collision is never taken for a duplicate.
        """
        drop: dict[int, Reject] = {}
        ordered = sorted(scan.hashes)
        repeats = {a for a, b in itertools.pairwise(ordered) if a == b}
        del ordered
        candidates = [k for k, h in enumerate(scan.hashes) if h in repeats]
        groups: dict[str, list[int]] = defaultdict(list)
        for k, rid in zip(candidates, spool.record_ids(candidates), strict=True):
            groups[rid].append(k)
        names = list(scan.event_names)
        for rid, ks in groups.items():
            if len(ks) < 2:
                continue
            lines = ", ".join(str(scan.lines_of[k]) for k in ks)
            events = {names[scan.event_codes[k]] for k in ks} - {""} if names else set()
            what = f"{len(events)} events ({', '.join(sorted(events))})" if len(events) > 1 else "duplicate rows"
            reason = f"record id '{rid}' appears on lines {lines} ({what}): resolve in REDCap, none is used"
            for k in ks:
                drop[k] = Reject(scan.lines_of[k], rid, "ingest", reason)
        if scan.unclosed is not None:
            k, reject = scan.unclosed
            drop[k] = reject
        for k, (rid, states) in scan.incomplete.items():
            if k not in drop:
                reason = f"form not marked Complete ({states}) and ingest.require_complete is on"
                drop[k] = Reject(scan.lines_of[k], rid, "ingest", reason)
        return drop

    def report(self, scan: _Scan, drop: dict[int, Reject], rejects: list[Reject]) -> dict[str, Any]:
        names = list(scan.dag_names)
        kept_dags = Counter(scan.dag_codes)
        for k in drop:
            kept_dags[scan.dag_codes[k]] -= 1
        records = len(scan.hashes) - len(drop)
        if scan.rows_in != records + len(rejects):  # pragma: no cover - a bug, not bad input
            raise AssertionError(f"ingest lost rows: {scan.rows_in} in, {records} kept, {len(rejects)} rejected")
        return {
            "export": str(self.path),
            **self.facts,
            "use_case": self.dd.use_case,
            "dictionary_version": self.dd.version,
            "lines": scan.lines,
            "rows_in": scan.rows_in,
            "records": records,
            "rejected": len(rejects),
            "unknown_columns": self.cols.unknown,
            "missing_columns": self.cols.missing,
            "data_access_groups": dict(sorted((names[c], n) for c, n in kept_dags.items() if n)),
        }


def _runs_on(cells: list[str]) -> bool:
    """The row's last field ends with a line break: a quote still open when the file ended (a closed quoted field
    that ends with a line break, as the last field of the file, is the one case this misreads)."""
    return cells[-1].endswith(("\n", "\r"))


def _breaks(cell: str) -> bool:
    return "\n" in cell or "\r" in cell


def _control(rid: str) -> str | None:
    """The first control character of a record id as U+XXXX, or None.

    Why: a record id is written to TSV indexes, logs and report pages and keys the pseudonym; a tab, escape or
    NUL in it would corrupt those files or the terminal, and REDCap never creates one on its own.
    """
    for ch in rid:
        if ord(ch) < 32 or 127 <= ord(ch) < 160:
            return f"U+{ord(ch):04X}"
    return None


def _column(header: list[str], k: int) -> str:
    return header[k] if k < len(header) else f"beyond the last column ({k + 1})"


def _quote_reason(first: int, end: int, column: str, into: str | None) -> str:
    """Where a stray quote starts and what it swallowed (``into`` None: to the end of the file), for the fix."""
    where = f"a quote opens a field in column '{column}' on line {first}"
    n = end - first
    lines = f"line {end}" if n == 1 else f"lines {first + 1}-{end}"
    if into is None:
        return (
            f"{where} and never closes: it swallows the {n} line(s) after it ({lines}, the end of the file); "
            "fix the stray quote and export again"
        )
    return f"{where} and closes only on line {end}: it swallows {n} line(s) ({lines}) into {into}; " + (
        "fix the stray quote and export again"
    )


def _sorted_rejects(scan: _Scan, drop: dict[int, Reject]) -> list[Reject]:
    return sorted([*scan.rejects, *drop.values()], key=lambda r: r.row)


def ingest_export(
    path: str | Path, dd: CompiledDictionary, *, require_complete: bool = False, chunk_rows: int | None = None
) -> IngestResult:
    """Read ``path`` against ``dd`` into memory (library use, tests; the workflow streams with
    :func:`ingest_to_files`). Raises InputDataError only when the file as a whole is unusable."""
    ing = _Ingest(Path(path), dd, require_complete, chunk_rows)
    spool = _ListSpool(ing.cols.out.index(dd.record_id))
    try:
        scan = ing.scan(spool)
    finally:
        ing.close()
    ing.check_labels(scan)
    drop = ing.decide(scan, spool)
    rejects = _sorted_rejects(scan, drop)
    report = ing.report(scan, drop, rejects)
    columns = ing.cols.out
    kept = [row for k, row in enumerate(spool.rows) if k not in drop]
    records = Records(
        columns,
        [dict(zip(columns, values, strict=True)) for _, _, values in kept],
        [line for line, _, _ in kept],
        [dag for _, dag, _ in kept],
    )
    return IngestResult(records, rejects, report)


def ingest_to_files(
    path: str | Path,
    dd: CompiledDictionary,
    records_out: str | Path,
    rejects_out: str | Path,
    *,
    require_complete: bool = False,
    chunk_rows: int | None = None,
) -> dict[str, Any]:
    """Stream ``path`` into the records table and the rejects (what :func:`write_records` and
    :func:`write_rejects` would write for :func:`ingest_export`'s result, byte for byte); returns the report.

    Memory: one chunk of rows plus a line number, record id and DAG code per row. Nothing is written under the
    outputs' names unless the whole export was read.
    """
    records_out = Path(records_out)
    ing = _Ingest(Path(path), dd, require_complete, chunk_rows)
    try:
        records_out.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        spool = _FileSpool(records_out.parent, ing.cols.out.index(dd.record_id))
        try:
            scan = ing.scan(spool)
            ing.check_labels(scan)
            drop = ing.decide(scan, spool)
            rejects = _sorted_rejects(scan, drop)
            report = ing.report(scan, drop, rejects)
            with private_writer(records_out) as out:
                out.write(_header_line(ing.cols.out))
                spool.copy_to(out, set(drop))
        except OSError as exc:  # the spool lives beside the records (same disk): a full disk is named by them
            error = no_space(exc, records_out)
            if error is None:
                raise
            raise error from None
        finally:
            spool.close()
    finally:
        ing.close()
    Path(rejects_out).parent.mkdir(parents=True, exist_ok=True)
    write_rejects(rejects, rejects_out)
    return report


def _header_line(columns: list[str]) -> bytes:
    return csv.writer(_Returned(), lineterminator="\n").writerow([*RECORDS_PREFIX, *columns]).encode("utf-8")


def write_records(records: Records, path: str | Path) -> None:
    """Write the normalised table: ``_row``, ``_dag`` then the dictionary's columns, RFC 4180, UTF-8, 0600."""
    handle = io.StringIO()
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow([*RECORDS_PREFIX, *records.columns])
    for line, dag, rec in zip(records.row_numbers, records.dags, records.rows, strict=True):
        writer.writerow([line, dag, *(rec[c] for c in records.columns)])
    write_private(path, handle.getvalue().encode("utf-8"))


def read_records(path: str | Path) -> Records:
    """Read a table written by :func:`write_records` (or :func:`ingest_to_files`) into memory (library use,
    benchmarks; the FHIR stage reads it in chunks with :func:`iter_records`)."""
    columns: list[str] = []
    rows: list[dict[str, str]] = []
    numbers: list[int] = []
    dags: list[str] = []
    for chunk in iter_records(path):
        columns = chunk.columns
        rows += chunk.rows
        numbers += chunk.row_numbers
        dags += chunk.dags
    if not columns:
        columns = _records_header(path)
    return Records(columns, rows, numbers, dags)


def _records_header(path: str | Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle))[2:]


def iter_records(path: str | Path, chunk_rows: int | None = None) -> Iterator[Records]:
    """The records table in chunks of ``chunk_rows`` rows (default: about :data:`CHUNK_CELLS` cells), in file
    order; nothing is yielded for a table without rows.

    Rows must come in increasing ``_row`` order, as ingest writes them: the FHIR stage merges its rejects and the
    QC gate with the records in one pass on that order, so a table out of order fails with the line.
    """
    allow_large_fields()
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = header[2:]
        size = chunk_rows or max(1, CHUNK_CELLS // max(len(header), 1))
        last = 0
        rows: list[dict[str, str]] = []
        numbers: list[int] = []
        dags: list[str] = []
        for cells in reader:
            number = int(cells[0])
            if number <= last:
                raise InputDataError(
                    f"line {reader.line_num}: row {number} after row {last}: not a records table written by ingest",
                    path=str(path),
                )
            last = number
            numbers.append(number)
            dags.append(cells[1])
            rows.append(dict(zip(columns, cells[2:], strict=True)))
            if len(rows) >= size:
                yield Records(columns, rows, numbers, dags)
                rows, numbers, dags = [], [], []
        if rows:
            yield Records(columns, rows, numbers, dags)


def write_rejects(rejects: Iterable[Reject], path: str | Path) -> None:
    """Write rejects as TSV (row, record_id, stage, reason), streaming, one line per reject.

    Cells go through :func:`oncofhir.tsv.cell` (escaped, formulas neutralised): the same bytes as
    :func:`oncofhir.tsv.to_bytes` writes for the whole list, without holding it.
    """
    with private_writer(path) as out:
        out.write(("\t".join(map(cell, REJECT_COLUMNS)) + "\n").encode("utf-8"))
        for r in rejects:
            out.write(("\t".join(map(cell, (r.row, r.record_id, r.stage, r.reason))) + "\n").encode("utf-8"))


def read_rejects(path: str | Path) -> list[Reject]:
    """Read a rejects TSV written by :func:`write_rejects`."""
    return list(iter_rejects(path))


def iter_rejects(path: str | Path) -> Iterator[Reject]:
    """The rejects of a TSV written by :func:`write_rejects`, one at a time, in file order.

    A neutralised id keeps its apostrophe (``'=1``): written again, it stays as it is (:func:`oncofhir.tsv.cell`).
    """
    with open(path, encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            cells = [unescape(c) for c in line.rstrip("\n").split("\t")]
            yield Reject(int(cells[0]), cells[1], cells[2], cells[3])


def refuse_export(
    path: str | Path, dd: CompiledDictionary, error: InputDataError, records_out: str | Path, rejects_out: str | Path
) -> dict[str, Any]:
    """Account for an export refused as a whole (labels, semicolons, another use case's columns...): no records,
    every data row in the rejects with the refusal as its reason, and a report saying why; returns the report.

    Why: a refused export used to fail its ``ingest`` job, and with it every run-wide output (run report, merged
    manifest, provenance), so one hospital's wrong file left the other 34 centers without a report or deposit. The
    workflow now records the refusal like any reject and goes on (``ingest.on_refused: report``); the run still
    ends with an error naming the refused centers. Rows are counted as CSV records after line 1 (undecodable bytes
    replaced), so rows in = records (0) + rejected still holds; a file that cannot be read at all counts 0 rows.
    """
    path = Path(path)
    reason = f"export refused: {error.args[0]}"
    rejects: list[Reject] = []
    sha, size, lines = hashlib.sha256(), 0, 0
    try:
        with open(path, "rb") as handle:
            while block := handle.read(BLOCK):
                sha.update(block)
                size += len(block)
                lines += block.count(b"\n")
        allow_large_fields()
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            rid_i = header.index(dd.record_id) if dd.record_id in header else None
            line = reader.line_num
            for cells in reader:
                start, line = line + 1, reader.line_num
                if not cells or all(not c.strip() for c in cells):
                    continue
                rid = cells[rid_i].strip() if rid_i is not None and rid_i < len(cells) else ""
                if _breaks(rid) or _control(rid) is not None:
                    rid = rid.encode("unicode_escape").decode("ascii")
                rejects.append(Reject(start, rid, "ingest", reason))
    except OSError:
        rejects = []  # unreadable: nothing can be counted; the report says why
    records_out = Path(records_out)
    records_out.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    columns = [n for n, f in dd.fields.items() if f.type != "descriptive"] + dd.complete_columns
    with private_writer(records_out) as out:
        out.write(_header_line(columns))
    Path(rejects_out).parent.mkdir(parents=True, exist_ok=True)
    write_rejects(rejects, rejects_out)
    return {
        "export": str(path),
        "sha256": sha.hexdigest(),
        "bytes": size,
        "use_case": dd.use_case,
        "dictionary_version": dd.version,
        "lines": lines,
        "rows_in": len(rejects),
        "records": 0,
        "rejected": len(rejects),
        "unknown_columns": [],
        "missing_columns": [],
        "data_access_groups": {},
        "refused": str(error.args[0]) + "".join(f"; {d}" for d in error.details),
    }
