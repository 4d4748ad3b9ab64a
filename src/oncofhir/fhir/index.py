"""The FHIR stage's index (``<center>.index.tsv``): one line per bundle, in NDJSON order.

One reader for every stage that needs it (validate, tables, privacy, encrypt, bundle files), so the format has one
owner. A record id is stored as its spreadsheet-safe cell (:func:`oncofhir.tsv.cell`); readers compare it with
``cell(record id)``, the writer's own function, exact for every id (reading the cell back could not tell ``'=1``
from ``=1``). Lines are split on tabs, never parsed as CSV: a quote in an id is data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import InputDataError

INDEX_HEADER = "record_id\tpatient_key\tfile\tbundle_id\tresources\n"
INDEX_COLUMNS = tuple(INDEX_HEADER.rstrip("\n").split("\t"))


def iter_index(path: str | Path, *columns: str) -> Iterator[tuple[str, ...]]:
    """The named columns of every line of the index at ``path``, as written."""
    picks = [INDEX_COLUMNS.index(c) for c in columns]
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if handle.readline() != INDEX_HEADER:
                raise InputDataError("not a FHIR index written by the FHIR stage", path=str(path))
            for line in handle:
                cells = line.rstrip("\n").split("\t")
                yield tuple(cells[i] for i in picks)
    except OSError as exc:
        raise InputDataError(f"cannot read the FHIR index: {exc.strerror}", path=str(path)) from None
