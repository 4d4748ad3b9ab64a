"""Acceptance test on the EuCanImage reference material (``../shared/reference/eucanimage-fhir``, skipped where absent).

For each use case the real pipeline (compile, ingest, fhir stages) runs on the published REDCap test export, and:

1. every row is accounted for (rows in = bundles + rejects), with exactly the expected rejects;
2. every bundle validates as FHIR R4B (``fhir.resources``);
3. every bundle equals what docs/dictionary-format.md says it must contain, computed here independently of
   ``oncofhir.fhir.builder``: REDCap branching logic and ``when`` are re-evaluated by a small evaluator below, each
   element fed by a variable carries exactly the compiled coding / number / epoch period / status, or the missing-data
   representation of the "Missing data" table; every answered, shown variable appears; no hidden one does;
4. selected answers carry the coding their *dictionary label* means (a hand-written table, independent of the
   mapping), covering every mis-coding REVIEW.md §8 lists for the original scripts;
5. the codings that differ from the published EuCanImage bundles, per record and variable, are exactly DELIBERATE
   (variables and kinds of difference), each documented in docs/use-cases/<uc>.md; the published files known to be
   stale (REVIEW.md) are exactly the ones listed in STALE.

Tests that need the reference material take the ``reference`` fixture and skip with its reason where it is absent;
the label table (4) and the documentation check need only the repository.
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from helpers import DICTIONARIES, ONTOLOGIES, REFERENCE_USE_CASES, REPO, USE_CASES

from oncofhir.fhir.builder import resource_uuid
from oncofhir.pipeline import DEFAULT_IDENTIFIER_SYSTEM, stage_compile, stage_fhir, stage_ingest

CENTER = "test"
DAR_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
DAR_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DAR_DISPLAY = {"unknown": "Unknown", "error": "Error", "not-applicable": "Not Applicable"}
SYSTEMS = {
    "sct": "http://snomed.info/sct",
    "ln": "http://loinc.org",
    "ncit": "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl",
    "icdo3": "http://terminology.hl7.org/CodeSystem/icd-o-3",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "ucum": "http://unitsofmeasure.org",
}
DOCS = REPO / "docs" / "use-cases"


# ------------------------------------------------------------------------------------------------------------------
# 1. The pipeline on the published test exports
# ------------------------------------------------------------------------------------------------------------------

#: Rows the pipeline must reject, per use case: {record id: reason}. REVIEW.md §8 item 21 says the UC1
#: export has a duplicated record id ("15 rows gave 14 files"), but the export in the reference folder does not:
#: its 15 rows have 15 distinct ids (UC1_1..UC1_15) and the published output has 15 files. So nothing is rejected
#: here; test_duplicate_record_id_rejects_every_copy checks the duplicate rule on a derived export instead.
EXPECTED_REJECTS: dict[str, dict[str, str]] = {uc: {} for uc in USE_CASES}


@dataclass(repr=False)
class Run:
    """One use case's pipeline run on the published test export."""

    use_case: str
    rows: list[dict[str, str]]  # the export as read here (csv module), independent of the ingest stage
    bundles: dict[str, dict[str, Any]]  # record id -> bundle, read back from the written files
    rejects: list[dict[str, str]]
    ingest: dict[str, Any]
    summary: dict[str, Any]
    compiled_json: Path

    def __repr__(self) -> str:  # keep failure reports short
        return f"Run({self.use_case}: {len(self.rows)} rows, {len(self.bundles)} bundles, {len(self.rejects)} rejects)"


def export_path(reference: Path, use_case: str) -> Path:
    return reference / "eucanimage-fhir" / use_case / "export_test.csv"


def read_export(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh)]


