"""Every mapping construct, on a test use case (tests/data/tst) built for the purpose."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import ONTOLOGIES

from oncofhir.dictionary import compile_dictionary
from oncofhir.fhir.builder import BundleBuilder, resource_uuid

TST = Path(__file__).parent / "data" / "tst"
SYSTEM = "urn:test:record-id"
DAR_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
SCT = "http://snomed.info/sct"


@pytest.fixture(scope="module")
def builder() -> BundleBuilder:
    return BundleBuilder(compile_dictionary(TST, ONTOLOGIES), SYSTEM)


def build(builder: BundleBuilder, **values: str) -> dict[str, dict[str, Any]]:
    """Build one record; return its resources keyed by slot id (found through the deterministic ids)."""
    columns = [f for f in builder.dd.fields]
    rec = {c: "" for c in columns} | {"record_id": "R1"} | values
    (built,) = list(builder.build([rec], {c: [rec[c]] for c in columns}, [2]))
    assert built.reason is None
    by_id = {e["resource"]["id"]: e["resource"] for e in built.bundle["entry"]}
    slots = {r["id"]: by_id.get(resource_uuid("tst", "R1", r["id"])) for r in builder.dd.resources}
    return {k: v for k, v in slots.items() if v is not None} | {"_bundle": built.bundle}


def dar(reason: str) -> dict[str, Any]:
    return {"extension": [{"url": DAR_URL, "valueCode": reason}]}


def test_bundle_envelope_and_patient(builder: BundleBuilder) -> None:
    res = build(builder, sex="1", dead="1")
    bundle = res["_bundle"]
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    assert bundle["id"] == resource_uuid("tst", "R1") == "0e2f3008-34e4-5862-9fe2-d74fca6f1b0c"
    assert bundle["meta"] == {"source": "urn:oncofhir:dictionary:tst:0.0.1"}
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == "urn:uuid:" + entry["resource"]["id"]
    assert res["patient"] == {
        "resourceType": "Patient",
        "id": resource_uuid("tst", "R1", "patient"),
        "identifier": [{"system": SYSTEM, "value": "R1"}],
        "gender": "female",
        "deceasedBoolean": True,
    }


def test_patient_unknown_and_blank_are_omitted(builder: BundleBuilder) -> None:
    assert "deceasedBoolean" not in build(builder, dead="2")["patient"]
    assert "gender" not in build(builder)["patient"]


def test_coded_observation_and_category(builder: BundleBuilder) -> None:
    obs = build(builder, sex="0")["sex"]
    assert obs == {
        "resourceType": "Observation",
        "id": resource_uuid("tst", "R1", "sex"),
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "social-history",
                        "display": "Social History",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "76689-9", "display": "Sex assigned at birth"}]},
        "subject": {"reference": "urn:uuid:" + resource_uuid("tst", "R1", "patient")},
        "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA2-8", "display": "Male"}]},
    }


def test_blank_and_invalid_codes_are_explicit(builder: BundleBuilder) -> None:
    blank = build(builder)["sex"]
    assert "valueCodeableConcept" not in blank
    assert blank["dataAbsentReason"] == {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                "code": "unknown",
                "display": "Unknown",
            }
        ]
    }
    invalid = build(builder, sex="7")["sex"]
    assert invalid["dataAbsentReason"]["coding"][0]["code"] == "error"
    assert invalid["dataAbsentReason"]["text"] == "sex: '7' is not a permissible value"
    assert build(builder, sex="1.00")["sex"]["valueCodeableConcept"]["coding"][0]["code"] == "LA3-6"
    for odd in ("1e0", "+1", "1.5", "01"):  # only a spreadsheet's trailing ".0" is tolerated
        assert build(builder, sex=odd)["sex"]["dataAbsentReason"]["coding"][0]["code"] == "error", odd


def test_condition_elements(builder: BundleBuilder) -> None:
    cond = build(builder, age="67", gene="1", grade="3")["condition"]
    assert cond["code"] == {
        "coding": [{"system": SCT, "code": "95214007", "display": "Primary malignant neoplasm of liver (disorder)"}]
    }
    assert cond["bodySite"] == [
        {"coding": [{"system": SCT, "code": "10200004", "display": "Liver structure (body structure)"}]}
    ]
    assert cond["onsetAge"] == {"value": 67, "unit": "year", "system": "http://unitsofmeasure.org", "code": "a"}
    assert cond["verificationStatus"]["coding"][0]["code"] == "refuted"
    assert cond["evidence"] == [
        {
            "code": [
                {
                    "coding": [
                        {
                            "system": SCT,
                            "code": "1228845001",
                            "display": "American Joint Committee on Cancer grade GX (qualifier value)",
                        }
                    ]
                }
            ]
        }
    ]


@pytest.mark.parametrize(
    ("age", "expected"),
    [("", dar("unknown")), ("abc", dar("error")), ("150", dar("error")), ("0", dar("error")), ("67.0", 67)],
)
def test_age_blank_invalid_out_of_range(builder: BundleBuilder, age: str, expected: Any) -> None:
    onset = build(builder, age=age)["condition"]["onsetAge"]
    assert onset.get("value", onset) == expected


def test_quantity_and_fixed_method(builder: BundleBuilder) -> None:
    obs = build(builder, ki67="12.5")["ki67"]
    assert obs["valueQuantity"] == {
        "value": 12.5,
        "unit": "percent",
        "system": "http://unitsofmeasure.org",
        "code": "%",
    }
    assert obs["method"]["coding"][0]["code"] == "C120494"
    bad = build(builder, ki67="12,5")["ki67"]
    assert bad["dataAbsentReason"]["text"] == "ki67: '12,5' is not a number"


def test_branching_hides_element_and_period_from_epoch(builder: BundleBuilder) -> None:
    yes = build(builder, flag="0", flag_dur="6")["lactation"]
    assert yes["effectivePeriod"] == {"start": "1970-01-01", "end": "1970-07-01"}
    assert yes["note"] == [{"text": "Anonymised dates."}]
    assert build(builder, flag="0", flag_dur="1.5")["lactation"]["effectivePeriod"]["end"] == "1970-02-16"
    assert build(builder, flag="0")["lactation"]["effectivePeriod"] == dar("unknown")
    assert build(builder, flag="0", flag_dur="-2")["lactation"]["effectivePeriod"] == dar("error")
    hidden = build(builder, flag="1", flag_dur="6")["lactation"]  # branching hides flag_dur: not applicable
    assert "effectivePeriod" not in hidden


def test_answer_with_components_and_note(builder: BundleBuilder) -> None:
    obs = build(builder, subtype="1")["subtype"]
    assert "valueCodeableConcept" not in obs
    assert [c["code"]["coding"][0]["code"] for c in obs["component"]] == ["16112-5", "16113-3"]
    assert [c["valueCodeableConcept"]["coding"][0]["code"] for c in obs["component"]] == ["10828004", "10828004"]
    assert obs["note"] == [{"text": "Luminal A"}]
    assert build(builder, subtype="0")["subtype"]["valueCodeableConcept"]["coding"][0]["code"] == "373066001"


def test_procedure_status(builder: BundleBuilder) -> None:
    assert build(builder, chemo="1")["chemo"]["status"] == "stopped"
    assert build(builder)["chemo"]["status"] == "unknown"
    assert build(builder, chemo="9")["chemo"]["status"] == "unknown"


def test_medication_administration_dosage(builder: BundleBuilder) -> None:
    med = build(builder, chemo="2", drug="0", dose="600", unit="0", cycles="6", weeks="18")["med1"]
    assert med["status"] == "completed"
    assert med["medicationCodeableConcept"]["coding"][0] == {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "194000",
        "display": "capecitabine",
    }
    assert med["effectivePeriod"] == {"start": "1970-01-01", "end": "1970-05-07"}
    mg = {"unit": "milligram per square meter", "system": "http://unitsofmeasure.org", "code": "mg/m2"}
    assert med["dosage"] == {
        "dose": {"value": 600, **mg},
        "rateRatio": {
            "numerator": {"value": 600, **mg},
            "denominator": {"value": 6, "unit": "cycle", "system": "http://unitsofmeasure.org", "code": "{cycle}"},
        },
    }


def test_medication_unit_blank_and_hidden_slot(builder: BundleBuilder) -> None:
    med = build(builder, chemo="2", drug="1", dose="50")["med1"]
    assert med["dosage"]["dose"] == {"value": 50, "system": "http://unitsofmeasure.org", "_code": dar("unknown")}
    assert med["dosage"]["rateRatio"]["denominator"] == dar("unknown")
    assert med["effectivePeriod"] == dar("unknown")
    not_done = build(builder, chemo="0")  # branching hides drug: no administration at all
    assert "med1" not in not_done
    blank = build(builder, chemo="2")["med1"]  # shown but blank: explicit
    assert blank["medicationCodeableConcept"] == dar("unknown")
    assert "dosage" not in blank  # dose, unit, cycles are hidden by [drug] <> ''


def test_if_blank_omit_and_diagnostic_report(builder: BundleBuilder) -> None:
    res = build(builder, chemo="2", drug="0")
    assert "med2" not in res  # shown (drug given) but blank: an absent second agent is not missing data
    res = build(builder, chemo="2", drug="0", drug_2="1", gene="0")
    assert res["med2"]["status"] == "completed"
    report = res["report"]
    assert report["status"] == "final"
    assert report["result"] == [{"reference": "urn:uuid:" + resource_uuid("tst", "R1", "palb2")}]


def test_deterministic_and_order_independent(builder: BundleBuilder) -> None:
    columns = list(builder.dd.fields)
    recs = [{c: "" for c in columns} | {"record_id": rid, "sex": "0"} for rid in ("A", "B", "C")]
    first = list(builder.build(recs, {c: [r[c] for r in recs] for c in columns}, [2, 3, 4]))
    rev = recs[::-1]
    second = list(builder.build(rev, {c: [r[c] for r in rev] for c in columns}, [2, 3, 4]))
    assert {b.record_id: b.bundle for b in first} == {b.record_id: b.bundle for b in second}


@pytest.mark.parametrize(("record_id", "slot"), [("R1", None), ("R1", "sex"), ("../ü x", "med1")])
def test_fast_uuid_equals_the_standard_library(record_id: str, slot: str | None) -> None:
    import uuid

    from oncofhir import NAMESPACE

    name = f"tst/{record_id}" + (f"/{slot}" if slot else "")
    assert resource_uuid("tst", record_id, slot) == str(uuid.uuid5(NAMESPACE, name))
