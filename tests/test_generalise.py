"""Generalisation of the deposit copy (issue #16, its last sentence): rules as data in mapping.yaml, checked when
compiling; the plan from pooled counts; k and l before and after; the encrypted bundles and NDJSON generalised while
the local NDJSON keeps the exact values; the generalised FHIR valid; the round trip recorded per center.

The crafted center (uc45, 12 deposited women): rows 0-4 aged 60-64, rows 5-9 aged 65-69, all adenocarcinoma NOS
(histopat 0); row 10 aged 87 with MiNEN (2), row 11 aged 88 neuroendocrine NOS (4); grade alternating 0/1. Every
record is unique before (k = 1); 5-year bands and grouping the codes held by fewer than 3 records leave three
classes of 5, 5 and 2 (k = 2), each with both grades (l = 2).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES

from oncofhir.demo import generate
from oncofhir.dictionary import compile_dictionary, load_compiled
from oncofhir.errors import DictionaryError
from oncofhir.pipeline import stage_compile, stage_fhir, stage_ingest
from oncofhir.privacy import count_classes, stage_privacy, write_counts

RULES = (
    "  generalise:\n"
    "    - {variable: onsetage, bands: 5}\n"
    "    - {variable: histopat, group_rare_below: 3, into: icdo3:8000/3}\n"
)
ICDO3_SYSTEM = "http://terminology.hl7.org/CodeSystem/icd-o-3"
GROUPED = {"system": ICDO3_SYSTEM, "code": "8000/3", "display": "Neoplasm, malignant"}
ABSTRED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "ABSTRED",
    "display": "abstracted",
}
AGES = [60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 87, 88]
HISTOLOGY = ["0"] * 10 + ["2", "4"]


def with_rules(tmp: Path, rules: str = RULES, use_case: str = "uc45") -> tuple[Path, Path]:
    """A copy of the dictionaries with ``rules`` under uc45's privacy block, and of the code tables with the
    ICD-O-3 code the grouping rule names (8000/3, "Neoplasm, malignant": the parent of every malignant morphology)."""
    dictionaries, ontologies = tmp / "dictionaries", tmp / "ontologies"
    shutil.copytree(DICTIONARIES, dictionaries)
    shutil.copytree(ONTOLOGIES, ontologies)
    with (ontologies / "icdo3.tsv").open("a", encoding="utf-8") as handle:
        handle.write("8000/3\tNeoplasm, malignant\t20220429\n")
    mapping = dictionaries / use_case / "mapping.yaml"
    text = mapping.read_text(encoding="utf-8")
    assert "  sensitive: grade\n" in text
    mapping.write_text(text.replace("  sensitive: grade\n", "  sensitive: grade\n" + rules), encoding="utf-8")
    return dictionaries, ontologies


def crafted_export(dd, center: str = "hospital_a") -> str:
    """12 generated uc45 records whose quasi-identifiers and grade are overwritten as the module docstring says."""
    rows, seen = [], set()
    for row in csv.DictReader(io.StringIO(generate(dd, center, 16, seed=5))):
        if row["record_id"] and row["record_id"] not in seen:  # not the generator's duplicate and blank ids
            seen.add(row["record_id"])
            rows.append(row)
    rows = rows[:12]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for i, row in enumerate(rows):
        writer.writerow(row | {"sex": "1", "onsetage": str(AGES[i]), "histopat": HISTOLOGY[i], "grade": str(i % 2)})
    return out.getvalue()


# ---- the rules checked when compiling ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        (
            "  generalise: [{variable: age_dx, bands: 5}]\n",
            "privacy, generalise rule 1 (age_dx): unknown variable 'age_dx' (not in the REDCap dictionary)",
        ),
        (
            "  generalise: [{variable: histopat, bands: 5}]\n",
            "privacy, generalise rule 1 (histopat): bands need an integer variable, 'histopat' is 'dropdown' (a "
            "Range's bounds are inclusive)",
        ),
        (
            "  generalise: [{variable: onsetage, group_rare_below: 5, into: icdo3:8000/3}]\n",
            "privacy, generalise rule 1 (onsetage): 'onsetage' feeds Condition 'condition' onsetAge as a quantity "
            "(a FHIR code or a quantity's unit), which cannot take the grouped concept: only CodeableConcepts can",
        ),
        (
            "  generalise: [{variable: onsetage, bands: 5}, {variable: grade, group_rare_below: 5, "
            "into: icdo3:8000/3}]\n",
            "privacy, generalise rule 2 (grade): 'grade' is not a quasi-identifier: list it in "
            "privacy.quasi_identifiers, so that the report measures what the rule changes",
        ),
        (
            "  generalise: [{variable: onsetage, bands: 5}, {variable: onsetage, bands: 10}]\n",
            "privacy, generalise rule 2 (onsetage): a second rule for 'onsetage' (one rule per variable)",
        ),
        (
            "  generalise: [{variable: center, bands: 5}]\n",
            "privacy, generalise rule 1 (center): 'center' cannot be generalised (it names the deposit's files)",
        ),
        (
            "  generalise: [{variable: histopat, group_rare_below: 5, into: icdo3:9999/3}]\n",
            "privacy, generalise rule 1 (histopat), into: code '9999/3' is not in resources/ontologies/icdo3.tsv",
        ),
    ],
)
def test_a_bad_rule_fails_compiling_naming_the_rule(tmp_path: Path, rules: str, problem: str) -> None:
    dictionaries, ontologies = with_rules(tmp_path, rules)
    with pytest.raises(DictionaryError) as err:
        compile_dictionary(dictionaries / "uc45", ontologies)
    assert problem in [p.replace(str(ontologies), "resources/ontologies") for p in err.value.details], err.value


def test_a_rule_outside_the_schema_names_its_key(tmp_path: Path) -> None:
    dictionaries, ontologies = with_rules(tmp_path, "  generalise: [{variable: onsetage, bands: 1}]\n")
    with pytest.raises(DictionaryError, match="mapping does not follow"):
        compile_dictionary(dictionaries / "uc45", ontologies)


def test_the_shipped_dictionaries_declare_no_rule(compiled) -> None:
    """The data manager opts in per use case: nothing is generalised unless mapping.yaml says so."""
    from helpers import USE_CASES

    assert {uc: compiled[uc].privacy.get("generalise") for uc in USE_CASES} == dict.fromkeys(USE_CASES)


# ---- the stages: counts, privacy report, encryption with the plan ------------------------------------------------


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The crafted center through compile, ingest, FHIR, counts and the privacy stage (k = 5, block)."""
    tmp = tmp_path_factory.mktemp("generalise")
    dictionaries, ontologies = with_rules(tmp)
    dictionary = tmp / "uc45.json"
    stage_compile(dictionaries / "uc45", ontologies, dictionary)
    dd = load_compiled(dictionary)
    export = tmp / "export.csv"
    export.write_text(crafted_export(dd), encoding="utf-8")
    stage_ingest(dictionary, export, tmp / "records.csv", tmp / "rejects.tsv", tmp / "ingest.json")
    stage_fhir(
        dictionary,
        tmp / "records.csv",
        tmp / "rejects.tsv",
        tmp / "ingest.json",
        tmp / "bundles",
        tmp / "center.ndjson",
        tmp / "index.tsv",
        tmp / "rejects-all.tsv",
        tmp / "summary.json",
    )
    counts = tmp / "counts.tsv"
    write_counts(dd, count_classes(dd, tmp / "records.csv", tmp / "index.tsv", "hospital_a"), counts)
    stage_privacy(dictionary, [counts], tmp / "uc45.json.privacy", tmp / "uc45.tsv", 5, "block")
    return {"tmp": tmp, "dictionary": dictionary, "ontologies": ontologies, "privacy": tmp / "uc45.json.privacy"}


