"""The dictionary compiler/linter: every defect is reported with the variable or slot and the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES, USE_CASES

from oncofhir.cli import main
from oncofhir.dictionary import compile_dictionary, load_compiled
from oncofhir.errors import DictionaryError

TST = Path(__file__).parent / "data" / "tst"


@pytest.fixture
def tst(tmp_path: Path) -> Path:
    """A writable copy of the construct-test use case."""
    target = tmp_path / "tst"
    shutil.copytree(TST, target)
    return target


def edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def problems(folder: Path, ontologies: Path = ONTOLOGIES) -> list[str]:
    with pytest.raises(DictionaryError) as err:
        compile_dictionary(folder, ontologies)
    return err.value.details


@pytest.mark.parametrize("use_case", USE_CASES)
def test_project_dictionaries_compile_and_round_trip(use_case: str, tmp_path: Path) -> None:
    dd = compile_dictionary(DICTIONARIES / use_case, ONTOLOGIES)
    out = tmp_path / "d.json"
    out.write_text(dd.to_json(), encoding="utf-8")
    assert load_compiled(out) == dd
    assert dd.to_json() == compile_dictionary(DICTIONARIES / use_case, ONTOLOGIES).to_json()  # stable bytes


def test_unmapped_and_extra_choices(tst: Path) -> None:
    edit(
        tst,
        "mapping.yaml",
        'value: {variable: sex, map: {"0": ln:LA2-8, "1": ln:LA3-6}}',
        'value: {variable: sex, map: {"0": ln:LA2-8, "5": ln:LA3-6}}',
    )
    assert problems(tst) == [
        "resource 'sex' (Observation), value: choice 1 ('female') of 'sex' is not mapped",
        "resource 'sex' (Observation), value: maps code 5, which is not a choice of 'sex'",
    ]


def test_unknown_system_code_and_check_digit(tst: Path, tmp_path: Path) -> None:
    edit(tst, "mapping.yaml", "code: ln:76689-9", "code: loinc:76689-9")
    edit(tst, "mapping.yaml", "bodySite: sct:10200004", "bodySite: sct:10200005")
    edit(tst, "mapping.yaml", "code: ncit:C123557", "code: ncit:C999999")
    got = problems(tst)
    assert got[0].startswith("resource 'sex' (Observation), code: unknown code system alias 'loinc' in 'loinc:76689-9'")
    assert got[1:] == [
        "resource 'condition' (Condition), bodySite: code '10200005' is not in resources/ontologies/sct.tsv",
        "resource 'ki67' (Observation), code: code 'C999999' is not in resources/ontologies/ncit.tsv",
    ]
    # A code present in the table but with a wrong check digit is caught too.
    onto = tmp_path / "onto"
    shutil.copytree(ONTOLOGIES, onto)
    with (onto / "sct.tsv").open("a", encoding="utf-8") as handle:
        handle.write("10200005\tMistyped liver structure\thttp://snomed.info/sct/900000000000207008/version/20221231\n")
    assert problems(tst, onto)[1] == (
        "resource 'condition' (Condition), bodySite: 'sct:10200005' fails the verhoeff check digit / format of sct"
    )


def test_logic_errors_name_variable_and_position(tst: Path) -> None:
    edit(tst, "redcap_dictionary.csv", "[flag] = '0'", "[flag] = '0' AND")
    edit(tst, "mapping.yaml", "drug: {mandatory: \"[chemo] = '2'\"}", "drug: {mandatory: \"[chemotherapy] = '2'\"}")
    got = problems(tst)
    row = next(i for i, line in enumerate((tst / "redcap_dictionary.csv").read_text().splitlines(), 1) if "AND" in line)
    assert got[0].startswith(f"redcap_dictionary.csv row {row}, variable 'flag_dur', branching logic: ")  # row: to fix
    assert "position 16" in got[0]
    assert got[1] == (
        "variable 'drug', mandatory condition: logic refers to unknown variable [chemotherapy] "
        "in \"[chemotherapy] = '2'\""
    )


def test_unused_variable_duplicate_slot_and_unknown_variable(tst: Path) -> None:
    edit(tst, "mapping.yaml", "  - id: palb2\n", "  - id: ki67\n")
    edit(tst, "mapping.yaml", "value: {variable: ki67, unit: ucum:%}", "value: {variable: ki_67, unit: ucum:%}")
    assert problems(tst) == [
        "resource 'ki67' (Observation), value: unknown variable 'ki_67'",
        "resource 'ki67': duplicate slot id",
        "resource 'report' (DiagnosticReport), result: 'palb2' is not an Observation slot of this mapping",
        "variable 'ki67' feeds no resource: its data would be lost",
    ]


def test_a_variable_used_only_in_when_feeds_its_slot(tst: Path) -> None:
    """Issue 12.6: a variable that only gates a slot (``when:``) is used; one only in a requirement condition is not."""
    with (tst / "redcap_dictionary.csv").open("a", encoding="utf-8") as fh:
        fh.write('adt,tst,,radio,ADT given,"0, no | 1, yes",,,,,,,,,,,,\n')
    assert problems(tst) == ["variable 'adt' feeds no resource: its data would be lost"]
    edit(
        tst,
        "mapping.yaml",
        "  - id: palb2\n    type: Observation\n",
        "  - id: palb2\n    type: Observation\n    when: \"[adt] = '1'\"\n",
    )
    dd = compile_dictionary(tst, ONTOLOGIES)
    assert next(r for r in dd.resources if r["id"] == "palb2")["when"] == ["[adt] = '1'"]
    edit(tst, "mapping.yaml", "    when: \"[adt] = '1'\"\n", "")
    edit(tst, "mapping.yaml", "variables:\n", "variables:\n  gene: {minimal: \"[adt] = '1'\"}\n")
    assert problems(tst) == ["variable 'adt' feeds no resource: its data would be lost"]


def test_numeric_source_on_a_coded_variable(tst: Path) -> None:
    edit(tst, "mapping.yaml", "onsetAge: {variable: age, unit: ucum:a}", "onsetAge: {variable: grade, unit: ucum:a}")
    assert problems(tst)[0] == (
        "resource 'condition' (Condition), onsetAge: variable 'grade' is used as a number but its validation is "
        "'dropdown' (expected integer or number)"
    )


def test_schema_errors_name_the_resource(tst: Path) -> None:
    edit(tst, "mapping.yaml", "    category: laboratory\n", "    category: laboratory\n    colour: red\n")
    with pytest.raises(DictionaryError) as err:
        compile_dictionary(tst, ONTOLOGIES)
    assert str(err.value).startswith(f"{tst / 'mapping.yaml'}: mapping does not follow docs/dictionary-format.md")
    assert err.value.details == [
        "resources/4/colour (resource 'ki67', Observation): unknown key 'colour'; allowed keys: id, type, when, "
        "if_blank, primary, note, description, code, value, category, method, bodySite, interpretation, effective, "
        "components"
    ]


CONDITION_KEYS = (
    "id, type, when, if_blank, primary, note, description, code, bodySite, onsetAge, clinicalStatus, "
    "verificationStatus, category, evidence"
)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (  # issue 12.5: was "does not match any allowed form: 'Patient' was expected"
            "    bodySite: sct:10200004",
            "    bodysite: sct:10200004",
            "resources/2/bodysite (resource 'condition', Condition): unknown key 'bodysite' (did you mean "
            f"'bodySite'?); allowed keys: {CONDITION_KEYS}",
        ),
        (
            "effective: {variable: flag_dur, period: mo}",
            "effective: {variable: flag_dur, period: weeks}",
            "resources/3/effective/period (resource 'lactation', Observation): 'weeks' is not one of d, wk, mo, a "
            "(did you mean 'wk'?)",
        ),
        (
            "value: {variable: ki67, unit: ucum:%}",
            "value: {variable: ki67, units: ucum:%}",
            "resources/4/value (resource 'ki67', Observation): unknown key 'units' (did you mean 'unit'?); "
            "allowed keys: variable, unit",
        ),
        (
            "dose: {variable: dose, unit: {variable: unit, map:",
            "dose: {variable: dose, unit: {variable: unit, mapp:",
            "resources/7/dosage/dose/unit (resource 'med1', MedicationAdministration): unknown key 'mapp' (did you "
            "mean 'map'?); allowed keys: variable, map",
        ),
        (
            "deceased: {variable: dead,",
            "deceasd: {variable: dead,",
            "resources/0/deceasd (resource 'patient', Patient): unknown key 'deceasd' (did you mean 'deceased'?); "
            "allowed keys: id, type, when, if_blank, primary, note, description, gender, deceased",
        ),
        (
            "  - id: sex\n    type: Observation",
            "  - id: sex\n    type: Observatio",
            "resources/1/type (resource 'sex', Observatio): 'Observatio' is not one of Patient, Observation, "
            "Condition, Procedure, MedicationAdministration, DiagnosticReport (did you mean 'Observation'?)",
        ),
        (
            "code: ln:76689-9",
            "code: 12",
            "resources/1/code (resource 'sex', Observation): 12 has none of the allowed forms (object or string)",
        ),
    ],
    ids=["key", "period-enum", "quantity-key", "nested-unit-key", "patient-key", "type", "form"],
)
def test_schema_errors_follow_the_slot_type(tst: Path, old: str, new: str, message: str) -> None:
    edit(tst, "mapping.yaml", old, new)
    with pytest.raises(DictionaryError) as err:
        compile_dictionary(tst, ONTOLOGIES)
    assert err.value.details == [message]


def test_use_case_must_match_folder(tst: Path) -> None:
    edit(tst, "mapping.yaml", "use_case: tst", "use_case: other")
    assert problems(tst) == ["use_case 'other' differs from the folder name 'tst'"]


def test_cli_lint_reports_and_exits_3(tst: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dictionary", "lint", str(TST), "--ontologies", str(ONTOLOGIES)]) == 0
    assert "ok   " in capsys.readouterr().out
    edit(tst, "mapping.yaml", "code: ln:76689-9", "code: ln:76689-8")
    assert main(["dictionary", "lint", str(tst), "--ontologies", str(ONTOLOGIES)]) == 3
    err = capsys.readouterr().err
    assert "resource 'sex' (Observation), code: code '76689-8' is not in resources/ontologies/ln.tsv" in err
    assert "Traceback" not in err


# -- one meaning, one code across use cases (issue 12) ----------------------------------------------------------------


@pytest.fixture
def dictionaries(tmp_path: Path) -> Path:
    """A writable copy of the two breast-cancer use cases, which share the most variables (menop, lactation...)."""
    target = tmp_path / "dictionaries"
    for use_case in ("uc68", "uc7"):
        shutil.copytree(DICTIONARIES / use_case, target / use_case)
    return target


def test_shared_variables_have_the_same_codes_in_every_use_case(compiled) -> None:
    from oncofhir.dictionary.consistency import answer_meanings, inconsistent_codings

    dds = [compiled[uc] for uc in USE_CASES]
    assert inconsistent_codings(dds) == []
    shared = {name for dd in dds for name in answer_meanings(dd)}
    assert {"sex", "menop", "lactation", "hormtherapy", "hcontrac", "tnm_ypm"} <= shared  # the check has material


def test_lint_of_every_project_use_case_checks_shared_variables(capsys: pytest.CaptureFixture[str]) -> None:
    folders = [str(DICTIONARIES / uc) for uc in USE_CASES]
    assert main(["dictionary", "lint", *folders, "--ontologies", str(ONTOLOGIES)]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"ok   shared variables of {', '.join(USE_CASES)}: the same answers have the same codes\n")


def test_lint_finds_an_answer_recoded_in_one_use_case(dictionaries: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = [str(p) for p in sorted(dictionaries.iterdir())]
    lint = ["dictionary", "lint", *folders, "--ontologies", str(ONTOLOGIES)]
    assert main(lint) == 0
    assert capsys.readouterr().out.endswith(
        "ok   shared variables of uc68, uc7: the same answers have the same codes\n"
    )
    edit(dictionaries / "uc68", "mapping.yaml", '"1": sct:76498008}', '"1": sct:22636003}')
    assert main(lint) == 3
    assert capsys.readouterr().err == (
        "FAIL shared variables of uc68, uc7:\n"
        "  - variable 'menop', answer 1 'postmenopause' is coded differently across use cases "
        "(uc68: sct:22636003; uc7: sct:76498008): code it the same, or declare the exception in the differing use "
        "case's mapping.yaml as variables: {menop: {own_coding: <reason>}}\n"
    )
    # a declared, documented exception is accepted
    edit(
        dictionaries / "uc68",
        "mapping.yaml",
        "  menop: {mandatory: true}",
        '  menop: {mandatory: true, own_coding: "a test of the declared exception"}',
    )
    assert main(lint) == 0


def test_own_coding_needs_a_reason(dictionaries: Path) -> None:
    edit(dictionaries / "uc68", "mapping.yaml", "  menop: {mandatory: true}", '  menop: {own_coding: ""}')
    with pytest.raises(DictionaryError) as err:
        compile_dictionary(dictionaries / "uc68", ONTOLOGIES)
    assert err.value.details == ["variables/menop/own_coding: '' is too short"]