def run_pipeline(export: Path, out: Path, use_case: str, compiled_json: Path | None = None) -> Run:
    """The compile (unless a compiled dictionary is given), ingest and fhir stages, as the workflow runs them."""
    if compiled_json is None:
        compiled_json = out / "dictionaries" / f"{use_case}.json"
        stage_compile(DICTIONARIES / use_case, ONTOLOGIES, compiled_json)
    ingest = out / "ingest" / use_case / CENTER
    report = stage_ingest(compiled_json, export, ingest / "records.csv", ingest / "rejects.tsv", ingest / "report.json")
    fhir = out / "fhir" / use_case
    summary = stage_fhir(
        compiled_json,
        ingest / "records.csv",
        ingest / "rejects.tsv",
        ingest / "report.json",
        fhir / CENTER,
        fhir / f"{CENTER}.ndjson",
        fhir / f"{CENTER}.index.tsv",
        out / "rejects" / use_case / f"{CENTER}.tsv",
        fhir / f"{CENTER}.summary.json",
    )
    bundles = {}
    for path in sorted((fhir / CENTER).glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        record_id = bundle["entry"][0]["resource"]["identifier"][0]["value"]
        assert path.stem == record_id
        bundles[record_id] = bundle
    with (out / "rejects" / use_case / f"{CENTER}.tsv").open(newline="", encoding="utf-8") as fh:
        rejects = list(csv.DictReader(fh, delimiter="\t"))
    return Run(use_case, read_export(export), bundles, rejects, report, summary, compiled_json)


class _Runs(dict):
    def __init__(self, reference: Path, factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.reference, self.factory = reference, factory

    def __missing__(self, use_case: str) -> Run:
        out = self.factory.mktemp(f"reference-{use_case}")
        self[use_case] = run_pipeline(export_path(self.reference, use_case), out, use_case)
        return self[use_case]


@pytest.fixture(scope="module")
def runs(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> _Runs:
    """{use case: Run}, each use case run once per module, on first use."""
    return _Runs(reference, tmp_path_factory)


@pytest.mark.parametrize("use_case", REFERENCE_USE_CASES)
def test_rows_reconcile_and_exact_rejects(use_case: str, runs: _Runs, compiled) -> None:
    run = runs[use_case]
    rows_in = len(run.rows)
    assert rows_in == run.ingest["rows_in"] == run.summary["rows_in"]
    assert run.summary["bundles"] + run.summary["rejected"] == rows_in
    assert {r["record_id"]: r["reason"] for r in run.rejects} == EXPECTED_REJECTS[use_case]
    ids = [row["record_id"] for row in run.rows]
    assert len(ids) == len(set(ids)), "the published export has a duplicated record id"
    assert set(run.bundles) == set(ids) - set(EXPECTED_REJECTS[use_case])
    assert run.summary["bundles"] == len(run.bundles)
    assert run.ingest["data_access_groups"] == {CENTER: rows_in}
    assert run.ingest["unknown_columns"] == [] and run.ingest["missing_columns"] == []
    assert run.compiled_json.read_text("utf-8") == compiled[use_case].to_json()  # the stage compiles the same


def test_duplicate_record_id_rejects_every_copy(reference: Path, runs: _Runs, tmp_path: Path) -> None:
    """REVIEW.md §8 item 21 (a duplicated record id overwrote a bundle): here both rows are rejected, none used."""
    lines = export_path(reference, "uc1").read_text(encoding="utf-8").splitlines()
    first = lines[7]  # UC1_7, line 8
    assert first.startswith("UC1_7,")
    other = first.replace(",32,", ",33,")  # same id, different data: neither may silently win
    derived = tmp_path / "export.csv"
    derived.write_text("\n".join([*lines, other]) + "\n", encoding="utf-8")
    run = run_pipeline(derived, tmp_path / "out", "uc1", runs["uc1"].compiled_json)
    assert run.summary["rows_in"] == 16
    assert run.summary["bundles"] == 14
    assert [(r["row"], r["record_id"], r["stage"], r["reason"]) for r in run.rejects] == [
        (
            row,
            "UC1_7",
            "ingest",
            "record id 'UC1_7' appears on lines 8, 17 (duplicate rows): resolve in REDCap, none is used",
        )
        for row in ("8", "17")
    ]
    assert "UC1_7" not in run.bundles


# ------------------------------------------------------------------------------------------------------------------
# 2. FHIR R4B validity
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_case", REFERENCE_USE_CASES)
def test_every_bundle_validates_as_r4b(use_case: str, runs: _Runs) -> None:
    from fhir.resources.R4B.bundle import Bundle

    bundles = runs[use_case].bundles
    assert bundles
    for record_id, bundle in bundles.items():
        model = Bundle.model_validate(bundle)
        assert model.id == bundle["id"], record_id
        assert len(model.entry) == len(bundle["entry"])


# ------------------------------------------------------------------------------------------------------------------
# 3. Every answered variable appears, as docs/dictionary-format.md says (independent re-implementation)
# ------------------------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_ATOM = re.compile(r"""^\[(\w+)\]\s*(=|<>|!=|<=|>=|<|>)\s*(?:'([^']*)'|"([^"]*)"|(-?\d+(?:\.\d+)?))$""")


def _as_number(text: str) -> float | None:
    return float(text) if _NUMBER.match(text) else None


def logic(expression: str, row: Mapping[str, str]) -> bool:
    """REDCap logic as it occurs in these dictionaries: comparisons joined by AND / OR (no parentheses).

    ``=``/``<>`` compare numerically when both sides are numbers, else as strings; ``< <= > >=`` are false on a blank.
    """
    if not expression.strip():
        return True
    assert "(" not in expression, f"the test's evaluator does not handle parentheses: {expression}"
    return any(
        all(_atom(part.strip(), row) for part in re.split(r"\s+AND\s+", disjunct, flags=re.IGNORECASE))
        for disjunct in re.split(r"\s+OR\s+", expression, flags=re.IGNORECASE)
    )


def _atom(text: str, row: Mapping[str, str]) -> bool:
    m = _ATOM.match(text)
    assert m, f"unexpected logic atom: {text}"
    name, op, q1, q2, num = m.groups()
    left = row.get(name, "")
    right = next(x for x in (q1, q2, num) if x is not None)
    ln, rn = _as_number(left) if left else None, _as_number(right) if right else None
    if op in {"=", "<>", "!="}:
        equal = ln == rn if ln is not None and rn is not None else left == right
        return equal if op == "=" else not equal
    if not left or not right:
        return False
    a, b = (ln, rn) if ln is not None and rn is not None else (left, right)
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


class Absent(Exception):
    """The element is not applicable: its variable is hidden by branching logic."""


@dataclass
class Record:
    """One export row seen through its dictionary: values, visibility, and which variables were used."""

    values: Mapping[str, str]
    fields: Mapping[str, Any]
    used: set[str]

    def shown(self, variable: str) -> bool:
        return logic(self.fields[variable].branching, self.values)

    def raw(self, variable: str) -> str:
        if not self.shown(variable):
            raise Absent(variable)
        return self.values.get(variable, "")


def dar_ext(reason: str) -> dict[str, Any]:
    return {"extension": [{"url": DAR_URL, "valueCode": reason}]}


def dar_cc(reason: str) -> dict[str, Any]:
    return {"coding": [{"system": DAR_SYSTEM, "code": reason, "display": DAR_DISPLAY[reason]}]}


class Bad(Exception):
    """A present value that is not a permissible code, not a number, or out of range."""


def number(rec: Record, variable: str, *, positive: bool = False) -> int | float | None:
    """The numeric value (int when integral), None when blank; Bad when not a number or outside min..max."""
    text = rec.raw(variable)
    if not text:
        return None
    rec.used.add(variable)
    value = _as_number(text)
    if value is None:
        raise Bad(f"'{text}' is not a number")
    field = rec.fields[variable]
    if field.validation == "integer" and not value.is_integer():
        raise Bad(f"'{text}' is not an integer")
    if (
        (field.min and value < float(field.min))
        or (field.max and value > float(field.max))
        or (positive and value <= 0)
    ):
        raise Bad(f"{text} is out of range")
    return int(value) if value.is_integer() else value


def epoch_period(amount: int | float, unit: str) -> dict[str, str]:
    """The anonymised period of docs/dictionary-format.md: 1970-01-01 plus the duration, date precision."""
    start = date(1970, 1, 1)
    if amount < 0:
        raise Bad("negative duration")
    whole = float(amount).is_integer()
    if unit == "d":
        end = start + timedelta(days=round(amount))
    elif unit == "wk":
        end = start + timedelta(days=round(amount * 7))
    elif unit == "mo" and whole:
        end = date(1970 + int(amount) // 12, int(amount) % 12 + 1, 1)
    elif unit == "mo":
        end = start + timedelta(days=round(amount * 30.436875))
    elif unit == "a" and whole:
        end = date(1970 + int(amount), 1, 1)
    else:
        assert unit == "a", unit
        end = start + timedelta(days=round(amount * 365.2425))
    return {"start": start.isoformat(), "end": end.isoformat()}


def cc(entry: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [entry["coding"]]}
    if entry.get("text"):
        out["text"] = entry["text"]
    return out


def concept(rec: Record, src: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """A CodeableConcept element (not Observation.value): blank -> DAR extension unknown, not permissible -> error."""
    if src["kind"] == "fixed":
        return {"coding": [src["coding"]]}
    assert src["kind"] == "coded", src
    value = rec.raw(src["variable"])
    if not value:
        return dar_ext("unknown")
    rec.used.add(src["variable"])
    if value not in src["map"]:
        return dar_ext("error")
    entry = src["map"][value]
    if entry is None or entry.get("coding") is None:
        return dar_ext("unknown")
    if entry.get("note"):
        notes.append(entry["note"])
    return cc(entry)


def quantity(rec: Record, src: Mapping[str, Any], *, positive: bool = False) -> dict[str, Any]:
    """A Quantity/Age: the number in the fixed or chosen UCUM unit; blank -> unknown, bad -> error (extension)."""
    try:
        value = number(rec, src["variable"], positive=positive)
    except Bad:
        return dar_ext("error")
    if value is None:
        return dar_ext("unknown")
    return {"value": value, **unit_of(rec, src["unit"])}


def unit_of(rec: Record, unit: Mapping[str, Any]) -> dict[str, Any]:
    if unit["kind"] == "fixed":
        coding = unit["coding"]
    else:  # a unit chosen by another variable: blank -> the unit is marked missing, the number is kept
        variable = unit["variable"]
        text = rec.values.get(variable, "") if rec.shown(variable) else ""
        system = {"system": "http://unitsofmeasure.org"}  # qty-3: an absent code still names its system
        if not text:
            return {**system, "_code": dar_ext("unknown")}
        rec.used.add(variable)
        entry = unit["map"].get(text)
        if entry is None:
            return {**system, "_code": dar_ext("error")}
        coding = entry["coding"]
    return {"unit": coding["display"], "system": coding["system"], "code": coding["code"]}


def period(rec: Record, src: Mapping[str, Any]) -> dict[str, Any]:
    try:
        value = number(rec, src["variable"])
        return dar_ext("unknown") if value is None else epoch_period(value, src["unit"])
    except Bad:
        return dar_ext("error")


def status(rec: Record, src: Mapping[str, Any], default: Any) -> Any:
    """A FHIR code (or boolean) from a status map; hidden, blank or not permissible -> ``default``."""
    if src["kind"] == "fixed":
        return src["code"]
    if not rec.shown(src["variable"]):
        return default
    value = rec.values.get(src["variable"], "")
    if not value:
        return default
    rec.used.add(src["variable"])
    entry = src["map"].get(value)
    return default if entry is None else entry


def observation_value(rec: Record, src: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """Observation.value[x] (or a component's): valueCodeableConcept / valueQuantity / dataAbsentReason."""
    if src["kind"] == "fixed":
        return {"valueCodeableConcept": {"coding": [src["coding"]]}}
    variable = src["variable"]
    if src["kind"] == "quantity":
        try:
            value = number(rec, variable)
        except Bad:
            return {"dataAbsentReason": ERROR}
        if value is None:
            return {"dataAbsentReason": dar_cc("unknown")}
        return {"valueQuantity": {"value": value, **unit_of(rec, src["unit"])}}
    value = rec.raw(variable)
    if not value:
        return {"dataAbsentReason": dar_cc("unknown")}
    rec.used.add(variable)
    if value not in src["map"]:
        return {"dataAbsentReason": ERROR}
    entry = src["map"][value]
    if entry is None:
        return {"dataAbsentReason": dar_cc("unknown")}
    out: dict[str, Any] = {}
    if entry.get("coding") is not None:
        out["valueCodeableConcept"] = cc(entry)
    if entry.get("components"):
        out["component"] = [
            {"code": {"coding": [c["code"]]}, "valueCodeableConcept": {"coding": [c["value"]]}}
            for c in entry["components"]
        ]
    if entry.get("note"):
        notes.append(entry["note"])
    return out


#: Stands for "a dataAbsentReason with reason error" (its text names the raw value; checked separately).
ERROR = {"coding": [{"system": DAR_SYSTEM, "code": "error", "display": "Error"}], "text": "<the raw value>"}


def put(target: dict[str, Any], key: str, make: Any, wrap: bool = False) -> None:
    try:
        value = make()
    except Absent:
        return
    target[key] = [value] if wrap else value


def expected_resource(res: Mapping[str, Any], rec: Record, record_id: str, uc: str) -> dict[str, Any]:
    """The resource docs/dictionary-format.md prescribes for this plan and record (raises Absent if not applicable)."""
    rtype, el = res["type"], res["elements"]
    subject = {"reference": "urn:uuid:" + resource_uuid(uc, record_id, "patient")}
    out: dict[str, Any] = {"resourceType": rtype, "id": resource_uuid(uc, record_id, res["id"])}
    notes: list[str] = [res["note"]] if res.get("note") else []
    if rtype == "Patient":
        out["identifier"] = [{"system": DEFAULT_IDENTIFIER_SYSTEM, "value": record_id}]
        if "gender" in el and (g := status(rec, el["gender"], None)) is not None:
            out["gender"] = g
        if "deceased" in el and isinstance(d := status(rec, el["deceased"], None), bool):
            out["deceasedBoolean"] = d
        return out
    if rtype == "Observation":
        out["status"] = "final"
        if "category" in el:
            out["category"] = [{"coding": [el["category"]["coding"]]}]
        out["code"] = concept(rec, el["code"], notes)
        out["subject"] = subject
        put(out, "effectivePeriod", lambda: period(rec, el["effective"]) if "effective" in el else _absent())
        if "value" in el:
            out.update(observation_value(rec, el["value"], notes))
        for key in ("interpretation", "bodySite", "method"):
            if key in el:
                put(out, key, lambda k=key: concept(rec, el[k], notes), wrap=key == "interpretation")
        components = list(out.pop("component", []))
        for comp in el.get("components", []):
            try:
                components.append({"code": {"coding": [comp["code"]]}, **observation_value(rec, comp["value"], notes)})
            except Absent:
                continue
        if components:
            out["component"] = components
    elif rtype == "Condition":
        for key in ("clinicalStatus", "verificationStatus"):
            if key in el:
                put(out, key, lambda k=key: concept(rec, el[k], notes))
                if key in out and "coding" not in out[key]:  # required binding without "unknown": omitted
                    del out[key]
        if "category" in el:
            out["category"] = [{"coding": [el["category"]["coding"]]}]
        out["code"] = concept(rec, el["code"], notes)
        if "bodySite" in el:
            put(out, "bodySite", lambda: concept(rec, el["bodySite"], notes), wrap=True)
        out["subject"] = subject
        if "onsetAge" in el:  # Age: FHIR age-1 requires a positive value
            put(out, "onsetAge", lambda: quantity(rec, el["onsetAge"], positive=True))
        evidence = []
        for src in el.get("evidence", []):
            try:
                evidence.append({"code": [concept(rec, src, notes)]})
            except Absent:
                continue
        if evidence:
            out["evidence"] = evidence
    elif rtype == "Procedure":
        out["status"] = status(rec, el["status"], "unknown")  # required by FHIR: missing -> unknown
        out["code"] = concept(rec, el["code"], notes)
        out["subject"] = subject
        if "performed" in el:
            put(out, "performedPeriod", lambda: period(rec, el["performed"]))
        if "bodySite" in el:
            put(out, "bodySite", lambda: concept(rec, el["bodySite"], notes), wrap=True)
    elif rtype == "MedicationAdministration":
        out["status"] = status(rec, el["status"], "unknown")
        out["medicationCodeableConcept"] = concept(rec, el["medication"], notes)
        out["subject"] = subject
        try:  # effective[x] is required by FHIR: a hidden duration is explicitly not applicable
            out["effectivePeriod"] = period(rec, el["effective"]) if "effective" in el else dar_ext("unknown")
        except Absent:
            out["effectivePeriod"] = dar_ext("not-applicable")
        dosage: dict[str, Any] = {}
        spec = el.get("dosage", {})
        if "dose" in spec:
            put(dosage, "dose", lambda: quantity(rec, spec["dose"]))
        if "rate" in spec:
            ratio: dict[str, Any] = {}
            put(ratio, "numerator", lambda: quantity(rec, spec["rate"]["numerator"]))
            put(ratio, "denominator", lambda: quantity(rec, spec["rate"]["denominator"]))
            if len(ratio) == 1:  # FHIR rat-1: both parts or none; the hidden part is not applicable
                ratio.setdefault("numerator", dar_ext("not-applicable"))
                ratio.setdefault("denominator", dar_ext("not-applicable"))
            if ratio:
                dosage["rateRatio"] = ratio
        if dosage:
            out["dosage"] = dosage
    else:  # pragma: no cover - DiagnosticReport is handled by expected_bundle
        raise AssertionError(rtype)
    if notes:
        out["note"] = [{"text": t} for t in dict.fromkeys(notes)]
    return out


def _absent() -> Any:
    raise Absent("no such element")


def expected_bundle(dd: Any, row: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """{slot id: resource} that this record must produce, and the variables whose values they carry."""
    rec = Record(row, dd.fields, set())
    record_id, uc = row[dd.record_id], dd.use_case
    out: dict[str, dict[str, Any]] = {}
    for res in dd.resources:
        if not all(logic(w, row) for w in res["when"]):
            continue
        primary = res["primary"]
        if primary and not rec.shown(primary):
            continue  # the primary variable is not applicable, so is the resource
        if primary and res["if_blank"] == "omit" and not row.get(primary, ""):
            continue
        if res["type"] == "DiagnosticReport":
            refs = [s for s in res["elements"]["result"] if s in out]
            if refs:
                el = res["elements"]
                report = {
                    "resourceType": "DiagnosticReport",
                    "id": resource_uuid(uc, record_id, res["id"]),
                    "status": (el.get("status") or {"code": "final"})["code"],
                    "code": {"coding": [el["code"]["coding"]]},
                    "subject": {"reference": "urn:uuid:" + resource_uuid(uc, record_id, "patient")},
                    "result": [{"reference": "urn:uuid:" + out[s]["id"]} for s in refs],
                }
                if "category" in el:
                    report["category"] = [{"coding": [el["category"]["coding"]]}]
                if res.get("note"):
                    report["conclusion"] = res["note"]
                out[res["id"]] = report
            continue
        try:
            out[res["id"]] = expected_resource(res, rec, record_id, uc)
        except Absent:
            continue
    return out, rec.used


def sources(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every element source (a dict with ``kind`` and ``variable``) in a compiled resource plan."""
    if isinstance(node, Mapping):
        if "kind" in node and "variable" in node:
            yield node
            if isinstance(node.get("unit"), Mapping):
                yield from sources(node["unit"])
            return
        for value in node.values():
            yield from sources(value)
    elif isinstance(node, list):
        for item in node:
            yield from sources(item)


def data_variables(dd: Any) -> list[str]:
    return [n for n, f in dd.fields.items() if n != dd.record_id and f.type not in {"descriptive", "calc"}]


def _with_error_text(actual: dict[str, Any], expected: dict[str, Any], raw_values: set[str]) -> dict[str, Any]:
    """Replace ERROR placeholders by the actual error text after checking that it names the raw value."""
    for holder in [expected, *expected.get("component", [])]:
        if holder.get("dataAbsentReason") is ERROR:
            found = actual.get("dataAbsentReason", {}) if holder is expected else None
            if found is None:  # a component: match by its code
                match = [c for c in actual.get("component", []) if c["code"] == holder["code"]]
                found = match[0].get("dataAbsentReason", {}) if match else {}
            text = found.get("text", "")
            assert any(v and v in text for v in raw_values), f"error text {text!r} names no raw value"
            holder["dataAbsentReason"] = {**ERROR, "text": text}
    return expected


@pytest.mark.parametrize("use_case", REFERENCE_USE_CASES)
def test_every_answered_variable_is_represented(use_case: str, runs: _Runs, compiled) -> None:
    dd = compiled[use_case]
    run = runs[use_case]
    fed = {s["variable"] for res in dd.resources for s in sources(res["elements"])}
    variables = data_variables(dd)
    assert set(variables) <= fed, f"dictionary variables no resource carries: {set(variables) - fed}"
    checked = 0
    for row in run.rows:
        record_id = row[dd.record_id]
        bundle = run.bundles[record_id]
        expected, used = expected_bundle(dd, row)
        actual = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
        assert all(e["fullUrl"] == "urn:uuid:" + e["resource"]["id"] for e in bundle["entry"])
        assert len(actual) == len(bundle["entry"])
        slot_of = {resource_uuid(use_case, record_id, r["id"]): r["id"] for r in dd.resources}
        assert {slot_of.get(i, i) for i in actual} == set(expected), record_id
        for slot, want in expected.items():
            got = actual[want["id"]]
            want = _with_error_text(got, want, {v for v in row.values() if v})
            assert got == want, (record_id, slot)
            assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True), (record_id, slot)  # 78 vs 78.0
            checked += 1
        answered = {v for v in variables if row.get(v, "") and Record(row, dd.fields, set()).shown(v)}
        assert answered <= used, (record_id, "answered variables not in the bundle", sorted(answered - used))
        hidden = {v for v in variables if row.get(v, "") and not Record(row, dd.fields, set()).shown(v)}
        assert not hidden & used, (record_id, "hidden variables in the bundle", sorted(hidden & used))
        assert bundle["id"] == resource_uuid(use_case, record_id)
        assert bundle["type"] == "collection"
        assert bundle["meta"] == {"source": f"urn:oncofhir:dictionary:{use_case}:{dd.version}"}
    assert checked > 0


# ------------------------------------------------------------------------------------------------------------------
# 4. The coding each dictionary label means (independent of mapping.yaml)
# ------------------------------------------------------------------------------------------------------------------

#: (use case, variable, choice label or None for the question, concept the label means, evidence).
MEANING: list[Any] = [
    ("uc1", "psc", None, "sct:197441003", "Primary sclerosing cholangitis (bug 1: NAFLD's code)"),
    ("uc1", "nafld", None, "sct:1231824009", "Non-alcoholic fatty liver disease"),
    ("uc3", "thad", None, "sct:365853002:363698007=10200004", "imaging finding, liver (bug 10: comorbidity's code)"),
    ("uc3", "comorb_present", None, "sct:398192003", "Co-morbid conditions"),
    ("uc3", "fnh", None, "sct:278527001", "Focal nodular hyperplasia of liver (bug 12: never emitted)"),
    ("uc3", "histopat", "colorectal liver metastases (CRLM)", "sct:94381002:260716003=93761005", "CRLM"),
    ("uc3", "histopat", "no lesions", "sct:260415000", "Not detected"),
    ("uc45", "emvi", "present", "ln:LA9633-4", "Present (bug 2: inverted)"),
    ("uc45", "emvi", "not-identified", "ln:LA11902-6", "Not identified (bug 2: inverted)"),
    ("uc45", "grade", "Grade 1", "sct:1228848004", "AJCC G1 (bug 3: shifted)"),
    ("uc45", "grade", "Grade 2", "sct:1228850007", "AJCC G2"),
    ("uc45", "grade", "Grade 3", "sct:1228851006", "AJCC G3"),
    ("uc45", "grade", "Grade X", "sct:1228845001", "AJCC GX"),
    ("uc45", "trg", "Grade 0", "ncit:C155941", "Tumor Regression Score 0 (bug 4: shifted)"),
    ("uc45", "trg", "Grade 3", "ncit:C155944", "Tumor Regression Score 3"),
    ("uc45", "trg", "Gx", "sct:1155705000", "cannot be assessed"),
    *[
        (u, v, "Mixed adenocarcinoma & Mucinous", "icdo3:8255/3", "adenocarcinoma with mixed subtypes (bug 6)")
        for u, v in (("uc45", "histopat"), ("uc45", "histopat_2"), ("uc45", "histopat_3"))
    ],
    *[
        (u, v, "Neuroendocrine NOS", "icdo3:8246/3", "neuroendocrine carcinoma, NOS (bug 6)")
        for u, v in (("uc45", "histopat"), ("uc45", "histopat_2"), ("uc45", "histopat_3"))
    ],
    ("uc45", "tnm_ypt", None, "sct:1222595002", "ypT category (bug 8: pT)"),
    ("uc45", "tnm_ypt", "pT0", "sct:1228863001", "ypT0: the variable is post-therapy"),
    ("uc45", "tnm_ypn", None, "sct:1222596001", "ypN category (bug 8: pN)"),
    ("uc45", "tnm_ypn", "pN2", "sct:1229892006", "ypN2"),
    ("uc45", "tnm_ypm", "pM1", "sct:1229916009", "pM1 (no ypM values exist)"),
    ("uc45", "tnm_ypm", "pM0", "ncit:C48740", "pM0 TNM Finding"),
    *[(u, v, "G1", "sct:1228848004", "AJCC G1 (bug 3)") for u, v in (("uc68", "grade"), ("uc68", "grade_2"))],
    *[(u, v, "Gx", "sct:1228845001", "AJCC GX (bug 3)") for u, v in (("uc68", "grade"), ("uc68", "grade_2"))],
    *[
        ("uc68", v, label, code, f"{label} (bug 5: rotated)")
        for v in ("histopat", "histopat_2", "histopat_3", "histopat_1_2", "histopat_2_2", "histopat_3_2")
        for label, code in (("Only ductal cancer", "icdo3:8500/3"), ("DCIS", "icdo3:8500/2"), ("Benign", "sct:3898006"))
    ],
    *[
        ("uc68", v, label, code, f"AJCC {label} (bug 7: permuted)")
        for v in ("tnm_ct", "tnm_ct_2")
        for label, code in (
            ("cT1mi", "sct:1228891009"),
            ("cT1a", "sct:1228892002"),
            ("cT1b", "sct:1228895000"),
            ("cT1c", "sct:1228899006"),
        )
    ],
    ("uc68", "brca1", "positive", "sct:412734009", "BRCA1 gene mutation positive (bug 9)"),
    ("uc68", "brca1", "negative", "sct:412736006", "BRCA1 gene mutation negative (bug 9)"),
    ("uc68", "brca2", "positive", "sct:412738007", "BRCA2 gene mutation positive (bug 9)"),
    ("uc68", "brca2", "negative", "sct:412739004", "BRCA2 gene mutation negative (bug 9)"),
    ("uc68", "lactation", None, "sct:413712001", "Breastfeeding (mother), not the infant's Breast fed"),
    ("uc68", "screening", None, "sct:24623002", "Screening mammography, not MRI"),
    ("uc68", "famhisto_b", None, "sct:429740004", "Family history of breast cancer (the expression was invalid)"),
    ("uc68", "famhisto_o", None, "sct:430705002", "Family history of ovarian cancer (the expression was invalid)"),
    ("uc68", "famhisto_b", "second degree", "sct:699110007", "Second degree blood relative"),
    *[
        ("uc7", v, label, code, f"AJCC {label} (bug 3)")
        for v in ("grade", "grade_ap")
        for label, code in (("G1", "sct:1228848004"), ("G3", "sct:1228851006"), ("Gx", "sct:1228845001"))
    ],
    *[
        ("uc7", "tnm_ct", label, code, f"AJCC {label} (bug 7)")
        for label, code in (
            ("cT1mi", "sct:1228891009"),
            ("cT1a", "sct:1228892002"),
            ("cT1b", "sct:1228895000"),
            ("cT1c", "sct:1228899006"),
        )
    ],
    ("uc7", "tnm_ypt", None, "sct:1222595002", "ypT category"),
    ("uc7", "tnm_ypt", "ypT1mi", "sct:1228870001", "ypT1mi"),
    ("uc7", "tnm_ypn", None, "sct:1222596001", "ypN category"),
    ("uc7", "tnm_ypn", "ypN1mi", "sct:1229885001", "ypN1mi"),
    ("uc7", "tnm_ypm", None, "sct:1222591006", "pathological M category, as uc3 tnm_pm and uc45 tnm_ypm (no ypM)"),
    ("uc7", "tnm_ypm", "pM1", "sct:1229916009", "pM1 (no ypM values exist)"),
    ("uc7", "tnm_ypm", "pM0", "ncit:C48740", "pM0 TNM Finding, as recorded (not cM0: issue 12)"),
    *[
        (u, "menop", label, code, f"{label}: the state the label names (issue 12)")
        for u in ("uc68", "uc7")
        for label, code in (("premenopause", "sct:22636003"), ("postmenopause", "sct:76498008"))
    ],
    *[
        (u, v, "no", "sct:373067005", "No: the answer to a yes/no question, not 260415000 Not detected (issue 12)")
        for u, v in (
            ("uc1", "cirrhosis"),
            ("uc3", "cirrhosis"),
            ("uc68", "lactation"),
            ("uc68", "hormtherapy"),
            ("uc68", "hcontrac"),
            ("uc7", "lactation"),
            ("uc7", "hormtherapy"),
            ("uc7", "hcontrac"),
        )
    ],
    ("uc7", "brca1", "positive", "sct:412734009", "BRCA1 gene mutation positive"),
    ("uc7", "brca2", "negative", "sct:412739004", "BRCA2 gene mutation negative"),
    ("uc7", "famhisto_b", None, "sct:429740004", "Family history of malignant neoplasm of breast"),
    ("uc7", "famhisto_o", None, "sct:430705002", "Family history of malignant neoplasm of ovary"),
    ("uc7", "ki67_ap", None, "ln:85330-9", "Ki-67 (bug 40: codebook swapped with FISH)"),
    ("uc7", "her2fish_ap", None, "ln:85318-4", "HER2 FISH (bug 40: codebook swapped with Ki-67)"),
    ("uc7", "her2ihc_ap", None, "ln:85319-2", "HER2 IHC"),
    ("uc7", "her2fish_ap", "positive", "sct:10828004", "Positive"),
    ("uc7", "laterality", "Left", "sct:80248007", "Left breast structure"),
    ("uc7", "laterality", "Right", "sct:73056007", "Right breast structure (bug 14: lost)"),
    ("uc7", "deceased", "alive", False, "deceasedBoolean false (bug 40: codebook map inverted)"),
    ("uc7", "deceased", "deceased", True, "deceasedBoolean true"),
    ("uc7", "recurrence", "yes", "condition-clinical:recurrence", "Recurrence"),
    *[
        ("uc7", v, label, code, f"{label} (bug 13: Not recorded)")
        for v in ("chemo_drug", "chemo_drug_2", "chemo_drug_3", "chemo_drug_4", "chemo_drug_5")
        for label, code in (
            ("Abraxane", "sct:426653008"),
            ("Adriamycin", "rxnorm:3639"),
            ("Bevacizumab", "rxnorm:253337"),
            ("Taxotere", "rxnorm:72962"),
            ("Tremelimumab", "sct:49616005|Tremelimumab"),
            ("Xentuzumab", "sct:49616005|Xentuzumab"),
        )
    ],
]
_CONCEPT_SYSTEMS = {**SYSTEMS, "condition-clinical": "http://terminology.hl7.org/CodeSystem/condition-clinical"}


def _meaning_id(case: Any) -> str:
    values = case.values if hasattr(case, "values") else case
    return "-".join(str(x) for x in values[:3] if x is not None).replace(" ", "_")


#: Elements whose concept is the answer itself; a status element (verification, clinical) is used only when the
#: variable feeds nothing else (UC7 recurrence).
_ANSWER_ELEMENTS = {"value", "code", "medication", "bodySite", "deceased", "gender"}


def mapped_concepts(dd: Any, variable: str, label: str | None) -> list[Any]:
    """What the compiled mapping gives for a choice label of a variable (or for its question), in every plan."""
    out: list[Any] = []
    if label is None:
        for res in dd.resources:
            el = res["elements"]
            if res["type"] == "Observation" and el.get("value", {}).get("variable") == variable:
                coding = el["code"]["coding"]
                out.append((coding["system"], coding["code"]))
        return out
    codes = [code for code, text in dd.fields[variable].choices.items() if text == label]
    assert len(codes) == 1, f"{variable}: label {label!r} among {dd.fields[variable].choices}"
    found: list[tuple[str, Any]] = []
    for res in dd.resources:
        for key, node in res["elements"].items():
            for src in sources(node):
                if src["variable"] != variable or src["kind"] not in {"coded", "status"}:
                    continue
                entry = src["map"][codes[0]]
                if src["kind"] == "status":
                    found.append((key, entry))
                elif entry is not None and entry.get("coding") is not None:
                    coding = entry["coding"]
                    text = [entry["text"]] if entry.get("text") else []
                    found.append((key, (coding["system"], coding["code"], *text)))
    answers = [concept for key, concept in found if key in _ANSWER_ELEMENTS]
    return answers or [concept for _, concept in found]


@pytest.mark.parametrize(
    ("use_case", "variable", "label", "expected", "evidence"), MEANING, ids=[_meaning_id(c) for c in MEANING]
)
def test_label_is_coded_as_what_it_means(
    use_case: str, variable: str, label: str | None, expected: Any, evidence: str, compiled
) -> None:
    if isinstance(expected, bool):
        want: Any = expected
    else:
        alias, _, code = expected.partition(":")
        code, _, text = code.partition("|")
        want = (_CONCEPT_SYSTEMS[alias], code, *([text] if text else []))
    got = mapped_concepts(compiled[use_case], variable, label)
    assert got, f"{use_case} {variable}: no element is coded from it"
    assert set(got) == {want}, f"{use_case} {variable} {label!r} should be {expected} ({evidence})"


# ------------------------------------------------------------------------------------------------------------------
# 5. Deliberate differences from the published EuCanImage bundles
# ------------------------------------------------------------------------------------------------------------------

#: Our slot id -> the name the published scripts used in the fullUrl's uuid5 (REVIEW.md §4); default: the slot id.
PUBLISHED_NAME: dict[str, dict[str, str]] = {
    "uc1": {"hcc": "indeterm_nodule"},
    "uc3": {"comorb_present": "comorb"},
    "uc45": {"histopat": "histopat1", "histopat_2": "histopat2", "histopat_3": "histopat3"},
    "uc68": {
        "histopat": "histopat1",
        "histopat_2": "histopat2",
        "histopat_3": "histopat3",
        "histopat_1_2": "histopat1_2",
        "histopat_2_2": "histopat2_2",
        "histopat_3_2": "histopat3_2",
    },
    "uc7": {
        "histopat": "histopat1",
        "histopat_2": "histopat2",
        "histopat_3": "histopat3",
        **{f"nst_{k}": f"med{k}" for k in range(1, 6)},
    },
}

#: Element path in a compiled plan -> the element key compared here.
_PLAN_KEY = {
    "gender": "gender",
    "deceased": "deceasedBoolean",
    "value": "value",
    "effective": "effectivePeriod",
    "performed": "performedPeriod",
    "medication": "medicationCodeableConcept",
    "dosage.dose": "dosage.dose",
    "dosage.rate.numerator": "dosage.rateRatio.numerator",
    "dosage.rate.denominator": "dosage.rateRatio.denominator",
}
#: Element names in mapping_summary.json's ``element`` text -> the element key compared here.
_SUMMARY_KEY = re.compile(
    r"\b(valueCodeableConcept|valueQuantity|component|onsetAge|verificationStatus|clinicalStatus|evidence"
    r"|deceasedBoolean|medicationCodeableConcept|effectivePeriod|bodySite|dosage\.dose|dosage\.rateQuantity"
    r"|dosage\.rateRatio\.numerator|dosage\.rateRatio\.denominator|(?:Procedure|MedicationAdministration)\.status"
    r"|(?:Observation|Condition)\.code)\b"
)


def _summary_keys(element: str) -> set[str]:
    """Element keys named by a mapping_summary ``element`` text, skipping clauses that name another variable."""
    keys = set()
    for clause in element.split(";"):
        if any(t in clause for t in ("lat(", "d_index[", "method =", "note[")):
            continue
        for name in _SUMMARY_KEY.findall(clause):
            name = name.rsplit(".", 1)[-1] if name.endswith((".status", ".code")) else name
            keys.add("value" if name in {"valueCodeableConcept", "valueQuantity", "component"} else name)
    return keys


def _plan_locations(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(variable, element key) for every source in a plan (a unit variable counts for its quantity's element)."""
    if isinstance(node, Mapping):
        if "kind" in node:
            key = _PLAN_KEY.get(path) or path.split(".")[0]
            if path.startswith("components"):
                key = "value"
            for src in sources(node):
                yield src["variable"], key
            return
        for k, v in node.items():
            yield from _plan_locations(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for item in node:
            yield from _plan_locations(item, path)


@cache
def _summary(reference: Path) -> dict[str, Any]:
    return json.loads((reference / "eucanimage-fhir" / "mapping_summary.json").read_text(encoding="utf-8"))


def locations(dd: Any, summary: list[dict[str, Any]]) -> dict[str, set[tuple[str, str]]]:
    """{variable: {(published resource name, element key)}} compared for that variable."""
    names = PUBLISHED_NAME[dd.use_case]
    out: dict[str, set[tuple[str, str]]] = {}
    for res in dd.resources:
        name = names.get(res["id"], res["id"])
        for variable, key in _plan_locations(res["elements"]):
            out.setdefault(variable, set()).add((name, key))
    for item in summary:
        name = _fullurl_name(item)
        if item["variable"] in out and name:
            assert name.group(1) in {n for n, _ in out[item["variable"]]}, (item["variable"], "PUBLISHED_NAME")
            out[item["variable"]] |= {(name.group(1), k) for k in _summary_keys(item["element"])}
    for variable, locs in out.items():  # an Observation's value is compared together with its question
        out[variable] = locs | {(n, "code") for n, k in locs if k == "value"}
    return out


def _signature(node: Any, out: set[tuple[Any, ...]]) -> None:
    """The (system, code) pairs of an element, plus quantities' numbers, periods' dates and absent reasons."""
    if isinstance(node, Mapping):
        if node.get("url") == DAR_URL:
            out.add(("data-absent-reason", node["valueCode"]))
            return
        value, code = node.get("value"), node.get("code")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.add(("quantity", node.get("system"), code if isinstance(code, str) else None, value))
        elif isinstance(code, str):
            out.add((node.get("system"), code))
        if "start" in node or "end" in node:
            out.add(("period", str(node.get("start"))[:10], str(node.get("end"))[:10]))
        for item in node.values():
            if isinstance(item, (Mapping, list)):
                _signature(item, out)
    elif isinstance(node, list):
        for item in node:
            _signature(item, out)
    elif isinstance(node, bool):
        out.add(("boolean", node))
    elif isinstance(node, str):
        out.add(("code", node))


def signature(resource: Mapping[str, Any] | None, key: str) -> frozenset[tuple[Any, ...]]:
    if resource is None:
        return frozenset({("no resource",)})
    out: set[tuple[Any, ...]] = set()
    if key == "value":
        for k in ("valueCodeableConcept", "valueQuantity", "dataAbsentReason", "component"):
            _signature(resource.get(k), out)
    else:
        node: Any = resource
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        _signature(node, out)
    return frozenset(out)


def published_bundles(reference: Path, use_case: str) -> dict[str, dict[str, dict[str, Any]]]:
    """{record id: {uuid5 name: resource}} of the published outputs, names resolved per REVIEW.md §4."""
    summary = _summary(reference)
    case = summary["_meta"][use_case.upper()]["case_number_in_uuid5"]
    names = {"patient", "condition", *(n for n in PUBLISHED_NAME[use_case].values())}
    names |= {item["variable"] for item in summary[use_case.upper()]}
    names |= {m.group(1) for i in summary[use_case.upper()] if (m := _fullurl_name(i))}
    out = {}
    for path in sorted((reference / "eucanimage-fhir" / use_case / "output").glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        record_id = bundle["entry"][0]["resource"]["identifier"][0]["value"]
        by_url = {}
        for name in names:
            number = case.get(name, case["default"])
            by_url[uuid.uuid5(uuid.NAMESPACE_DNS, f"{record_id}{name}{number}").urn] = name
        resources = {}
        for entry in bundle["entry"]:
            assert entry["fullUrl"] in by_url, (path.name, entry["fullUrl"])
            resources[by_url[entry["fullUrl"]]] = entry["resource"]
        out[record_id] = resources | {"_bundle": bundle}
    return out


def _fullurl_name(item: Mapping[str, Any]) -> re.Match[str] | None:
    return re.fullmatch(r"record_id \+ '(\w+)' \+ '\d+'", item.get("fullUrl_uuid5_name") or "")


#: Published outputs that predate later changes of the scripts (REVIEW.md, "Files in this folder"): (record id,
#: variable) whose published coding differs from what the scripts at HEAD emit (mapping_summary.json). UC3_3 is
#: stale only in its Bundle.id ("UC3-bundle-nan-3": made from a blank DAG), which is never compared (ours is a UUID).
STALE: dict[str, dict[str, set[str]]] = {
    "uc1": {},
    "uc3": {},
    "uc45": {},
    "uc68": {"UC68_1": {"lactation"}},  # question 169741004 Breast fed; HEAD: 413712001 Breastfeeding (mother)
    "uc7": {  # lactation question as UC68_1; famhisto first degree 264500008; BRCA generic Positive/Negative
        "UC7_1": {"lactation"},
        "UC7_2": {"lactation"},
        "UC7_3": {"lactation", "brca1", "brca2"},
        "UC7_4": {"lactation", "brca1", "brca2"},
        "UC7_5": {"lactation", "famhisto_o", "brca1", "brca2"},
    },
}
_STAGE_NCIT = "http://ncithesaurus-stage.nci.nih.gov"
_NOT_RECORDED = {"system": SYSTEMS["sct"], "code": "1220561009"}


def head_codings(reference: Path, use_case: str, record: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """{variable: {"question": coding, "answer": coding}} the scripts at HEAD emit for this record."""
    out = {}
    for item in _summary(reference)[use_case.upper()]:
        if not item.get("question_coding") or not isinstance(item.get("answer_codings"), dict):
            continue
        value = record.get(item["variable"], "")
        answer = item["answer_codings"].get(value) if value else None
        out[item["variable"]] = {
            "question": item["question_coding"],
            "answer": answer if isinstance(answer, dict) else _NOT_RECORDED,
        }
    return out


def stale_variables(reference: Path, use_case: str) -> dict[str, set[str]]:
    """{record id: variables} whose published question or answer coding is not what the scripts at HEAD emit."""
    published = published_bundles(reference, use_case)
    rows = {r["record_id"]: r for r in read_export(export_path(reference, use_case))}
    out: dict[str, set[str]] = {}
    for item in _summary(reference)[use_case.upper()]:
        name = _fullurl_name(item)
        if not name or not item.get("question_coding"):
            continue
        for record_id, resources in published.items():
            resource = resources[name.group(1)]
            head = head_codings(reference, use_case, rows[record_id]).get(item["variable"])
            got = [resource["code"]["coding"][0]]
            want = [item["question_coding"]]
            if head and "valueCodeableConcept" in resource:
                got.append(resource["valueCodeableConcept"]["coding"][0])
                want.append(head["answer"])
            if [(c["system"], c["code"]) for c in got] != [(c["system"], c["code"]) for c in want]:
                out.setdefault(record_id, set()).add(item["variable"])
    return out


def _state(field: Any, row: Mapping[str, str]) -> str:
    """hidden / blank / invalid / value: what the record holds for a variable."""
    if not logic(field.branching, row):
        return "hidden"
    value = row.get(field.name, "")
    if not value:
        return "blank"
    if field.choices:
        return "value" if value in field.choices else "invalid"
    if field.validation in {"integer", "number"}:
        number_ = _as_number(value)
        if number_ is None or (field.validation == "integer" and not number_.is_integer()):
            return "invalid"
        if (field.min and number_ < float(field.min)) or (field.max and number_ > float(field.max)):
            return "invalid"
    return "value"


def _unstage(sig: frozenset[tuple[Any, ...]]) -> frozenset[tuple[Any, ...]]:
    return frozenset(tuple(SYSTEMS["ncit"] if x == _STAGE_NCIT else x for x in t) for t in sig)


def _kind(state: str, published: frozenset[Any], ours: frozenset[Any]) -> str:
    """Why a location differs: the variable is not applicable, missing, only the NCIt URI, or the content."""
    if state == "hidden" or ours == {("no resource",)}:
        return "not-applicable"
    if state in {"blank", "invalid"}:
        return "missing"
    if _unstage(published) == ours:
        return "ncit-uri"
    return "content"


def differing_variables(dd: Any, run: Run, reference: Path) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """{variable: {kind: [(record id, resource, element, published signature, our signature)]}} where they differ.

    A difference that exists only because the published file is stale (STALE) has kind "stale"; what remains once the
    stale coding is replaced by the HEAD scripts' coding is classified as usual.
    """
    summary = _summary(reference)[dd.use_case.upper()]
    locs = locations(dd, summary)
    published = published_bundles(reference, dd.use_case)
    names = PUBLISHED_NAME[dd.use_case]
    rows = {row[dd.record_id]: row for row in run.rows}
    diffs: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    assert set(published) == set(run.bundles)
    for record_id, bundle in run.bundles.items():
        ours = {}
        slot_of = {resource_uuid(dd.use_case, record_id, r["id"]): r["id"] for r in dd.resources}
        for entry in bundle["entry"]:
            slot = slot_of[entry["resource"]["id"]]
            ours[names.get(slot, slot)] = entry["resource"]
        theirs = published[record_id]
        stale = STALE[dd.use_case].get(record_id, set())
        head = head_codings(reference, dd.use_case, rows[record_id])
        for variable in data_variables(dd):
            state = _state(dd.fields[variable], rows[record_id])
            for name, key in sorted(locs[variable]):
                resource = theirs.get(name)
                a, b = signature(resource, key), signature(ours.get(name), key)
                if a == b:
                    continue
                kinds = set()
                if variable in stale and resource is not None:
                    fixed = json.loads(json.dumps(resource))
                    fixed["code"]["coding"][0] = head[variable]["question"]
                    if "valueCodeableConcept" in fixed:
                        fixed["valueCodeableConcept"]["coding"][0] = head[variable]["answer"]
                    if signature(fixed, key) != a:
                        kinds.add("stale")
                        a = signature(fixed, key)
                if a != b:
                    kinds.add(_kind(state, a, b))
                for kind in kinds:
                    diffs.setdefault(variable, {}).setdefault(kind, []).append((record_id, name, key, a, b))
        # record_id: bundle id, fullUrls, Resource.id and the identifier's system are ours by design
        pub_bundle, pub_patient = theirs["_bundle"], theirs["patient"]
        if (
            pub_bundle["id"] != bundle["id"]
            or pub_bundle["entry"][0]["fullUrl"] != bundle["entry"][0]["fullUrl"]
            or pub_patient["identifier"] != ours["patient"]["identifier"]
        ):
            diffs.setdefault("record_id", {}).setdefault("ids", []).append((record_id,))
    return diffs


# The differences, per use case and variable. A reason starts with the kinds of difference it explains, as computed
# by differing_variables: [content] other codes / elements / resources, [missing] blank or impermissible value now
# explicit data-absent, [not-applicable] not emitted where branching, `when` or `if_blank: omit` say so,
# [ncit-uri] canonical NCIt system URI, [stale] the published file predates the scripts' own later fix, [ids] ids.
# Bug numbers are REVIEW.md §8; the texts follow docs/use-cases/<uc>.md "Deliberate differences".
IDS = (
    "[ids] UUIDv5 bundle id, fullUrls, Resource.ids over <uc>/<record id>[/<slot>]; identifier system (bugs 22, 30, 31)"
)
MISSING = "[missing] blank or impermissible: explicit data-absent-reason, not SNOMED 1220561009 Not recorded (bug 15)"
HIDDEN = (
    "[not-applicable] not emitted where branching / `when` hide it, or blank in an `if_blank: omit` slot (REVIEW §4)"
)
NCIT = "[ncit-uri] NCIt under the canonical URI http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl (bug 11)"
GENDER = "[content] also sets Patient.gender"
COUNT = "[content] counts in UCUM {#}, not U (enzyme unit)"
CYCLES = (
    "[content] completed cycles are dosage.rateRatio.denominator in UCUM {cycle}, not rateQuantity in SNOMED 399042005"
)
NO = "[content] no -> 373067005 No, not 260415000 Not detected (issue 12: one code per answer)"
MENOP = "[content] premenopause 22636003, postmenopause 76498008, not Menopause absent/present (issue 12)"
AGENT_SLOT = "slots 2-5 only when an agent is entered (`if_blank: omit`), the scripts always emitted five"


KINDS = ("content", "missing", "not-applicable", "ncit-uri", "stale", "ids")
_TAG = re.compile(r"\[(" + "|".join(KINDS) + r")\]")


def _both(*parts: str) -> str:
    """Join reason parts: their [kind] tags first, then the texts."""
    tags = "".join(f"[{t}]" for t in sorted({t for p in parts for t in _TAG.findall(p)}))
    return tags + " " + "; ".join(_TAG.sub("", p).strip() for p in parts)


DELIBERATE: dict[str, dict[str, str]] = {
    "uc1": {
        "record_id": IDS,
        "sex": _both(GENDER, MISSING),
        "onsetage": _both(MISSING, "blank age: onsetAge with data-absent-reason, not omitted (bug 19)"),
        "indeterm_nodule": _both(MISSING, "blank / codes 7, 13, 8: verificationStatus data-absent, not unconfirmed"),
        "diag_method": MISSING,
        "hep_b": MISSING,
        "hep_c": MISSING,
        "ald": _both(NO, MISSING),
        "autoimm_hep": _both(NO, MISSING),
        "nafld": _both(NO, MISSING),
        "psc": _both("[content] question SNOMED 197441003 PSC, not 1231824009 NAFLD (bug 1)", MISSING),
        "others": _both(NO, MISSING),
        "chronic_hep": _both(NO, MISSING),
        "cirrhosis": _both(NO, MISSING),
        "child_pugh": MISSING,
    },
    "uc3": {
        "record_id": IDS,
        "sex": _both(GENDER, MISSING),
        "histopat": "[content] CRLM Condition verificationStatus confirmed/refuted; histology an Observation 371441004",
        "diag_method": _both(MISSING, "Condition.evidence.code data-absent, not Not recorded"),
        "bca": _both(NO, MISSING),
        "cca": MISSING,
        "fhs": _both(NO, MISSING),
        "abscess": _both(NO, MISSING),
        "hcc": MISSING,
        "cirrhosis": _both(NO, MISSING),
        "comorb_present": NO,
        "biloma": NO,
        "dn": NO,
        "fhcc": NO,
        "hemangioma": NO,
        "adenoma": NO,
        "pha": NO,
        "hhcyst": NO,
        "phl": NO,
        "shcyst": NO,
        "fnh": "[content] focal nodular hyperplasia emitted (SCT 278527001); the scripts never emitted it (bug 12)",
        "thad": _both(
            "[content] own code 365853002:363698007=10200004, not comorb_present's 398192003 (bug 10)", MISSING
        ),
        "tnm_pt": _both(HIDDEN, "only if [histopat] = '0'", MISSING),
        "tnm_pn": _both(HIDDEN, "only if [histopat] = '0'", MISSING),
        "tnm_pm": _both(HIDDEN, "only if [histopat] = '0'", MISSING, "pM0", NCIT),
        "tnm_ct": _both(HIDDEN, "only if [histopat] = '0'", MISSING),
        "tnm_cn": _both(HIDDEN, "only if [histopat] = '0'", MISSING),
        "tnm_cm": _both(HIDDEN, "only if [histopat] = '0'", MISSING),
    },
    "uc45": {
        "record_id": IDS,
        "sex": _both(GENDER, MISSING),
        "histopat_2": _both(
            HIDDEN, "[content] 1 Mixed adenocarcinoma & Mucinous = 8255/3, 4 Neuroendocrine NOS = 8246/3 (bug 6)"
        ),
        "histopat_3": HIDDEN,
        "tnm_ypt": "[content] coded as ypT: question 1222595002, ypT answers, not pT (bug 8)",
        "tnm_ypn": "[content] coded as ypN: question 1222596001, ypN answers, not pN (bug 8)",
        "tnm_ypm": _both("pM0 NCIt C48740", NCIT),
        "grade": "[content] 0 Grade 1 -> G1 1228848004 ... 3 Grade X -> GX; the published table is shifted (bug 3)",
        "lymp_inv": "[content] question SNOMED 371512006, not the LOINC Part code LP428220-0",
        "emvi": "[content] 0 not-identified -> LA11902-6, 1 present -> LA9633-4; published meaning inverted (bug 2)",
        "n_lymphnodes": COUNT,
        "n_met_ln": COUNT,
        "trg": _both("[content] Grade 0 -> C155941 ... 4 Gx -> 1155705000, not shifted (bug 4)", NCIT),
        "chemo": _both(
            "[content] chemo status propagated to every agent's MedicationAdministration.status, not unknown (bug 18)",
            HIDDEN,
        ),
        "chemo_dose": "[content] accumulated dose is dosage.rateRatio.numerator, not dosage.dose",
        "neoadj": CYCLES,
        "chemo_drug_2": _both(HIDDEN, AGENT_SLOT, "FOLFIRINOX", NCIT),
        "chemo_dose_2": _both(HIDDEN, AGENT_SLOT, "[content] rateRatio.numerator", MISSING),
        "chemo_dur_2": _both(HIDDEN, AGENT_SLOT, MISSING, "blank duration: data-absent period, not zero-length"),
        "neoadj_2": _both(HIDDEN, AGENT_SLOT, CYCLES, MISSING),
        **{
            f"{var}_{k}": _both(HIDDEN, AGENT_SLOT)
            for k in (3, 4, 5)
            for var in ("chemo_drug", "chemo_dose", "chemo_dur", "neoadj")
        },
        "neoadj_surgery": MISSING,
    },
    "uc68": {
        "record_id": IDS,
        "sex": GENDER,
        "onsetage": "[content] also the component Age at diagnosis of the new patientclass Observation",
        "patientclass": "[content] new Observation 439401001 Diagnosis for every class; Condition only for 0 and 1",
        "menop": MENOP,
        "n_preg": COUNT,
        "lactation": _both(
            "[stale] question 413712001 Breastfeeding (mother), as the scripts at HEAD (UC68_1 predates it)", NO
        ),
        "symptoms": MISSING,
        "screening": "[content] question 24623002 Screening mammography, not 609223006 MRI of breast",
        "famhisto_b": MISSING,
        "famhisto_o": MISSING,
        "laterality": _both(MISSING, "blank laterality: data-absent bodySite, not Not recorded as a body site", HIDDEN),
        "bcstproxy": _both("Ki-67 component", NCIT),
        "bcst_pam50": _both("Ki-67 component and PAM50 method", NCIT),
        "histopat": "[content] each label coded as what it says, 2 Ductal and other = 8523/3 (bug 5)",
        "histopat_2": HIDDEN,
        "histopat_3": HIDDEN,
        "grade": "[content] 1 G2 -> 1228850007; the published table is shifted (bug 3)",
        "dcis": _both(HIDDEN, "only for histological types 5 or 7"),
        "er": MISSING,
        "pr": MISSING,
        "her2ihc": MISSING,
        "ki67": MISSING,
        "her2fish": _both(HIDDEN, "only if [her2ihc] = '2'"),
        "laterality_2": _both(HIDDEN, "Biopsy 2 follows each field's branching logic"),
        "bcstproxy_2": MISSING,
        "bcst_pam50_2": MISSING,
        "histopat_1_2": MISSING,
        "histopat_2_2": HIDDEN,
        "histopat_3_2": HIDDEN,
        "tnm_ct_2": MISSING,
        "tnm_cn_2": MISSING,
        "tnm_cm_2": MISSING,
        "grade_2": MISSING,
        "dcis_2": HIDDEN,
        "er_2": MISSING,
        "pr_2": MISSING,
        "her2ihc_2": MISSING,
        "ki67_2": MISSING,
        "her2fish_2": HIDDEN,
        "hcontrac": MISSING,
        "hcohtrac_dur": _both(MISSING, "blank shown duration: data-absent effectivePeriod, not none"),
        "hormtherapy": MISSING,
        "hormtherapy_dur": _both(MISSING, "blank shown duration: data-absent effectivePeriod, not none"),
        "brca1": MISSING,
        "brca2": MISSING,
        "palb2": MISSING,
        "chek2": MISSING,
    },
    # UC7: variables tagged only [missing] / [not-applicable] / [ncit-uri] / [ids] and not named in the doc's list
    # are covered by its "Common to every variable" paragraph.
    "uc7": {
        "record_id": IDS,
        "sex": _both(GENDER, MISSING),
        "onsetage": _both(MISSING, "blank age: data-absent onsetAge, not omitted"),
        "bcstproxy": _both("Ki-67 component", NCIT, MISSING),
        "bcst_pam50": _both("Ki-67 component and PAM50 method", NCIT, MISSING),
        "histopat": MISSING,
        "histopat_2": _both(HIDDEN, "no Condition when blank (`if_blank: omit`)"),
        "histopat_3": _both(HIDDEN, "no Condition when blank (`if_blank: omit`)"),
        "recurrence": "[content] 1 no -> remission, not inactive; blank -> no clinicalStatus (required binding)",
        "dfs": MISSING,
        "os": MISSING,
        "menop": _both(MENOP, MISSING),
        "n_preg": _both(COUNT, MISSING),
        "lactation": _both("[stale] question 413712001 as the scripts at HEAD (UC7_1..5 predate it)", MISSING),
        "famhisto_b": _both("[content] question 429740004, not the invalid expression 416471007:64572001=...", MISSING),
        "famhisto_o": _both(
            "[content] question 430705002, not the invalid expression 416471007:64572001=...",
            "[stale] first degree 125678001 as the scripts at HEAD (UC7_5 predates it)",
            MISSING,
        ),
        "hormtherapy": _both(NO, MISSING),
        "hcontrac": _both(NO, MISSING),
        "hcontrac_dur": _both(MISSING, "blank shown duration: data-absent effectivePeriod"),
        "laterality": _both(MISSING, "blank laterality: data-absent bodySite, not Not recorded", HIDDEN),
        "tnm_ct": _both("[content] 6 cT1mi -> 1228891009 (bug 7)", MISSING),
        "tnm_cn": MISSING,
        "grade": _both("[content] choices coded G1, G2, G3, GX, not shifted (bug 3)", MISSING),
        "grade_ap": _both("[content] choices coded G1, G2, G3, GX, not shifted (bug 3)", MISSING),
        "n_lymphnodes": _both(COUNT, MISSING),
        "er": MISSING,
        "pr": MISSING,
        "her2ihc": MISSING,
        "ki67": MISSING,
        "her2fish": _both(HIDDEN, "only if [her2ihc] = '2'"),
        "tnm_ypt": MISSING,
        "tnm_ypn": MISSING,
        "tnm_ypm": _both("pM0 NCIt C48740", NCIT, MISSING),
        "lymp_inv": MISSING,
        "ln_pos": _both(COUNT, HIDDEN, "only if lymp_inv = present"),
        "trg": _both(NCIT, MISSING),
        "rcb": _both(NCIT, MISSING),
        "er_ap": MISSING,
        "pr_ap": MISSING,
        "her2ihc_ap": MISSING,
        "ki67_ap": MISSING,
        "her2fish_ap": _both(HIDDEN, "only if [her2ihc_ap] = '2'"),
        "chemo_dose": "[content] a dose with a blank unit is kept, unit marked missing (bug 16)",
        "chemo_units": _both(MISSING, "blank unit: the dose is kept with a data-absent unit (bug 16)"),
        "chemo_dur": _both(MISSING, "blank duration: data-absent effectivePeriod, not a zero-length one"),
        "neoadj": _both(HIDDEN, "status from neoadj only where shown (agents 14-36), else unknown"),
        "neoadj_chemo": _both(CYCLES, MISSING),
        "acc_dose": _both(MISSING, "no invented 1 Procedure denominator"),
        "acc_dose_units": MISSING,
        "chemo_drug_2": _both(HIDDEN, AGENT_SLOT),
        "chemo_dose_2": _both(HIDDEN, AGENT_SLOT),
        "chemo_units_2": _both(HIDDEN, AGENT_SLOT),
        "chemo_dur_2": _both(HIDDEN, AGENT_SLOT),
        "neoadj_2": _both(HIDDEN, AGENT_SLOT),
        "neoadj_chemo_2": _both(HIDDEN, "hidden cycles: a not-applicable denominator (rat-1)", CYCLES),
        "acc_dose_2": _both(HIDDEN, MISSING),
        "acc_dose_units_2": _both(HIDDEN, MISSING),
        **{
            f"{var}_{k}": _both(HIDDEN, AGENT_SLOT)
            for k in (3, 4, 5)
            for var in ("chemo_drug", "chemo_dose", "chemo_units", "chemo_dur", "neoadj")
        },
        **{f"neoadj_chemo_{k}": _both(HIDDEN, AGENT_SLOT, CYCLES) for k in (3, 4, 5)},
        **{f"{var}_{k}": _both(HIDDEN, AGENT_SLOT, MISSING) for k in (3, 4) for var in ("acc_dose", "acc_dose_units")},
        "acc_dose_5": _both(HIDDEN, AGENT_SLOT),
        "acc_dose_units_5": _both(HIDDEN, AGENT_SLOT),
        "brca1": _both("[stale] gene-specific answers as the scripts at HEAD (UC7_3..5 predate them, bug 9)", MISSING),
        "brca2": _both("[stale] gene-specific answers as the scripts at HEAD (UC7_3..5 predate them, bug 9)", MISSING),
        "palb2": MISSING,
        "chek2": MISSING,
    },
}


def reason_kinds(reason: str) -> set[str]:
    match = re.match(r"^((?:\[[a-z-]+\])+) ", reason)
    assert match, f"a reason starts with its [kind] tags: {reason!r}"
    kinds = set(re.findall(r"\[([a-z-]+)\]", match.group(1)))
    assert kinds <= set(KINDS), kinds
    return kinds


@pytest.mark.parametrize("use_case", REFERENCE_USE_CASES)
def test_differences_from_published_outputs_are_exactly_the_deliberate_ones(
    use_case: str, runs: _Runs, compiled, reference: Path
) -> None:
    dd = compiled[use_case]
    summary = {i["variable"] for i in _summary(reference)[use_case.upper()]}
    system_columns = {"record_id", "redcap_data_access_group", *dd.complete_columns}
    assert summary - system_columns == set(data_variables(dd)), "the reference maps other variables than ours"
    diffs = differing_variables(dd, runs[use_case], reference)
    computed = {variable: set(kinds) for variable, kinds in diffs.items()}
    declared = {variable: reason_kinds(reason) for variable, reason in DELIBERATE[use_case].items()}
    new = {v: sorted(k) for v, k in computed.items() if v not in declared}
    gone = sorted(set(declared) - set(computed))
    assert not new and not gone, f"new differences: {new}; differences that disappeared: {gone}"
    changed = {v: (sorted(declared[v]), sorted(computed[v])) for v in computed if computed[v] != declared[v]}
    assert not changed, f"kinds of difference changed (declared, computed): {changed}"


def documented(use_case: str) -> tuple[set[str], set[str]]:
    """Variable names of the doc's "Deliberate differences" items, and the kinds its common paragraph covers."""
    doc = DOCS / f"{use_case}.md"
    assert doc.is_file(), f"{doc.relative_to(REPO)} does not exist"
    section = doc.read_text(encoding="utf-8").split("## Deliberate differences from the published EuCanImage outputs")
    assert len(section) == 2, "no 'Deliberate differences from the published EuCanImage outputs' section"
    body = re.split(r"\n## ", section[1], maxsplit=1)[0]
    names: set[str] = set()
    for line in body.splitlines():
        item = re.match(r"- (.+?):\s", line)
        if not item:
            continue
        found = re.findall(r"`(\w+)`", item.group(1))
        names.update(found)
        if "…" in item.group(1):  # `chemo_dose`, `chemo_units`, `chemo_dose_2` … `chemo_units_5`
            ks = [int(n[-1]) for n in found if re.search(r"_\d$", n)]
            bases = {re.sub(r"_\d$", "", n) for n in found}
            names.update(f"{b}_{k}" for b in bases for k in range(min(ks), max(ks) + 1))
    common: set[str] = set()
    intro = body.split("\n- ", 1)[0]
    if "Common to every variable" in intro:
        for kind, words in {
            "not-applicable": "branching logic",
            "missing": "dataAbsentReason",
            "ncit-uri": "canonical URI",
            "ids": "UUIDv5",
        }.items():
            if words in intro:
                common.add(kind)
    return names, common


@pytest.mark.parametrize("use_case", sorted(DELIBERATE))
def test_deliberate_differences_are_documented(use_case: str) -> None:
    names, common = documented(use_case)
    undocumented = {
        variable: sorted(reason_kinds(reason) - common)
        for variable, reason in DELIBERATE[use_case].items()
        if variable not in names and not reason_kinds(reason) <= common
    }
    assert not undocumented, f"not in the doc's list nor covered by its common paragraph: {undocumented}"


@pytest.mark.parametrize("use_case", REFERENCE_USE_CASES)
def test_stale_published_outputs_are_exactly_the_known_ones(use_case: str, reference: Path) -> None:
    """REVIEW.md: UC3_3, UC68_1 and UC7_1..5 predate later changes of the scripts; nothing else is stale."""
    assert stale_variables(reference, use_case) == STALE[use_case]
    published = published_bundles(reference, use_case)
    stale_ids = {r: b["_bundle"]["id"] for r, b in published.items() if "-bundle-test-" not in b["_bundle"]["id"]}
    assert stale_ids == ({"UC3_3": "UC3-bundle-nan-3"} if use_case == "uc3" else {})