def test_k_and_l_before_and_after_generalisation(center) -> None:
    result = json.loads(center["privacy"].read_text(encoding="utf-8"))
    assert (result["records"], result["classes"], result["k"], result["l"], result["records_below_k"]) == (
        12,
        12,
        1,
        1,
        12,
    )
    after = result["after_generalisation"]
    assert {k: after[k] for k in ("records", "classes", "k", "l", "records_below_k", "classes_below_k")} == {
        "records": 12,
        "classes": 3,
        "k": 2,
        "l": 2,
        "records_below_k": 2,
        "classes_below_k": 1,
    }
    assert after["smallest_classes"][0]["values"] == {
        "center": "hospital_a",
        "sex": "1",
        "onsetage": "85-89",
        "histopat": "(grouped)",
    }
    assert result["generalisation"]["rules"] == [
        "onsetage in 5-unit bands",
        "histopat: codes held by fewer than 3 deposited records grouped into icdo3:8000/3 (Neoplasm, malignant)",
    ]
    assert result["generalisation"]["plan"][1]["rare_codes"] == ["2", "4"]
    # block decides on k after generalisation, and says so
    assert result["release"]["blocked"] is True
    assert result["release"]["message"].startswith(
        "use case uc45: k-anonymity after generalisation is 2, below privacy.k = 5: 2 of 12 record(s) are in 1 "
        "class(es) smaller than 5 over center, sex, onsetage, histopat"
    )


