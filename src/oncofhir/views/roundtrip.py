"""Round-trip proof: read every ingested value back from the wide view and compare it with the record.

For each record that became a bundle and each variable the mapping writes, the expected cell is what the mapping
says the value becomes (the answer map's coding, the number in the dictionary's unit, the status code, the end of
the anonymised period), and the wide view's row (joined on the patient pseudonym from the FHIR index) must hold it.

Categories, per variable (every non-blank value falls in exactly one):

* ``recovered``: the view holds what the mapping says;
* ``lost``: the view has nothing (no resource, or NULL);
* ``changed``: the view holds something else;
* ``hidden``: documented exception, the value is not written because branching logic hides the field, or the
  resource it goes to is not written for the record (its ``when`` condition, ``if_blank: omit``, or a hidden
  required element);
* ``invalid``: documented exception, the value is not a permissible answer / number / in range, written as a
  data-absent-reason (checked: the view must show the reason ``error``);
* ``unit_without_value``: documented exception, a coded unit whose number is blank or invalid (FHIR gets the
  quantity's data-absent-reason, with no unit).

And ``spurious`` (not a value in): the view shows a value where the record has none (blank, hidden or not
written), i.e. another resource was read in its place.

A center passes when ``lost + changed + spurious == 0``. Problems list the REDCap row numbers, never values.
Condition.clinicalStatus / verificationStatus have a required binding without an "unknown" code: the builder
leaves them out when blank or invalid, so an invalid value there counts as ``invalid`` with no reason shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..dictionary.compiled import CompiledDictionary
from ..fhir.index import iter_index
from ..fhir.values import BadValue, epoch_period, parse_number
from ..ingest import Records
from ..logic import parse
from ..tsv import cell
from ..tsv import write_tsv as write_table
from .bindings import Binding, component_columns, wide_bindings

CATEGORIES = ("values_in", "recovered", "lost", "changed", "hidden", "invalid", "unit_without_value", "spurious")
_NO_REASON = {"clinicalStatus", "verificationStatus"}  # the builder drops these when absent (required binding)
_TRAILING_ZEROS = re.compile(r"^(-?\d+)\.0+$")
_STATUS_DEFAULT = {"gender": None, "deceased.ofType(boolean)": None, "status": "unknown"}
MAX_ROWS_LISTED = 20


@dataclass(slots=True)
class VariableResult:
    """Counts for one variable at one center, and the rows that were lost or changed."""

    variable: str
    kind: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    problem_rows: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.counts["lost"] + self.counts["changed"] + self.counts["spurious"] == 0


def _lookup(mapping: Mapping[str, Any], value: str) -> tuple[bool, Any]:
    """The builder's answer lookup (tolerates "1.0" for code 1)."""
    if value in mapping:
        return True, mapping[value]
    m = _TRAILING_ZEROS.match(value)
    if m and m.group(1) in mapping:
        return True, mapping[m.group(1)]
    return False, None


def _masks(dd: CompiledDictionary, records: Records) -> tuple[dict[str, list[bool]], dict[str, list[bool]]]:
    """Branching visibility per variable and the ``when`` mask per slot, as the builder computes them."""
    columns = records.column_arrays()
    n = len(records.rows)
    cache: dict[str, list[bool]] = {}

    def ev(text: str) -> list[bool]:
        if text not in cache:
            cache[text] = np.asarray(parse(text).evaluate(columns), dtype=bool).tolist()
        return cache[text]

    shown = {name: ev(f.branching) for name, f in dd.fields.items() if f.branching}
    when = {}
    for res in dd.resources:
        mask = [True] * n
        for text in res["when"]:
            mask = [a and b for a, b in zip(mask, ev(text), strict=True)]
        when[res["id"]] = mask
    return shown, when


def _required(res: dict[str, Any]) -> list[str]:
    """Variables whose hiding stops the builder from writing the resource at all."""
    el = res["elements"]
    keys = {"Observation": ("code", "value"), "Condition": ("code",), "MedicationAdministration": ("medication",)}
    out = []
    for key in keys.get(res["type"], ()):
        src = el.get(key)
        if isinstance(src, dict) and src.get("kind") in {"coded", "quantity"}:
            out.append(src["variable"])
    return out


