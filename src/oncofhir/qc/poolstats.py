"""Per center: the summary statistics the use case's pool step needs (``pool_stats.json``), written by the QC job.

Why a summary and not the records: the pool step compares every center of a use case with the others (outliers
against the pooled distribution, duplicates across centers, drift), but the normalised records are temporary
plaintext, deleted once a center is encrypted (``deposit.temp_plaintext``), and a changed center must rerun only
its own QC and the pool step. So the QC job, which reads the records anyway, adds up per variable the counts the
pool needs (codes: count per code; numbers: count per distinct value) and, for the duplicate check, each record's
id and key values (``duplicates: {keys}`` in mapping.yaml). The file is local plaintext (0600, never deposited):
values and record ids, but no other variable of a record.

Only values the checks accept are counted: a code outside the choices or a non-number is a conformance failure
already, and would only add noise to a distribution.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..dictionary.compiled import CompiledDictionary, Field
from ..errors import OncofhirError
from ..io_utils import write_private
from .values import codes_of, number_or_nan

FORMAT = 1
FILE = "pool_stats.json"
CODE, NUMBER = "code", "number"


def pooled_variables(dd: CompiledDictionary) -> dict[str, str]:
    """The variables the pool step compares, with their kind: coded fields (choices, checkboxes included) and
    integer/number fields. Text, dates, calculated fields and the record id are left out."""
    out = {}
    for f in dd.fields.values():
        if f.name == dd.record_id or f.type in {"descriptive", "calc"}:
            continue
        if f.choices:
            out[f.name] = CODE
        elif f.datatype in {"integer", "number"}:
            out[f.name] = NUMBER
    return out


def duplicate_keys(dd: CompiledDictionary) -> tuple[list[str], int]:
    """The use case's duplicate key variables and how many must be filled in (mapping.yaml ``duplicates``)."""
    spec = dd.duplicates or {}
    keys = list(spec.get("keys", []))
    return keys, int(spec.get("min_filled", len(keys)))


class PoolStatsAccumulator:
    """Adds up one center's chunks of columns (as :func:`oncofhir.qc.stage.iter_columns` yields them)."""

    def __init__(self, dd: CompiledDictionary, center: str) -> None:
        self.dd, self.center = dd, center
        self.kinds = pooled_variables(dd)
        self.fields: dict[str, Field] = {name: dd.fields[name] for name in self.kinds}
        self.counts: dict[str, Counter[str]] = {name: Counter() for name in self.kinds}
        self.keys, self.min_filled = duplicate_keys(dd)
        self.records = 0
        self.key_rows: list[list[Any]] = []

    def add(self, row_numbers: list[int], record_ids: list[str], columns: Mapping[str, NDArray[np.object_]]) -> None:
        """Count one chunk in (a column missing from the records counts as blank, as in QC)."""
        self.records += len(row_numbers)
        for name in self.kinds:
            column = columns.get(name)
            if column is not None:
                self.counts[name].update(column.tolist())
        if self.keys:
            blank = [""] * len(row_numbers)
            values = [columns[k].tolist() if k in columns else blank for k in self.keys]
            need, size = self.min_filled, len(self.keys)
            self.key_rows += [
                [rid, row, list(key)]
                for rid, row, key in zip(record_ids, row_numbers, zip(*values, strict=True), strict=True)
                if size - key.count("") >= need
            ]

    def finish(self) -> dict[str, Any]:
        """The center's statistics as written to ``pool_stats.json``."""
        variables: dict[str, Any] = {}
        for name, kind in self.kinds.items():
            f = self.fields[name]
            if kind == CODE:
                codes: Counter[str] = Counter()
                checkbox = f.type == "checkbox"
                for text, n in self.counts[name].items():
                    if text == "":
                        continue
                    for code in codes_of(text, checkbox):
                        if code in f.choices:
                            codes[code] += n
                variables[name] = {"kind": CODE, "counts": {c: codes[c] for c in f.choices if codes[c]}}
            else:
                numbers: Counter[float] = Counter()
                for text, n in self.counts[name].items():
                    x = number_or_nan(text)
                    if not math.isnan(x):
                        numbers[x] += n
                ordered = sorted(numbers)
                variables[name] = {"kind": NUMBER, "values": ordered, "counts": [numbers[x] for x in ordered]}
        return {
            "format": FORMAT,
            "use_case": self.dd.use_case,
            "center": self.center,
            "records": self.records,
            "variables": variables,
            "duplicates": {"keys": self.keys, "min_filled": self.min_filled, "records": self.key_rows},
        }

    def write(self, path: str | Path) -> None:
        """Write the statistics (owner-only: values and record ids are patient data)."""
        write_private(path, (json.dumps(self.finish(), separators=(",", ":")) + "\n").encode("utf-8"))


def read_stats(path: str | Path) -> dict[str, Any]:
    """A ``pool_stats.json``, checked for its format."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OncofhirError(f"cannot read pool statistics: {exc}", path=str(path)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise OncofhirError(
            f"pool statistics of another format (this oncofhir reads {FORMAT}): rerun QC", path=str(path)
        )
    return data