def test_block_releases_a_use_case_that_generalisation_brings_to_k(center) -> None:
    """k = 2 after generalisation: privacy.k = 2 releases it under block though k = 1 before."""
    out = center["tmp"] / "k2.json"
    stage_privacy(center["dictionary"], [center["tmp"] / "counts.tsv"], out, center["tmp"] / "k2.tsv", 2, "block")
    result = json.loads(out.read_text(encoding="utf-8"))
    assert (result["k"], result["after_generalisation"]["k"], result["release"]["blocked"]) == (1, 2, False)
    from oncofhir.privacy.html import privacy_section

    html = str(privacy_section([out]))
    assert "onsetage in 5-unit bands; histopat: codes held by fewer than 3" in html
    assert "meets k" in html


@pytest.fixture(scope="module")
def deposit(center) -> dict[str, Path]:
    """The crafted center encrypted with the report's plan (as the workflow's encrypt job does)."""
    from oncofhir.deposit.encrypt import stage_encrypt
    from oncofhir.deposit.keys import generate_keypair

    tmp = center["tmp"]
    generate_keypair(tmp / "ega.sec", tmp / "ega.pub")
    stage_encrypt(
        None,
        tmp / "center.ndjson",
        tmp / "ega" / "uc45" / "hospital_a",
        tmp / "ega" / "uc45" / "hospital_a.manifest.tsv",
        use_case="uc45",
        center="hospital_a",
        recipients=[str(tmp / "ega.pub")],
        expect_pseudonyms=False,
        threads=2,
        index=tmp / "index.tsv",
        fhir_summary=tmp / "summary.json",
        generalise=(center["dictionary"], center["privacy"]),
        generalised_out=tmp / "hospital_a.generalised.json",
    )
    return {"tmp": tmp, "ega": tmp / "ega" / "uc45" / "hospital_a"}


def _decrypt(path: Path, secret: Path) -> bytes:
    from crypt4gh import lib

    from oncofhir.deposit.keys import load_private_key

    out = io.BytesIO()
    with open(path, "rb") as handle:
        lib.decrypt([(0, load_private_key(secret), None)], handle, out)
    return out.getvalue()


def _resources(bundle: dict, rtype: str, note: str | None = None) -> list[dict]:
    found = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]
    return [r for r in found if note is None or any(n.get("text") == note for n in r.get("note", []))]


