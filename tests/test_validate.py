"""The validation layers: valid demo bundles pass, and each deliberately broken bundle is caught once, by the
expected layer and rule, at the expected FHIRPath location, and by nothing else."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import DICTIONARIES, ONTOLOGIES, REPO, USE_CASES

from oncofhir.demo import generate
from oncofhir.dictionary import load_compiled
from oncofhir.errors import InputDataError, OncofhirError
from oncofhir.pipeline import stage_compile, stage_fhir, stage_ingest
from oncofhir.validate import Issue, ValidationContext, validate_bundle
from oncofhir.validate.profile import slot_uuids
from oncofhir.validate.report import read_bundles, run_cli, stage_validate


def build(tmp: Path, use_case: str, records: int = 30, seed: int = 11, dictionary: Path | None = None) -> Path:
    """Compile, generate, ingest and build a center with the workflow's own stages; returns the work folder."""
    tmp.mkdir(parents=True, exist_ok=True)
    compiled = tmp / "dict.json"
    stage_compile(dictionary or DICTIONARIES / use_case, ONTOLOGIES, compiled)
    export = tmp / "export.csv"
    export.write_text(generate(load_compiled(compiled), "hospital_a", records, seed=seed), encoding="utf-8")
    stage_ingest(compiled, export, tmp / "records.csv", tmp / "rejects.tsv", tmp / "ingest.json")
    stage_fhir(
        compiled,
        tmp / "records.csv",
        tmp / "rejects.tsv",
        tmp / "ingest.json",
        tmp / "bundles",
        tmp / "center.ndjson",
        tmp / "index.tsv",
        tmp / "rejects-all.tsv",
        tmp / "summary.json",
    )
    return tmp


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One built demo center per use case."""
    root = tmp_path_factory.mktemp("validate-demo")
    return {uc: build(root / uc, uc) for uc in USE_CASES}


@pytest.fixture(scope="module")
def contexts(demo: dict[str, Path]) -> dict[str, ValidationContext]:
    return {uc: ValidationContext.create(load_compiled(demo[uc] / "dict.json")) for uc in USE_CASES}


def bundles_of(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "center.ndjson").read_text(encoding="utf-8").splitlines()]


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.is_error]


# -- valid bundles ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_case", USE_CASES)
def test_demo_bundles_have_no_errors(demo: dict[str, Path], contexts: dict[str, ValidationContext], use_case: str):
    """Every demo bundle passes every layer with no error."""
    found = {
        (i.layer, i.rule, i.location, i.message)
        for b in bundles_of(demo[use_case])
        for i in errors(validate_bundle(b, contexts[use_case]))
    }
    assert found == set(), sorted(found)[:10]


def test_construct_test_dictionary_bundles_are_valid(tmp_path: Path):
    """The tst use case exercises every mapping construct (components, rates, evidence, reports...)."""
    work = build(tmp_path, "tst", records=40, dictionary=REPO / "tests" / "data" / "tst")
    context = ValidationContext.create(load_compiled(work / "dict.json"))
    found = {(i.layer, i.rule, i.location) for b in bundles_of(work) for i in errors(validate_bundle(b, context))}
    assert found == set()


# -- the broken-bundle corpus -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(demo: dict[str, Path], contexts: dict[str, ValidationContext]) -> dict[str, Any]:
    """A uc7 demo bundle without errors (about 40 resources: Patient, Observations, Conditions, medication, report)."""
    return next(b for b in bundles_of(demo["uc7"]) if not errors(validate_bundle(b, contexts["uc7"])))


def slot(bundle: dict[str, Any], name: str) -> int:
    """The entry index of a dictionary slot (ids are UUIDv5 of use case, record id and slot)."""
    record = bundle["entry"][0]["resource"]["identifier"][0]["value"]
    wanted = next(u for u, s in slot_uuids("uc7", record, [name]).items() if s == name)
    return next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["id"] == wanted)


def res(bundle: dict[str, Any], name: str) -> dict[str, Any]:
    return bundle["entry"][slot(bundle, name)]["resource"]


def first(bundle: dict[str, Any], key: str, rtype: str = "Observation") -> int:
    """The first entry whose resource (of ``rtype``) has ``key``."""
    return next(
        i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == rtype and key in e["resource"]
    )


def unknown_sctid(context: ValidationContext) -> str:
    """A SNOMED CT id with a valid Verhoeff check digit that is not in the ontology table."""
    from oncofhir.terminology import sctid_ok

    table = context.terminology.systems["http://snomed.info/sct"].codes  # type: ignore[union-attr]
    return next(f"12345{d}" for d in "0123456789" if sctid_ok(f"12345{d}") and f"12345{d}" not in table)


def _wrong_check_digit(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


Mutation = Callable[[dict[str, Any], ValidationContext], tuple[str, str, str]]


def m_unknown_element(b, ctx):
    i = first(b, "valueCodeableConcept")
    b["entry"][i]["resource"]["valueCodeableConcept"]["coding"][0]["colour"] = "red"
    return "structure", "unknown-element", f"Bundle.entry[{i}].resource.valueCodeableConcept.coding[0].colour"


def m_wrong_type(b, ctx):
    i = first(b, "valueQuantity")
    b["entry"][i]["resource"]["valueQuantity"]["value"] = "0.9"
    return "structure", "wrong-type", f"Bundle.entry[{i}].resource.valueQuantity.value"


def m_missing_status(b, ctx):
    i = slot(b, "sex")
    del b["entry"][i]["resource"]["status"]
    return "cardinality", "cardinality-min", f"Bundle.entry[{i}].resource.status"


def m_required_binding(b, ctx):
    i = slot(b, "sex")
    b["entry"][i]["resource"]["status"] = "done"
    return "cardinality", "required-binding", f"Bundle.entry[{i}].resource.status"


def m_bad_date(b, ctx):
    i = slot(b, "nst_1")
    b["entry"][i]["resource"]["effectivePeriod"] = {"start": "1970-01-01", "end": "1970-02-30"}
    return "structure", "invalid-date", f"Bundle.entry[{i}].resource.effectivePeriod.end"


def m_bad_date_format(b, ctx):
    i = slot(b, "nst_1")
    b["entry"][i]["resource"]["effectivePeriod"] = {"start": "1970-01-01", "end": "70-02-01"}
    return "structure", "invalid-format", f"Bundle.entry[{i}].resource.effectivePeriod.end"


def m_dangling_reference(b, ctx):
    i = slot(b, "genetics")
    b["entry"][i]["resource"]["result"][0] = {"reference": "urn:uuid:0f0f0f0f-0000-5000-8000-000000000000"}
    return "references", "reference-resolves", f"Bundle.entry[{i}].resource.result[0].reference"


def m_wrong_target(b, ctx):
    i = slot(b, "sex")
    b["entry"][i]["resource"]["subject"] = {"reference": b["entry"][slot(b, "menop")]["fullUrl"]}
    return "references", "reference-target", f"Bundle.entry[{i}].resource.subject.reference"


def m_duplicate_full_url(b, ctx):
    i, j = slot(b, "menop"), slot(b, "famhisto_b")
    b["entry"][j]["fullUrl"] = b["entry"][i]["fullUrl"]
    return "references", "bdl-7", f"Bundle.entry[{j}].fullUrl"


def m_wrong_check_digit(b, ctx):
    i = slot(b, "condition")
    coding = b["entry"][i]["resource"]["bodySite"][0]["coding"][0]
    coding["code"] = _wrong_check_digit(coding["code"])
    return "terminology", "check-digit", f"Bundle.entry[{i}].resource.bodySite[0].coding[0].code"


def m_wrong_loinc_check_digit(b, ctx):
    i = slot(b, "sex")
    coding = b["entry"][i]["resource"]["code"]["coding"][0]
    coding["code"] = _wrong_check_digit(coding["code"])
    return "terminology", "check-digit", f"Bundle.entry[{i}].resource.code.coding[0].code"


def m_unknown_code(b, ctx):
    i = slot(b, "condition")
    b["entry"][i]["resource"]["bodySite"][0]["coding"][0]["code"] = unknown_sctid(ctx)
    return "terminology", "unknown-code", f"Bundle.entry[{i}].resource.bodySite[0].coding[0].code"


def m_wrong_display(b, ctx):
    i = slot(b, "condition")
    b["entry"][i]["resource"]["bodySite"][0]["coding"][0]["display"] = "Liver"
    return "terminology", "wrong-display", f"Bundle.entry[{i}].resource.bodySite[0].coding[0].display"


def m_unknown_system(b, ctx):
    i = slot(b, "condition")
    b["entry"][i]["resource"]["bodySite"][0]["coding"][0]["system"] = "http://example.org/sites"
    return "terminology", "unknown-system", f"Bundle.entry[{i}].resource.bodySite[0].coding[0].system"


def m_invalid_ucum(b, ctx):
    i = slot(b, "condition")
    b["entry"][i]["resource"]["onsetAge"]["code"] = "yr//"
    return "terminology", "ucum-syntax", f"Bundle.entry[{i}].resource.onsetAge.code"


def m_wrong_unit_display(b, ctx):
    i = slot(b, "condition")
    b["entry"][i]["resource"]["onsetAge"]["unit"] = "years"
    return "terminology", "unit-display", f"Bundle.entry[{i}].resource.onsetAge.unit"


def m_broken_invariant(b, ctx):
    i = slot(b, "sex")
    b["entry"][i]["resource"]["dataAbsentReason"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"}]
    }
    b["entry"][i]["resource"]["dataAbsentReason"]["coding"][0]["display"] = "Unknown"
    return "invariants", "obs-6", f"Bundle.entry[{i}].resource"


def m_datatype_invariant(b, ctx):
    i = slot(b, "condition")
    b["entry"][i]["resource"]["onsetAge"]["value"] = -5
    return "invariants", "age-1", f"Bundle.entry[{i}].resource.onsetAge"


def m_quantity_invariant(b, ctx):
    i = slot(b, "condition")
    del b["entry"][i]["resource"]["onsetAge"]["system"]
    return "invariants", "qty-3", f"Bundle.entry[{i}].resource.onsetAge"


def m_empty_element(b, ctx):
    i = slot(b, "condition")
    b["entry"][i]["resource"]["bodySite"][0] = {}
    return "invariants", "ele-1", f"Bundle.entry[{i}].resource.bodySite[0]"


def m_empty_array(b, ctx):
    i = slot(b, "sex")
    b["entry"][i]["resource"]["category"] = []
    return "structure", "empty-array", f"Bundle.entry[{i}].resource.category"


def m_two_choice_types(b, ctx):
    i = slot(b, "sex")
    b["entry"][i]["resource"]["valueQuantity"] = {"value": 1}
    return "cardinality", "cardinality-choice", f"Bundle.entry[{i}].resource.valueQuantity"


def m_bad_extension_code(b, ctx):
    i = first(b, "dataAbsentReason")
    b["entry"][i]["resource"]["note"] = [
        {
            "_text": {
                "extension": [
                    {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "nope"}
                ]
            }
        }
    ]
    return "cardinality", "required-binding", f"Bundle.entry[{i}].resource.note[0].text.extension[0].valueCode"


def m_missing_required_resource(b, ctx):
    del b["entry"][slot(b, "condition")]
    return "profile", "model-required", "Bundle.entry"


def m_resource_outside_model(b, ctx):
    extra = copy.deepcopy(res(b, "sex"))
    extra["id"] = "0f0f0f0f-0000-5000-8000-000000000001"
    b["entry"].append({"fullUrl": f"urn:uuid:{extra['id']}", "resource": extra})
    return "profile", "model-slot", f"Bundle.entry[{len(b['entry']) - 1}].resource"


def m_code_outside_slot(b, ctx):
    i = slot(b, "sex")
    b["entry"][i]["resource"]["code"] = copy.deepcopy(res(b, "menop")["code"])
    return "profile", "model-code", f"Bundle.entry[{i}].resource.code.coding[0].code"


def m_element_outside_slot(b, ctx):
    i = slot(b, "sex")
    b["entry"][i]["resource"]["bodySite"] = copy.deepcopy(res(b, "condition")["bodySite"][0])
    return "profile", "model-element", f"Bundle.entry[{i}].resource.bodySite"


def m_other_dictionary_version(b, ctx):
    b["meta"]["source"] = b["meta"]["source"].rsplit(":", 1)[0] + ":0.9.0"
    return "profile", "model-bundle", "Bundle.meta.source"


CORPUS: dict[str, Mutation] = {name[2:]: fn for name, fn in globals().items() if name.startswith("m_")}


def located(issues: list[Issue], bundle: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """Issues keyed by the resource id instead of the entry index (so deleting an entry shifts nothing)."""
    out = set()
    for i in issues:
        loc = i.location
        if loc.startswith("Bundle.entry["):
            index = int(loc[len("Bundle.entry[") : loc.index("]")])
            if index < len(bundle["entry"]):
                loc = bundle["entry"][index]["resource"].get("id", "?") + loc[loc.index("]") + 1 :]
        out.add((i.layer, i.rule, i.severity, loc))
    return out


@pytest.mark.parametrize("defect", sorted(CORPUS))
def test_each_defect_is_caught_once_by_its_layer(
    base: dict[str, Any], contexts: dict[str, ValidationContext], defect: str
):
    context = contexts["uc7"]
    broken = copy.deepcopy(base)
    layer, rule, location = CORPUS[defect](broken, context)
    before = located(validate_bundle(base, context), base)
    issues = validate_bundle(broken, context)
    new = [i for i in issues if (i.layer, i.rule, i.severity, next(iter(located([i], broken)))[3]) not in before]
    assert [(i.layer, i.rule, i.location) for i in new] == [(layer, rule, location)], [str(i) for i in new]
    assert new[0].severity == "error" and new[0].message


def test_corpus_covers_the_issue_list():
    """The defects the issue names, plus one per remaining rule family."""
    assert {
        "unknown_element",
        "wrong_type",
        "missing_status",
        "required_binding",
        "bad_date",
        "dangling_reference",
        "duplicate_full_url",
        "wrong_check_digit",
        "unknown_code",
        "wrong_display",
        "invalid_ucum",
        "broken_invariant",
        "missing_required_resource",
    } <= set(CORPUS)


def test_not_a_bundle_and_not_json(tmp_path: Path, contexts: dict[str, ValidationContext]):
    (tmp_path / "a.json").write_text('{"resourceType": "Patient"}', encoding="utf-8")
    (tmp_path / "b.json").write_text("{not json", encoding="utf-8")
    found = {src: bundle for src, bundle in read_bundles([tmp_path])}
    assert [i.rule for i in validate_bundle(found["a.json"], contexts["uc7"])] == ["not-a-bundle"]
    assert not isinstance(found["b.json"], dict)


# -- the design for speed loses nothing -------------------------------------------------------------------------------
def test_cached_and_projected_invariants_equal_direct_fhirpath(
    base: dict[str, Any], demo: dict[str, Path], contexts: dict[str, ValidationContext]
):
    """Every invariant at every node of several bundles (and broken ones): the engine's answer (footprint
    projection, split operators, cache, poisoned %resource) equals fhirpathpy on the whole node."""
    import fhirpathpy
    from fhirpathpy.engine.nodes import ResourceNode
    from fhirpathpy.models import models

    from oncofhir.validate.fhirpath import OPTIONS
    from oncofhir.validate.invariants import type_path_of
    from oncofhir.validate.walk import walk

    context = contexts["uc7"]
    inv = context.invariants
    direct: dict[str, Any] = {}
    samples = bundles_of(demo["uc7"])[:8] + bundles_of(demo["uc45"])[:4]
    for name in ("broken_invariant", "datatype_invariant", "empty_element", "bad_date"):
        broken = copy.deepcopy(base)
        CORPUS[name](broken, context)
        samples.append(broken)
    checked = 0
    for bundle in samples:
        for entry in bundle["entry"]:
            resource = entry["resource"]
            for node in walk(context.defs, resource):
                for key in inv.keys(node):
                    fn = direct.setdefault(
                        key,
                        fhirpathpy.compile(context.defs.constraints[key]["expression"], models["r4"], OPTIONS),
                    )
                    path = type_path_of(node)
                    value = ResourceNode.create_node(node.value, path) if path else node.value
                    try:
                        expected = fn(value, {"resource": resource, "rootResource": resource}) == [True]
                    except Exception:
                        continue  # fhirpathpy cannot evaluate it whole (the engine reports a warning then)
                    got = inv.evaluator.evaluate(key, node.value, resource, resource, path).passed
                    assert got == expected, (key, node.location, node.value)
                    checked += 1
    assert checked > 1000


def test_normalized_bundle_shell_gives_the_same_bundle_invariants(
    base: dict[str, Any], demo: dict[str, Path], contexts: dict[str, ValidationContext]
):
    import fhirpathpy
    from fhirpathpy.models import models

    from oncofhir.validate.fhirpath import OPTIONS
    from oncofhir.validate.invariants import normalized_shell

    defs = contexts["uc7"].defs
    keys = [k for k in defs.types["Bundle"].constraints if k.startswith("bdl") and k != "bdl-7"]
    variants = [base, *bundles_of(demo["uc1"])[:3]]
    for kind in ("searchset", "document", "history", "transaction"):
        b = copy.deepcopy(base)
        b["type"] = kind
        b["entry"][1]["search"] = {"mode": "match"}
        b["entry"][2]["request"] = {"method": "POST", "url": "Observation"}
        b["entry"][3]["fullUrl"] = "http://example.org/fhir/Observation/1/_history/2"
        variants.append(b)
    for bundle in variants:
        shell = {
            **bundle,
            "entry": [{**e, "resource": {"resourceType": e["resource"]["resourceType"]}} for e in bundle["entry"]],
        }
        normalized, _ = normalized_shell(bundle)
        for key in keys:
            fn = fhirpathpy.compile(defs.constraints[key]["expression"], models["r4"], OPTIONS)
            full = fn(shell, {"resource": shell, "rootResource": shell})
            small = fn(normalized, {"resource": normalized, "rootResource": normalized})
            assert full == small, (key, bundle["type"])


def test_cache_reuses_validation_across_patients(demo: dict[str, Path], contexts: dict[str, ValidationContext]):
    context = ValidationContext.create(load_compiled(demo["uc7"] / "dict.json"))
    for b in bundles_of(demo["uc7"]):
        validate_bundle(b, context)
    stats = context.stats
    assert stats["distinct"] < stats["resources"] / 2


# -- the stage and the command ----------------------------------------------------------------------------------------
def test_stage_writes_the_report(demo: dict[str, Path], tmp_path: Path):
    out = tmp_path / "validation" / "uc1" / "hospital_a"
    summary = stage_validate(demo["uc1"] / "dict.json", demo["uc1"] / "center.ndjson", out, fail_on_error=False)
    assert {p.name for p in out.iterdir()} == {"issues.json", "issues.tsv", "summary.json"}
    assert summary["bundles"] == len(bundles_of(demo["uc1"]))
    assert summary["center"] == "hospital_a" and summary["use_case"] == "uc1"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["line"].startswith("uc1/hospital_a: ")
    rows = json.loads((out / "issues.json").read_text())
    tsv = (out / "issues.tsv").read_text().splitlines()
    assert len(tsv) == len(rows) + 1
    assert tsv[0].split("\t")[:6] == ["record_id", "pseudonym", "source", "bundle", "layer", "rule"]
    assert sum(on_disk["by_severity"].values()) == len(rows)
    assert (out / "issues.json").stat().st_mode & 0o777 == 0o600


def test_issues_name_the_record_and_pseudonym(demo: dict[str, Path], tmp_path: Path):
    """The NDJSON the issues point into is deleted once encrypted: each issue names its record id and pseudonym."""
    out = tmp_path / "validation"
    index = demo["uc7"] / "index.tsv"
    stage_validate(demo["uc7"] / "dict.json", demo["uc7"] / "center.ndjson", out, fail_on_error=False, index=index)
    first = index.read_text().splitlines()[1].split("\t")  # record_id, patient_key, file, bundle_id, resources
    rows = [line.split("\t") for line in (out / "issues.tsv").read_text().splitlines()[1:]]
    assert rows, "the uc7 demo has warnings"
    mine = [r for r in rows if r[3] == first[3]]
    assert mine and {(r[0], r[1], r[2]) for r in mine} == {(first[0], first[1], "center.ndjson:1")}
    assert all(r[0] and r[1] for r in rows)  # every issue's bundle is in the index
    issues = json.loads((out / "issues.json").read_text())
    assert (issues[0]["record_id"], issues[0]["pseudonym"]) == (rows[0][0], rows[0][1])
    (tmp_path / "not-an-index.tsv").write_text("id\tkey\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"not-an-index.tsv: not a FHIR index written by the FHIR stage$"):
        stage_validate(
            demo["uc7"] / "dict.json",
            demo["uc7"] / "center.ndjson",
            out,
            fail_on_error=False,
            index=tmp_path / "not-an-index.tsv",
        )


def test_fail_on_error_raises_after_writing(demo: dict[str, Path], base: dict[str, Any], tmp_path: Path):
    broken = copy.deepcopy(base)
    del broken["entry"][1]["resource"]["status"]
    folder = tmp_path / "bundles"
    folder.mkdir()
    (folder / "p1.json").write_text(json.dumps(broken), encoding="utf-8")
    (folder / "p2.json").write_text(json.dumps(base), encoding="utf-8")
    out = tmp_path / "report"
    with pytest.raises(OncofhirError, match=r"1 error\(s\) in 1 of 2 bundle"):
        stage_validate(demo["uc7"] / "dict.json", folder, out, fail_on_error=True)
    rows = json.loads((out / "issues.json").read_text())
    assert [(r["source"], r["rule"]) for r in rows if r["severity"] == "error"] == [("p1.json", "cardinality-min")]


def test_command_exit_codes(demo: dict[str, Path], base: dict[str, Any], tmp_path: Path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(base), encoding="utf-8")
    code, text = run_cli("uc7", [str(good)], dictionaries=DICTIONARIES, ontologies=ONTOLOGIES)
    assert code == 0 and text.startswith(f"{good} (uc7): 1 bundles, valid; 0 errors")  # no "uc7//tmp/..."
    bad = copy.deepcopy(base)
    bad["entry"][1]["resource"]["status"] = "done"
    (tmp_path / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    code, text = run_cli("uc7", [str(tmp_path)], dictionaries=DICTIONARIES, ontologies=ONTOLOGIES, fmt="json")
    assert code == 1
    assert [r["rule"] for r in json.loads(text) if r["severity"] == "error"] == ["required-binding"]


def test_a_line_that_is_not_json_reads_without_an_empty_location(tmp_path: Path) -> None:
    """The text report printed "[structure/not-json] : not JSON" (an empty location before the colon)."""
    broken = tmp_path / "broken.ndjson"
    broken.write_text('{"resourceType": "Bund', encoding="utf-8")
    code, text = run_cli("uc1", [str(broken)], dictionaries=DICTIONARIES, ontologies=ONTOLOGIES)
    assert code == 1
    assert text.splitlines()[-1] == (
        "broken.ndjson:1: fatal [structure/not-json]: not JSON: unexpected end of data: line 1 column 23 (char 22)"
    )


# -- issue 12: FHIR rules the layers missed, and a false error (7-10) -----------------------------------------------
@pytest.fixture(scope="module")
def fhir_only(demo: dict[str, Path]) -> ValidationContext:
    """The FHIR layers without the profile (dictionary model) layer: what they find must not depend on it."""
    return ValidationContext.create(None)


def new_findings(base: dict[str, Any], broken: dict[str, Any], context: ValidationContext) -> list[tuple[str, ...]]:
    """(severity, layer, rule, location, message) of the issues ``broken`` has and ``base`` has not."""
    before = {(i.severity, i.layer, i.rule, i.location) for i in validate_bundle(base, context)}
    return [
        (i.severity, i.layer, i.rule, i.location, i.message)
        for i in validate_bundle(broken, context)
        if (i.severity, i.layer, i.rule, i.location) not in before
    ]


def observation(bundle: dict[str, Any]) -> int:
    return slot(bundle, "menop")


def test_upper_case_urn_uuid_full_url_is_an_error(base, contexts, fhir_only):
    broken = copy.deepcopy(base)
    i = observation(broken)
    old = broken["entry"][i]["fullUrl"]
    upper = "urn:uuid:" + old[len("urn:uuid:") :].upper()
    text = json.dumps(broken).replace(old, upper)  # the fullUrl and any reference to it
    broken = json.loads(text)
    expected = [
        (
            "error",
            "structure",
            "uuid-format",
            f"Bundle.entry[{i}].fullUrl",
            f"'{upper}' is not a valid urn:uuid: FHIR's uuid is 'urn:uuid:' and a UUID in lower-case hex (8-4-4-4-12)",
        )
    ]
    assert new_findings(base, broken, fhir_only) == expected
    assert new_findings(base, broken, contexts["uc7"]) == expected


DOM3 = (
    "dom-3 failed: If the resource is contained in another resource, it SHALL be referred to from elsewhere in the "
    "resource or SHALL refer to the containing resource [contained.where("
)
UNCHECKED = (
    "contained Medication is not a type oncofhir emits: only its resourceType is checked here (the HL7 validator "
    "stage checks the rest)"
)


def _contain_medication(bundle: dict[str, Any], referenced: bool) -> int:
    i = first(bundle, "medicationCodeableConcept", "MedicationAdministration")
    resource = bundle["entry"][i]["resource"]
    resource["contained"] = [{"resourceType": "Medication", "id": "med", "code": resource["medicationCodeableConcept"]}]
    if referenced:
        del resource["medicationCodeableConcept"]
        resource["medicationReference"] = {"reference": "#med"}
    return i


def test_dom3_unreferenced_contained_resource_is_an_error(base, fhir_only):
    """dom-3 is evaluated (R5's ofType() wording of the R4B expression), no longer 'could not be evaluated'."""
    broken = copy.deepcopy(base)
    i = _contain_medication(broken, referenced=False)
    found = new_findings(base, broken, fhir_only)
    assert [f[:4] for f in found] == [
        ("warning", "structure", "contained-unchecked", f"Bundle.entry[{i}].resource.contained[0]"),
        ("error", "invariants", "dom-3", f"Bundle.entry[{i}].resource"),
    ]
    assert found[0][4] == UNCHECKED
    assert found[1][4].startswith(DOM3)


def test_contained_resource_of_another_type_is_valid_fhir(base, fhir_only):
    """Issue 12.10: a Medication contained and referenced as #med passed the HL7 validator but failed our schema."""
    broken = copy.deepcopy(base)
    i = _contain_medication(broken, referenced=True)
    assert new_findings(base, broken, fhir_only) == [
        ("warning", "structure", "contained-unchecked", f"Bundle.entry[{i}].resource.contained[0]", UNCHECKED)
    ]


def test_invariant_that_cannot_be_evaluated_fails_when_error_level(fhir_only):
    inv = fhir_only.invariants
    error = inv.issue("dom-3", "Bundle.entry[1].resource", "ValueError: boom")
    assert (error.severity, error.code, error.rule) == ("error", "exception", "dom-3")
    assert error.message.startswith("dom-3 could not be evaluated (ValueError: boom): If the resource is contained")
    warning = inv.issue("dom-6", "Bundle.entry[1].resource", "ValueError: boom")
    assert (warning.severity, warning.rule) == ("warning", "dom-6")


def test_no_invariant_of_the_definitions_fails_to_evaluate(fhir_only):
    """Every invariant expression parses (dom-3 with its rewrite); a definitions change would be noticed."""
    for key in fhir_only.defs.constraints:
        fhir_only.invariants.evaluator.plan(key)


def test_primitive_extension_written_as_a_string_is_a_structure_error(base, contexts, fhir_only):
    broken = copy.deepcopy(base)
    i = observation(broken)
    broken["entry"][i]["resource"]["_status"] = "unknown"
    expected = (
        "error",
        "structure",
        "wrong-type",
        f"Bundle.entry[{i}].resource.status",
        "'_status' must be an object (the id and extensions of 'status'), not 'unknown'",
    )
    assert new_findings(base, broken, fhir_only) == [expected]
    assert expected in new_findings(base, broken, contexts["uc7"])


def test_unknown_extension_is_an_error_of_the_fhir_layers(base, contexts, fhir_only):
    broken = copy.deepcopy(base)
    i = observation(broken)
    broken["entry"][i]["resource"]["extension"] = [{"url": "http://example.org/unknown-ext", "valueString": "x"}]
    expected = (
        "error",
        "cardinality",
        "extension-unknown",
        f"Bundle.entry[{i}].resource.extension[0]",
        "extension 'http://example.org/unknown-ext' is not one oncofhir knows (known: "
        "http://hl7.org/fhir/StructureDefinition/data-absent-reason)",
    )
    assert new_findings(base, broken, fhir_only) == [expected]
    assert expected in new_findings(base, broken, contexts["uc7"])


def test_a_missing_patient_is_one_reference_finding(base, contexts, fhir_only):
    """Issue 12.11: a deleted Patient gave 43 errors (one per reference to it, plus the profile's)."""
    broken = copy.deepcopy(base)
    patient = broken["entry"].pop(0)
    found = [(i.severity, i.layer, i.rule, i.location, i.message) for i in validate_bundle(broken, contexts["uc7"])]
    refs = sum(json.dumps(e["resource"]).count(patient["fullUrl"]) for e in broken["entry"])
    assert refs == 41  # the first valid uc7 demo bundle's references to its Patient
    dangling = (
        "error",
        "references",
        "reference-resolves",
        "Bundle.entry[0].resource.subject.reference",
        f"reference '{patient['fullUrl']}' does not resolve to an entry of this bundle (nor do the 40 other "
        "references to it)",
    )
    assert [f for f in found if f[0] == "error"] == [
        dangling,
        ("error", "profile", "model-patient", "Bundle.entry", "a bundle holds exactly one Patient; found 0"),
    ]
    assert [f for f in (new_findings(base, broken, fhir_only)) if f[0] == "error"] == [dangling]
