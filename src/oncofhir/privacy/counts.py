"""Per center: the deposited records' quasi-identifier combinations, counted (no record id, no other value).

Why counts: the use-case stage needs every center's records, but the normalised records are temporary plaintext,
deleted once a center is encrypted; a count table per center is small, holds no identifier and lets one changed
center rerun without re-ingesting the others.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

from ..dictionary.compiled import CompiledDictionary
from ..errors import DictionaryError, InputDataError
from ..fhir.index import iter_index
from ..ingest import allow_large_fields
from ..io_utils import write_private
from ..tsv import cell

#: The pseudo-variable naming the record's center (from the centers sheet, not from the export).
CENTER = "center"
#: Column of the class size in a counts table.
COUNT = "records"

Key = tuple[str, ...]


def attributes(dd: CompiledDictionary) -> tuple[list[str], str | None]:
    """The use case's quasi-identifiers and optional sensitive attribute (mapping.yaml ``privacy``)."""
    declared = dd.privacy or {}
    return list(declared.get("quasi_identifiers", [])), declared.get("sensitive")


def deposited_ids(index: str | Path) -> set[str]:
    """Record ids of the center's bundles as the FHIR stage's index holds them (spreadsheet-safe cells,
    :mod:`oncofhir.fhir.index`): the records the deposit holds, matched by ``cell(record id)``."""
    return {record_id for (record_id,) in iter_index(index, "record_id")}


def count_classes(dd: CompiledDictionary, records: str | Path, index: str | Path, center: str) -> Counter[Key]:
    """Counts of (quasi-identifier values..., sensitive value) over the center's deposited records."""
    qis, sensitive = attributes(dd)
    columns = [c for c in [*qis, *([sensitive] if sensitive else [])]]
    keep = deposited_ids(index)
    allow_large_fields()
    counts: Counter[Key] = Counter()
    with open(records, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        where = {name: i for i, name in enumerate(header)}
        id_column = where.get(dd.record_id)
        missing = [c for c in columns if c != CENTER and c not in where]
        if id_column is None or missing:
            raise InputDataError(
                f"records table lacks column(s) {', '.join(([dd.record_id] if id_column is None else []) + missing)}",
                path=str(records),
            )
        picks = [None if c == CENTER else where[c] for c in columns]
        for cells in reader:
            if cell(cells[id_column]) in keep:
                counts[tuple(center if i is None else cells[i] for i in picks)] += 1
    return counts


def write_counts(dd: CompiledDictionary, counts: Counter[Key], path: str | Path) -> None:
    """The counts as a TSV (owner-only: combinations of a single record are still personal data)."""
    qis, sensitive = attributes(dd)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow([*qis, *([sensitive] if sensitive else []), COUNT])
    for key, n in sorted(counts.items()):
        writer.writerow([*key, n])
    write_private(path, buffer.getvalue().encode("utf-8"))


def read_counts(path: str | Path, qis: list[str], sensitive: str | None) -> Counter[Key]:
    """A counts table written by :func:`write_counts`, checked against the declared attributes."""
    expected = [*qis, *([sensitive] if sensitive else []), COUNT]
    counts: Counter[Key] = Counter()
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, [])
        if header != expected:
            raise DictionaryError(
                f"counts columns {header} differ from the declared attributes {expected}: rerun the fhir stage, "
                "which counts them",
                path=str(path),
            )
        for cells in reader:
            counts[tuple(cells[:-1])] += int(cells[-1])
    return counts