def _by_age(bundles: list[dict]) -> dict:
    """bundle -> its onset element (the cancer's Condition: the one with onsetAge or onsetRange)."""
    out = {}
    for b in bundles:
        (cancer,) = [r for r in _resources(b, "Condition") if "onsetAge" in r or "onsetRange" in r]
        (histology,) = _resources(b, "Condition", "Histological type of tumour")
        out[b["entry"][0]["resource"]["identifier"][0]["value"]] = (cancer, histology)
    return out


def test_the_deposit_copy_is_generalised_and_the_local_copy_is_not(deposit) -> None:
    tmp = deposit["tmp"]
    local = [json.loads(line) for line in (tmp / "center.ndjson").read_text(encoding="utf-8").splitlines()]
    plain = _decrypt(deposit["ega"] / "uc45.hospital_a.ndjson.c4gh", tmp / "ega.sec")
    shared = [json.loads(line) for line in plain.decode("utf-8").splitlines()]
    assert len(shared) == len(local) == 12
    before, after = _by_age(local), _by_age(shared)
    ages = sorted(cancer["onsetAge"]["value"] for cancer, _ in before.values())
    assert ages == AGES  # the local NDJSON keeps the exact ages
    bands = sorted((c["onsetRange"]["low"]["value"], c["onsetRange"]["high"]["value"]) for c, _ in after.values())
    assert bands == [(60, 64)] * 5 + [(65, 69)] * 5 + [(85, 89)] * 2
    unit = {"unit": "year", "system": "http://unitsofmeasure.org", "code": "a"}
    cancer, _ = after[next(iter(after))]
    assert cancer["onsetRange"]["low"] == {"value": cancer["onsetRange"]["low"]["value"], **unit}
    assert "onsetAge" not in cancer and ABSTRED in cancer["meta"]["security"]
    codes = sorted(h["code"]["coding"][0]["code"] for _, h in after.values())
    assert codes == ["8000/3", "8000/3"] + ["8140/3"] * 10
    grouped = [h for _, h in after.values() if h["code"]["coding"][0]["code"] == "8000/3"]
    assert all(h["code"] == {"coding": [GROUPED]} and h["meta"]["security"] == [ABSTRED] for h in grouped)
    kept = [h for _, h in after.values() if h["code"]["coding"][0]["code"] == "8140/3"]
    assert all("security" not in h.get("meta", {}) for h in kept)
    # each per-patient file holds its NDJSON line, generalised alike
    key = next(iter(after))
    one = json.loads(_decrypt(deposit["ega"] / f"{key}.json.c4gh", tmp / "ega.sec"))
    assert _by_age([one])[key] == after[key]


def test_the_round_trip_is_counted_per_rule(deposit) -> None:
    record = json.loads((deposit["tmp"] / "hospital_a.generalised.json").read_text(encoding="utf-8"))
    assert record == {
        "use_case": "uc45",
        "center": "hospital_a",
        "bundles": 12,
        "rules": [
            {
                "variable": "onsetage",
                "rule": "onsetage in 5-unit bands",
                "definition": {"variable": "onsetage", "bands": 5},
                "values": 12,
                "generalised": 12,
                "unchanged": 0,
            },
            {
                "variable": "histopat",
                "rule": "histopat: codes held by fewer than 3 deposited records grouped into icdo3:8000/3 "
                "(Neoplasm, malignant)",
                "definition": {"variable": "histopat", "group_rare_below": 3, "into": "icdo3:8000/3"},
                "values": 12,
                "generalised": 2,
                "unchanged": 10,
            },
        ],
    }


def test_the_manifest_describes_the_generalised_bytes(deposit) -> None:
    from oncofhir.deposit.manifest import verify

    manifest = deposit["tmp"] / "ega" / "uc45" / "hospital_a.manifest.tsv"
    assert verify(manifest, root=deposit["tmp"] / "ega", private_key=str(deposit["tmp"] / "ega.sec")) == []