class _Checker:
    """Expected cells for one binding, from the record's raw value."""

    def __init__(self, dd: CompiledDictionary, binding: Binding, all_bindings: dict[str, Binding]) -> None:
        self.dd = dd
        self.b = binding
        self.field = dd.fields[binding.variable]
        # a coded answer's component columns: the same for every record, so computed once
        self.components = component_columns(binding.source) if isinstance(binding.source.get("map"), dict) else {}
        # a coded unit belongs to a quantity: find its number variable (same slot and element)
        self.number_var = None
        if binding.kind == "unit":
            for other in all_bindings.values():
                if other.kind == "quantity" and other.slot == binding.slot and other.element == binding.element:
                    self.number_var = other.variable

    def _number(self, raw: str, variable: str) -> int | float:
        f = self.dd.fields.get(variable)
        number = parse_number(raw, integer=f is not None and f.validation == "integer")
        if f is not None and ((f.min and number < float(f.min)) or (f.max and number > float(f.max))):
            raise BadValue("out of range")
        return number

    def check(self, raw: str, row: Mapping[str, Any] | None, rec: Mapping[str, str], visible: Any) -> str:
        """The category of one non-blank value."""
        b, v = self.b, self.b.variable
        if b.kind == "quantity":
            try:
                number = self._number(raw, v)
                if b.element.startswith("onset") and number <= 0:
                    raise BadValue("not positive")
            except BadValue:
                return self._invalid(row)
            if row is None or row.get(v) is None:
                return "lost"
            if float(row[v]) != float(number):
                return "changed"
            unit = b.unit["code"] if b.unit else self._coded_unit(rec, visible)
            return "recovered" if row.get(f"{v}_unit") == unit else "changed"
        if b.kind == "period":
            try:
                number = self._number(raw, v)
                end = epoch_period(number, b.source["unit"])["end"]
            except BadValue:
                return self._invalid(row)
            if row is None or row.get(v) is None:
                return "lost"
            return "recovered" if str(row[v]) == end else "changed"
        found, entry = _lookup(b.source["map"], raw)
        if b.kind == "status":
            expected = entry if found and entry is not None else _STATUS_DEFAULT.get(b.element)
            if not found:
                return "invalid"
            got = None if row is None else row.get(v)
            if got is None and expected is not None:
                return "lost"
            return "recovered" if got == expected else "changed"
        if b.kind == "unit":
            if self.number_var is not None and not self._number_ok(rec):
                return "unit_without_value"
            if not found or entry is None or entry.get("coding") is None:
                return "invalid"
            if row is None or row.get(v) is None:
                return "lost"
            return "recovered" if row[v] == entry["coding"]["code"] else "changed"
        # coded
        if not found:
            return self._invalid(row)
        if row is None:
            return "lost"
        if entry is None or (entry.get("coding") is None and not entry.get("components")):
            return "recovered" if row.get(f"{v}_absent") == "unknown" else "lost"
        if entry.get("coding") is not None:
            coding = entry["coding"]
            if row.get(v) is None:
                return "lost"
            same = row.get(v) == coding["code"] and row.get(f"{v}_system") == coding["system"]
            if entry.get("text"):
                same = same and row.get(f"{v}_text") == entry["text"]
            return "recovered" if same else "changed"
        columns = self.components
        wanted = {name: None for name in columns.values()}
        for comp in entry["components"]:
            wanted[columns[(comp["code"]["system"], comp["code"]["code"])]] = comp["value"]["code"]
        got = {name: row.get(f"{v}_{name}") for name in wanted}
        if all(value is None for value in got.values()):
            return "lost"
        return "recovered" if got == wanted else "changed"

    def _invalid(self, row: Mapping[str, Any] | None) -> str:
        """An invalid value must show as data-absent-reason ``error`` (else it was silently dropped)."""
        if row is None:
            return "lost"
        if self.b.element in _NO_REASON and row.get(self.b.variable) is None:
            return "invalid"
        return "invalid" if row.get(f"{self.b.variable}_absent") == "error" else "changed"

    def _number_ok(self, rec: Mapping[str, str]) -> bool:
        raw = rec.get(self.number_var or "", "")
        if not raw:
            return False
        try:
            self._number(raw, self.number_var or "")
        except BadValue:
            return False
        return True

    def _coded_unit(self, rec: Mapping[str, str], visible: Any) -> str | None:
        unit = self.b.source["unit"]
        var = unit["variable"]
        if not visible(var):
            return None
        found, entry = _lookup(unit["map"], rec.get(var, "")) if rec.get(var) else (False, None)
        return entry["coding"]["code"] if found and entry and entry.get("coding") else None


