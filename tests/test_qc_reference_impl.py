"""The vectorised checks equal a plain per-record implementation of docs/qc.md, on every real dictionary.

The reference below is deliberately naive (one record, one field at a time, ``evaluate_record`` for the logic)
so that it is easy to read against the documentation; the stage must agree with it check for check.
"""

from __future__ import annotations

import random
import re
from datetime import datetime

import pytest
from helpers import USE_CASES

from oncofhir.demo import generate
from oncofhir.fhir.values import BadValue, parse_number
from oncofhir.ingest import ingest_export
from oncofhir.logic import parse
from oncofhir.qc import run_checks
from oncofhir.qc.model import FAIL, NOT_APPLICABLE, PASS

ODD_VALUES = ["1.0", "abc", "23.5", "1e3", "inf", "12,5", "NA", "-1", "999", "0", "1", "<b>", "2023-02-30", "07"]


def _number(text):
    try:
        return float(parse_number(text))
    except BadValue:
        return None


def reference(dd, rows):
    """{check id: [status per record]} computed record by record."""
    out: dict[str, list[int]] = {}

    def put(name, kind, applicable, passed):
        out.setdefault(f"{name}.{kind}", []).append(NOT_APPLICABLE if not applicable else PASS if passed else FAIL)

    for rec in rows:
        usable = {}  # shown, not blank, of its type and one of its codes: what a mapping rule reads
        for f in dd.fields.values():
            if f.type == "descriptive":
                continue
            v = rec[f.name].strip()
            blank = v == ""
            visible = parse(f.branching).evaluate_record(rec) if f.branching else True
            minimal = False
            if f.minimal is not False:
                minimal = visible and (f.minimal is True or parse(f.minimal).evaluate_record(rec))
                put(f.name, "minimal_req", minimal, not blank)
            if f.mandatory is not False and f.minimal is not True and f.mandatory != f.minimal:
                mandatory = visible and (f.mandatory is True or parse(f.mandatory).evaluate_record(rec))
                put(f.name, "mandatory_req", mandatory and not minimal, not blank)
            present = visible and not blank
            if f.max_length is not None:
                put(f.name, "length", present, len(v) <= f.max_length)
            codes = [c.strip() for c in v.split(",")] if f.type == "checkbox" else [v]
            if f.choices:
                integer_codes = all(re.fullmatch(r"[+-]?\d+", c) for c in f.choices)
                ok = all(re.fullmatch(r"[+-]?\d+", c) for c in codes) if integer_codes else True
            elif f.datatype == "integer":
                ok = re.fullmatch(r"[+-]?\d+", v) is not None
            elif f.datatype == "number":
                ok = _number(v) is not None
            elif f.datatype == "date":
                try:
                    datetime.strptime(v, "%Y-%m-%d")
                    ok = True
                except ValueError:
                    ok = False
            else:
                ok = True
            put(f.name, "datatype", present, ok)
            listed = all(c in f.choices for c in codes) if f.choices else True
            if f.choices:
                put(f.name, "permissible", present, listed)
            usable[f.name] = present and ok and listed
            if (f.min or f.max) and f.datatype in {"integer", "number"}:
                x = _number(v)
                lo, hi = _number(f.min), _number(f.max)
                inside = x is not None and (lo is None or x >= lo) and (hi is None or x <= hi)
                put(f.name, "range", present and x is not None, inside)
            if f.branching:
                put(f.name, "branching", not visible, blank)
        for rule in dd.rules:  # docs/qc.md, "Rules from the mapping" (the dictionaries have condition rules only)
            applies = (not rule.when or parse(rule.when).evaluate_record(rec)) and (
                rule.if_blank == "evaluate" or all(usable[v] for v in rule.variables)
            )
            status = NOT_APPLICABLE if not applies else PASS if parse(rule.assert_).evaluate_record(rec) else FAIL
            out.setdefault(rule.id, []).append(status)
    return out


@pytest.mark.parametrize("use_case", USE_CASES)
def test_vectorised_checks_equal_the_per_record_reference(use_case, compiled, tmp_path):
    dd = compiled[use_case]
    export = tmp_path / "export.csv"
    text = generate(dd, "ref", 120, seed=7)
    export.write_text(text, encoding="utf-8")
    records = ingest_export(export, dd).records
    rng = random.Random(use_case)
    for rec in records.rows:  # more defects than the demo carries, in every kind of field
        for name in rng.sample([n for n in records.columns if n in dd.fields and n != dd.record_id], 4):
            rec[name] = rng.choice(ODD_VALUES)
    result = run_checks(dd, records.column_arrays(), len(records.rows))
    expected = reference(dd, records.rows)
    assert [c.id for c in result.checks] == list(expected)
    for k, c in enumerate(result.checks):
        assert result.status[k].tolist() == expected[c.id], c.id
    assert (result.status == FAIL).any() and (result.status == NOT_APPLICABLE).any()