def test_the_generalised_bundles_pass_the_validator(deposit, center) -> None:
    """Every layer, the profile included (the model allows the Range and the grouped concept where a rule says)."""
    from oncofhir.validate import ValidationContext, validate_bundle

    context = ValidationContext.create(load_compiled(center["dictionary"]), ontologies=center["ontologies"])
    plain = _decrypt(deposit["ega"] / "uc45.hospital_a.ndjson.c4gh", deposit["tmp"] / "ega.sec")
    issues = [
        (i.layer, i.rule, i.location, i.message)
        for line in plain.decode("utf-8").splitlines()
        for i in validate_bundle(json.loads(line), context)
        if i.severity in ("error", "fatal")
    ]
    assert issues == []
    # and a Range where the model has no band is an error of the profile layer
    plain_context = ValidationContext.create(load_compiled_without_rules(center), ontologies=center["ontologies"])
    first = json.loads(plain.decode("utf-8").splitlines()[0])
    found = {(i.layer, i.rule) for i in validate_bundle(first, plain_context) if i.severity == "error"}
    assert ("profile", "model-element") in found


def load_compiled_without_rules(center):
    tmp = center["tmp"] / "norules"
    shutil.copytree(DICTIONARIES, tmp / "dictionaries", dirs_exist_ok=True)
    return compile_dictionary(tmp / "dictionaries" / "uc45", center["ontologies"])


# ---- end to end from the Snakefile ---------------------------------------------------------------------------------