def round_trip(
    dd: CompiledDictionary,
    records: Records,
    index: Mapping[str, str],
    wide_rows: Mapping[str, Mapping[str, Any]],
) -> list[VariableResult]:
    """Compare every record's mapped values with its wide-view row (``index``: record id cell -> patient pseudonym,
    :func:`read_index`)."""
    shown, when = _masks(dd, records)
    chosen = wide_bindings(dd)
    slots = {r["id"]: r for r in dd.resources}
    results = {name: VariableResult(name, b.kind) for name, b in chosen.items()}
    checkers = {name: _Checker(dd, b, chosen) for name, b in chosen.items()}
    rid_col = dd.record_id
    required = {sid: _required(slot) for sid, slot in slots.items()}  # per slot, not per record and variable
    for k, rec in enumerate(records.rows):
        key = index.get(cell(rec.get(rid_col, "")))
        if key is None:  # rejected (QC gate or build): no bundle, nothing to recover
            continue
        row = wide_rows.get(key)

        def visible(var: str, k: int = k) -> bool:
            return shown[var][k] if var in shown else True

        for name, b in chosen.items():
            raw = rec.get(name, "")
            res = results[name]
            slot = slots[b.slot]
            written = when[b.slot][k] and all(visible(v) for v in required[b.slot])
            if slot["if_blank"] == "omit" and slot["primary"] and not rec.get(slot["primary"], ""):
                written = False
            if not raw or not visible(name) or not written:
                if b.kind != "status" and row is not None and row.get(name) is not None:
                    res.counts["spurious"] += 1  # nothing to find, yet the view found something
                    if len(res.problem_rows) < MAX_ROWS_LISTED:
                        res.problem_rows.append(records.row_numbers[k])
                if raw:
                    res.counts["values_in"] += 1
                    res.counts["hidden"] += 1
                continue
            res.counts["values_in"] += 1
            category = checkers[name].check(raw, row, rec, visible)
            res.counts[category] += 1
            if category in {"lost", "changed"} and len(res.problem_rows) < MAX_ROWS_LISTED:
                res.problem_rows.append(records.row_numbers[k])
    return [results[name] for name in dd.fields if name in results]


def read_index(path: str | Path) -> dict[str, str]:
    """record id cell -> patient key from the FHIR stage's index TSV (:mod:`oncofhir.fhir.index`: :func:`round_trip`
    looks records up by ``cell(record id)``)."""
    return dict(iter_index(path, "record_id", "patient_key"))


def summary(
    use_case: str, center: str, results: Sequence[VariableResult], bundles: int, duplicate_rows: int = 0
) -> dict[str, Any]:
    """The per-center JSON: totals, pass/fail, the variables that lost or changed values (with row numbers).

    ``duplicate_rows``: wide-view rows beyond one per patient (a slot's selector matched several resources)."""
    totals = {c: sum(r.counts[c] for r in results) for c in CATEGORIES}
    checked = totals["recovered"] + totals["lost"] + totals["changed"]
    return {
        "use_case": use_case,
        "center": center,
        "bundles": bundles,
        "duplicate_rows": duplicate_rows,
        "passed": all(r.ok for r in results) and duplicate_rows == 0,
        "recovered_percent": round(100.0 * totals["recovered"] / checked, 2) if checked else 100.0,
        "totals": totals,
        "failures": [
            {
                "variable": r.variable,
                "lost": r.counts["lost"],
                "changed": r.counts["changed"],
                "spurious": r.counts["spurious"],
                "rows": r.problem_rows,
            }
            for r in results
            if not r.ok
        ],
        "variables": {r.variable: r.counts for r in results},
    }


def write_tsv(results: Sequence[VariableResult], path: str | Path, center: str) -> None:
    """One row per variable: the counts of every category (no values, no record ids: the usual file mode), through
    the project's spreadsheet-safe writer."""
    header = ("center", "variable", "kind", *CATEGORIES)
    rows = ((center, r.variable, r.kind, *(r.counts[c] for c in CATEGORIES)) for r in results)
    write_table(path, header, rows, private=False)