def test_the_workflow_deposits_the_generalised_copy_and_records_the_round_trip(tmp_path: Path, compiled) -> None:
    """privacy.action: block with k = 2: k is 1 before generalisation and 2 after, so uc45 is encrypted; the deposit
    (bundles, NDJSON, Parquet) holds the bands and the grouped code, verify passes, and the crate counts per rule."""
    import subprocess
    import sys

    from helpers import REPO, workflow_env

    from oncofhir.deposit.keys import generate_keypair
    from oncofhir.errors import ConfigError
    from oncofhir.ig.sushi import find_sushi
    from oncofhir.validate import hl7

    try:  # with SUSHI and the HL7 validator, the generated IG is built and the deposit copy checked against it
        find_sushi()
        official = hl7.available() is None
    except ConfigError:
        official = False
    dictionaries, ontologies = with_rules(tmp_path)
    generate_keypair(tmp_path / "ega.sec", tmp_path / "ega.pub")
    dd = compile_dictionary(dictionaries / "uc45", ontologies)
    export = tmp_path / "uc45.csv"
    export.write_text(crafted_export(dd), encoding="utf-8")
    (tmp_path / "centers.tsv").write_text(
        f"use_case\tcenter\texport\tdescription\nuc45\thospital_a\t{export}\ttest\n", encoding="utf-8"
    )
    results = tmp_path / "results"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"centers: {tmp_path / 'centers.tsv'}\nresults: {results}\ndictionaries: {dictionaries}\n"
        f"ontologies: {ontologies}\nprivacy: {{k: 2, action: block}}\n"
        f"deposit: {{demo_keys: false, recipients: [{tmp_path / 'ega.pub'}]}}\n"
        + ("ig: {enabled: true}\n" if official else ""),
        encoding="utf-8",
    )
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config)],
        cwd=REPO,
        env=workflow_env("a-real-secret-of-32-characters!!"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    report = json.loads((results / "privacy" / "uc45.json").read_text(encoding="utf-8"))
    assert (report["k"], report["after_generalisation"]["k"], report["release"]["blocked"]) == (1, 2, False)

    # the encrypted NDJSON holds the bands and the grouped code
    ega = results / "ega"
    plain = _decrypt(ega / "uc45" / "hospital_a" / "uc45.hospital_a.ndjson.c4gh", tmp_path / "ega.sec")
    shared = _by_age([json.loads(line) for line in plain.decode("utf-8").splitlines()])
    bands = sorted((c["onsetRange"]["low"]["value"], c["onsetRange"]["high"]["value"]) for c, _ in shared.values())
    assert bands == [(60, 64)] * 5 + [(65, 69)] * 5 + [(85, 89)] * 2
    assert sorted(h["code"]["coding"][0]["code"] for _, h in shared.values()) == ["8000/3"] * 2 + ["8140/3"] * 10
    cancer, _ = next(iter(shared.values()))
    assert cancer["meta"]["security"] == [ABSTRED] and len(cancer["meta"]["profile"]) == 1

    if official:  # base R4B and the generated IG's profiles (onset[x] only Age or Range, the grouped concept)
        folder = tmp_path / "generalised"
        folder.mkdir()
        for n, line in enumerate(plain.decode("utf-8").splitlines()):
            (folder / f"b{n}.json").write_text(line, encoding="utf-8")
        outcome = tmp_path / "hl7.json"
        hl7.run(folder, outcome, igs=[results / "ig" / "package.tgz"], log=tmp_path / "hl7.log")
        found = [(Path(path).name, i.location, i.message) for path, i in hl7.read(outcome).issues if i.is_error]
        assert found == []

    # the encrypted wide table: the band columns filled, the exact age empty
    import pyarrow.parquet as pq

    table = pq.read_table(
        io.BytesIO(
            _decrypt(
                ega / "tables" / "uc45" / "hospital_a" / "uc45.hospital_a.uc45_patients.parquet.c4gh",
                tmp_path / "ega.sec",
            )
        )
    ).to_pydict()
    assert table["onsetage"] == [None] * 12
    assert (
        sorted(zip(table["onsetage_band_low"], table["onsetage_band_high"], strict=True))
        == [(60, 64)] * 5 + [(65, 69)] * 5 + [(85, 89)] * 2
    )
    assert sorted(table["histopat"]) == ["8000/3"] * 2 + ["8140/3"] * 10

    # verify decrypts every file against the manifest (which lists the generalised bytes) and checks the crate
    verify = subprocess.run(
        [sys.executable, "-m", "oncofhir", "verify", str(ega / "manifest.tsv"), "--sk", str(tmp_path / "ega.sec")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "all match" in verify.stdout

    # the crate: the rules and the round trip per center, counts only
    crate = json.loads((results / "ro-crate" / "ro-crate-metadata.json").read_text(encoding="utf-8"))
    graph = {e["@id"]: e for e in crate["@graph"]}
    rule = graph["#generalisation-uc45-histopat"]
    assert rule["name"] == (
        "generalisation of use case uc45: histopat: codes held by fewer than 3 deposited records grouped into "
        "icdo3:8000/3 (Neoplasm, malignant)"
    )
    assert '{"group_rare_below": 3, "into": "icdo3:8000/3", "variable": "histopat"}' in rule["description"]
    counts = {
        (graph[p["@id"]]["propertyID"], graph[p["@id"]]["value"])
        for p in rule["additionalProperty"]
        if "hospital_a" in p["@id"]
    }
    assert counts == {("values", "12"), ("generalised", "2"), ("unchanged", "10")}
    age = graph["#generalisation-uc45-onsetage"]
    assert {graph[p["@id"]]["propertyID"]: graph[p["@id"]]["value"] for p in age["additionalProperty"]} == {
        "values": "12",
        "generalised": "12",
        "unchanged": "0",
    }
    root = graph["./"]
    mentioned = {m["@id"] for m in root["mentions"]}
    assert {"#generalisation-uc45-onsetage", "#generalisation-uc45-histopat"} <= mentioned
    text = (results / "ro-crate" / "ro-crate-metadata.json").read_text(encoding="utf-8")
    assert "rare_codes" not in text
    checked = subprocess.run(
        [sys.executable, str(REPO / "tools" / "ro-crate" / "validate.py"), str(results / "ro-crate")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ---- bands on Observation values and components (uc68), and the generated IG ------------------------------------


def _uc68(tmp: Path) -> tuple[Path, Path]:
    """uc68 with n_preg as a quasi-identifier, onsetage (Condition.onsetAge and a component of the patient-class
    Observation) in 10-year bands and n_preg (an Observation value) in bands of 2."""
    dictionaries, ontologies = with_rules(tmp, rules="", use_case="uc45")
    mapping = dictionaries / "uc68" / "mapping.yaml"
    text = mapping.read_text(encoding="utf-8")
    old = "  quasi_identifiers: [center, sex, onsetage, menop, histopat]\n"
    assert old in text
    rules = "  generalise: [{variable: onsetage, bands: 10}, {variable: n_preg, bands: 2}]\n"
    mapping.write_text(text.replace(old, old.replace("histopat]", "histopat, n_preg]") + rules), encoding="utf-8")
    return dictionaries, ontologies


def _present(bundles: list[dict]) -> dict[str, int]:
    """Values of onsetage and n_preg in the local bundles (numbers, not data-absent reasons), counted here."""
    onset = n_preg = 0
    for b in bundles:
        for e in b["entry"]:
            r = e["resource"]
            onset += isinstance(r.get("onsetAge", {}).get("value"), int | float)
            for c in r.get("component", []):
                onset += isinstance(c.get("valueQuantity", {}).get("value"), int | float)
            if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "161732006":
                n_preg += isinstance(r.get("valueQuantity", {}).get("value"), int | float)
    return {"onsetage": onset, "n_preg": n_preg}


def test_bands_on_observation_values_and_components_are_valid_fhir(tmp_path: Path) -> None:
    from oncofhir.privacy.generalise import BundleGeneraliser, load_plan
    from oncofhir.validate import ValidationContext, validate_bundle

    dictionaries, ontologies = _uc68(tmp_path)
    dictionary = tmp_path / "uc68.json"
    stage_compile(dictionaries / "uc68", ontologies, dictionary)
    dd = load_compiled(dictionary)
    export = tmp_path / "export.csv"
    export.write_text(generate(dd, "hospital_a", 40, seed=3), encoding="utf-8")
    stage_ingest(dictionary, export, tmp_path / "records.csv", tmp_path / "rejects.tsv", tmp_path / "ingest.json")
    stage_fhir(
        dictionary,
        tmp_path / "records.csv",
        tmp_path / "rejects.tsv",
        tmp_path / "ingest.json",
        None,
        tmp_path / "center.ndjson",
        tmp_path / "index.tsv",
        tmp_path / "rejects-all.tsv",
        tmp_path / "summary.json",
    )
    counts = tmp_path / "counts.tsv"
    write_counts(dd, count_classes(dd, tmp_path / "records.csv", tmp_path / "index.tsv", "hospital_a"), counts)
    stage_privacy(dictionary, [counts], tmp_path / "privacy.json", tmp_path / "privacy.tsv", 5, "report")
    lines = (tmp_path / "center.ndjson").read_text(encoding="utf-8").splitlines()
    local = [json.loads(line) for line in lines]
    present = _present(local)
    assert present["onsetage"] > len(local) and present["n_preg"] > 0  # the component and the value are both there
    generaliser = BundleGeneraliser(*load_plan(dictionary, tmp_path / "privacy.json"))
    shared = [json.loads(line) for line in lines]
    changed = sum(generaliser.apply(b) for b in shared)
    assert changed == sum(any(_present([b]).values()) for b in local)  # those with an age or a number of pregnancies
    assert generaliser.counts == {
        "onsetage": {"values": present["onsetage"], "generalised": present["onsetage"], "unchanged": 0},
        "n_preg": {"values": present["n_preg"], "generalised": present["n_preg"], "unchanged": 0},
    }
    assert _present(shared) == {"onsetage": 0, "n_preg": 0}
    for before, after in zip(local, shared, strict=True):
        olds = [e["resource"] for e in before["entry"]]
        news = [e["resource"] for e in after["entry"]]
        for old, new in zip(olds, news, strict=True):
            for comp_old, comp_new in zip(old.get("component", []), new.get("component", []), strict=True):
                if isinstance(comp_old.get("valueQuantity", {}).get("value"), int):
                    age = comp_old["valueQuantity"]["value"]
                    assert comp_new["valueRange"]["low"]["value"] == age // 10 * 10
                    assert comp_new["valueRange"]["high"]["value"] == age // 10 * 10 + 9
                    assert ABSTRED in new["meta"]["security"]
    context = ValidationContext.create(dd, ontologies=ontologies)
    issues = [(i.layer, i.rule, i.message) for b in shared for i in validate_bundle(b, context) if i.is_error]
    assert issues == []


def test_the_generated_ig_allows_the_generalised_forms(tmp_path: Path) -> None:
    """onset[x] and value[x] (component too) allow a Range where a rule bands; the into concept is in the value set;
    SUSHI compiles it with no error."""
    from oncofhir.errors import ConfigError
    from oncofhir.ig.generate import generate as generate_ig
    from oncofhir.ig.names import DEFAULT_CANONICAL
    from oncofhir.ig.sushi import compile_fsh, find_sushi

    dictionaries, ontologies = _uc68(tmp_path)
    uc45 = tmp_path / "uc45"
    shutil.copytree(dictionaries / "uc45", uc45)
    mapping = uc45 / "mapping.yaml"
    mapping.write_text(
        mapping.read_text(encoding="utf-8").replace("  sensitive: grade\n", "  sensitive: grade\n" + RULES),
        encoding="utf-8",
    )
    dicts = [compile_dictionary(dictionaries / "uc68", ontologies), compile_dictionary(uc45, ontologies)]
    fsh = generate_ig(dicts, tmp_path / "ig", DEFAULT_CANONICAL, "urn:oncofhir:pseudonym")
    uc68 = (tmp_path / "ig" / "input" / "fsh").glob("uc68*.fsh")
    text = "\n".join(p.read_text(encoding="utf-8") for p in uc68)
    assert "* onset[x] only Age or Range" in text
    assert "* value[x] only Quantity or Range" in text  # n_preg
    assert "].value[x] only Quantity or Range" in text  # the patient-class component holding the age
    concepts = fsh["uc45"].valuesets["Uc45_histopat_Code"].concepts
    assert (ICDO3_SYSTEM, "8000/3", "Neoplasm, malignant") in concepts
    try:
        sushi = find_sushi()
    except ConfigError as exc:
        pytest.skip(f"SUSHI not installed: {exc}")
    info = compile_fsh(tmp_path / "ig", sushi, tmp_path / "sushi.log")
    assert info["errors"] == 0, (tmp_path / "sushi.log").read_text(encoding="utf-8")[-3000:]


def test_a_bundle_the_generaliser_cannot_match_is_an_error_not_an_exact_deposit(center) -> None:
    from oncofhir.errors import InputDataError
    from oncofhir.privacy.generalise import BundleGeneraliser, load_plan

    generaliser = BundleGeneraliser(*load_plan(center["dictionary"], center["privacy"]))
    bundle = json.loads((center["tmp"] / "center.ndjson").read_text(encoding="utf-8").splitlines()[0])
    del bundle["entry"][0]["resource"]["identifier"]
    with pytest.raises(InputDataError, match=r"a bundle without Patient\.identifier"):
        generaliser.apply(bundle)


def test_a_plan_from_other_rules_is_refused(center, tmp_path: Path) -> None:
    from oncofhir.errors import InputDataError
    from oncofhir.privacy.generalise import load_plan

    report = json.loads(center["privacy"].read_text(encoding="utf-8"))
    report["generalisation"]["plan"][0]["bands"] = 10
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(report), encoding="utf-8")
    with pytest.raises(InputDataError, match="differs from the dictionary's rules: rerun the privacy stage"):
        load_plan(center["dictionary"], stale)
