"""Data quality 2.0, per center: mapping rules (relational, computational, temporal), calc fields recomputed, rule
weights, thresholds per check, the demo's known defects and the measured recall (exact counts throughout)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES
from qc_helpers import check, dictionary, field, outcome, write_inputs

from oncofhir.defects import CLASS_TYPES, DEFECTS
from oncofhir.demo import generate, generate_export
from oncofhir.dictionary import compile_dictionary
from oncofhir.dictionary.compiled import Rule
from oncofhir.errors import ConfigError, DictionaryError
from oncofhir.pipeline import stage_ingest
from oncofhir.qc import run_checks, stage_qc
from oncofhir.qc.scoring import check_thresholds, record_counts
from oncofhir.qc.stage import read_columns
from oncofhir.workflow_config import check_thresholds as check_config_thresholds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
TST = Path(__file__).parent / "data" / "tst"

SUBTYPE = {"0": "Triple negative", "1": "Luminal A"}


def receptor_dictionary(*rules: Rule):
    """subtype (coded), er (number), ihc (coded), fish shown only for ihc 2+, and the given rules."""
    dd = dictionary(
        field("subtype", type="dropdown", choices=SUBTYPE),
        field("er", validation="number"),
        field("ihc", type="dropdown", choices={"0": "0", "2": "2+", "3": "3+"}),
        field("fish", type="dropdown", choices={"0": "positive", "1": "negative"}, branching="[ihc] = '2'"),
        field("dfs", validation="integer"),
        field("os", validation="integer"),
    )
    dd.rules = list(rules)
    return dd


TN_ER = Rule(
    id="tn_er",
    category="relational",
    when="[subtype] = '0'",
    assert_="[er] < 10",
    message="Triple negative but ER is 10 % or more",
    variables=["subtype", "er"],
)
DFS_OS = Rule(id="dfs_le_os", category="temporal", assert_="[dfs] <= [os]", message="DFS > OS", variables=["dfs", "os"])


# -- rules --------------------------------------------------------------------------------------------------------
def test_relational_rule_applies_only_to_usable_values() -> None:
    rows = [
        {"subtype": "0", "er": "50"},  # fails
        {"subtype": "0", "er": "5"},  # passes
        {"subtype": "1", "er": "50"},  # when false: not applicable
        {"subtype": "0", "er": ""},  # blank: a completeness question
        {"subtype": "0", "er": "n/a"},  # not a number: a datatype failure, not also a rule failure
        {"subtype": "7", "er": "50"},  # not a code: a permissible failure
        {"subtype": "0", "er": "10"},  # boundary: fails (< 10)
    ]
    result = check(receptor_dictionary(TN_ER), rows)
    assert outcome(result, "tn_er") == ["fail", "pass", "-", "-", "-", "-", "fail"]
    c = next(c for c in result.checks if c.id == "tn_er")
    assert (c.type, c.dimension, c.variable, c.variables) == ("relational", "Conformance", "subtype", ("subtype", "er"))


def test_rule_reads_no_hidden_value_and_if_blank_evaluate() -> None:
    fish_neg = Rule(
        id="tn_fish",
        category="relational",
        when="[subtype] = '0' AND [ihc] = '2'",
        assert_="[fish] = '1'",
        message="Triple negative with IHC 2+ needs a negative FISH",
        variables=["subtype", "ihc", "fish"],
    )
    evaluated = Rule(
        id="tn_not_3",
        category="relational",
        when="[subtype] = '0'",
        assert_="[ihc] <> '3'",
        message="Triple negative but HER2 3+",
        if_blank="evaluate",
        variables=["subtype", "ihc"],
    )
    rows = [
        {"subtype": "0", "ihc": "2", "fish": "0"},  # fails
        {"subtype": "0", "ihc": "0", "fish": "0"},  # fish hidden (ihc 0): not applicable; branching flags it
        {"subtype": "0", "ihc": "2", "fish": "1"},  # passes
        {"subtype": "0", "ihc": "", "fish": ""},  # evaluate: '' <> '3' holds
        {"subtype": "0", "ihc": "3", "fish": ""},  # evaluate: fails
    ]
    result = check(receptor_dictionary(fish_neg, evaluated), rows)
    assert outcome(result, "tn_fish") == ["fail", "-", "pass", "-", "-"]
    assert outcome(result, "tn_not_3") == ["pass", "pass", "pass", "pass", "fail"]
    assert outcome(result, "fish.branching") == ["-", "fail", "-", "pass", "pass"]


def test_temporal_rule_counts() -> None:
    rows = [{"dfs": "12", "os": "30"}, {"dfs": "40", "os": "30"}, {"dfs": "30", "os": "30"}, {"dfs": "5", "os": ""}]
    result = check(receptor_dictionary(DFS_OS), rows)
    assert outcome(result, "dfs_le_os") == ["pass", "fail", "pass", "-"]
    assert record_counts(result)["temporal"][0].tolist() == [0, 1, 0, 0]


def test_rule_weight_counts_as_that_many_checks() -> None:
    heavy = Rule(**{**_rule_fields(TN_ER), "weight": 3})
    silent = Rule(**{**_rule_fields(DFS_OS), "weight": 0})
    rows = [{"subtype": "0", "er": "50", "dfs": "9", "os": "3"}, {"subtype": "0", "er": "1", "dfs": "1", "os": "3"}]
    counts = record_counts(check(receptor_dictionary(heavy, silent), rows))
    assert counts["relational"][0].tolist() == [3, 0] and counts["relational"][1].tolist() == [0, 3]
    assert counts["temporal"][0].tolist() == [0, 0] and counts["temporal"][1].tolist() == [0, 0]


def _rule_fields(rule: Rule) -> dict:
    return {k: getattr(rule, k) for k in Rule.__dataclass_fields__}


# -- computational ------------------------------------------------------------------------------------------------
def test_calc_field_recomputed() -> None:
    dd = dictionary(
        field("dose", validation="number"),
        field("cycles", validation="integer"),
        field("total", type="calc", calculation="[dose] * [cycles]"),
    )
    rows = [
        {"dose": "60", "cycles": "4", "total": "240"},  # equal
        {"dose": "60", "cycles": "4", "total": "250"},  # mismatch
        {"dose": "2.25", "cycles": "3", "total": "6.8"},  # 6.75 stored with one decimal: REDCap rounding, equal
        {"dose": "60", "cycles": "4", "total": ""},  # not saved: REDCap's rule H
        {"dose": "", "cycles": "4", "total": ""},  # nothing to compute: not applicable
        {"dose": "60", "cycles": "4", "total": "240.0"},  # same number
    ]
    result = check(dd, rows)
    assert outcome(result, "total.computational") == ["pass", "fail", "pass", "fail", "-", "pass"]
    assert result.shown(next(k for k, c in enumerate(result.checks) if c.type == "computational"), 1, {}) == (
        "total: 250; dose: 60; cycles: 4"
    )


def test_computed_rule() -> None:
    dd = dictionary(
        field("a", validation="integer"), field("b", validation="integer"), field("s", validation="integer")
    )
    dd.rules = [
        Rule(
            id="sum",
            category="computational",
            type="computed",
            variable="s",
            assert_="[a] + [b]",
            message="s is not a + b",
            variables=["s", "a", "b"],
        )
    ]
    rows = [{"a": "1", "b": "2", "s": "3"}, {"a": "1", "b": "2", "s": "4"}, {"a": "1", "b": "", "s": "4"}]
    assert outcome(check(dd, rows), "sum") == ["pass", "fail", "-"]


# -- the compiler -------------------------------------------------------------------------------------------------
@pytest.fixture
def tst(tmp_path: Path) -> Path:
    target = tmp_path / "tst"
    shutil.copytree(TST, target)
    return target


def add_rules(folder: Path, text: str) -> None:
    with open(folder / "mapping.yaml", "a", encoding="utf-8") as handle:
        handle.write("\nrules:\n" + text)


def test_compiler_lints_rules(tst: Path) -> None:
    add_rules(
        tst,
        "  - {id: a, category: relational, assert: \"[grade] = '0'\", message: fine one}\n"
        "  - {id: a, category: relational, assert: \"[grade] = '1'\", message: duplicate id}\n"
        "  - {id: b, category: relational, assert: \"[grading] = '1'\", message: unknown variable}\n"
        '  - {id: c, category: temporal, assert: "[age] <= ", message: syntax error}\n'
        "  - {id: d, category: computational, type: computed, assert: '[age] * 2', message: no variable}\n"
        "  - {id: e, category: relational, type: computed, variable: age, assert: '[age]', message: wrong category}\n"
        "  - {id: grade, category: relational, assert: \"[grade] = '1'\", message: id is a variable}\n",
    )
    with pytest.raises(DictionaryError) as err:
        compile_dictionary(tst, ONTOLOGIES)
    details = err.value.details
    assert "rule 'a': duplicate rule id" in details
    assert "rule 'b', assert: logic refers to unknown variable [grading] in \"[grading] = '1'\"" in details
    assert any(d.startswith("rule 'c', assert: ") and "at position 9" in d for d in details)
    assert "rule 'd': a computed rule names the variable it recomputes ('variable')" in details
    assert "rule 'e': a computed rule is computational, not relational" in details
    assert "rule 'grade': the id is also a variable's name (qc.thresholds names either); rename it" in details


def test_compiler_schema_refuses_a_bad_category(tst: Path) -> None:
    add_rules(tst, "  - {id: a, category: plausible, assert: \"[grade] = '0'\", message: bad category}\n")
    with pytest.raises(DictionaryError) as err:
        compile_dictionary(tst, ONTOLOGIES)
    assert any(d.startswith("rules/0/category: ") for d in err.value.details)


def test_project_rules_compile() -> None:
    counts = {
        uc: len(compile_dictionary(DICTIONARIES / uc, ONTOLOGIES).rules) for uc in ("uc1", "uc3", "uc45", "uc68", "uc7")
    }
    assert counts == {"uc1": 0, "uc3": 1, "uc45": 10, "uc68": 21, "uc7": 19}


# -- weights, thresholds, outputs ---------------------------------------------------------------------------------
def test_weighted_rule_type_is_a_row_below_table2_and_thresholds_flag(tmp_path: Path) -> None:
    dd = receptor_dictionary(TN_ER, DFS_OS)
    rows = [{"subtype": "0", "er": "50", "dfs": "1", "os": "2"}] + [{"subtype": "0", "er": "1"}] * 3
    compiled, records = write_inputs(tmp_path, dd, rows)
    stage_qc(
        compiled,
        records,
        tmp_path / "qc",
        center="c",
        weights={"relational": 10},
        thresholds={"relational": 20, "dfs_le_os": 0, "er": 50},
    )
    summary = json.loads((tmp_path / "qc" / "qc.json").read_text())
    assert [r["type"] for r in summary["table"]] == [
        "minimal_req", "mandatory_req", "length", "datatype", "permissible", "range", "relational",
    ]  # fmt: skip
    rel = summary["table"][-1]
    assert (rel["fail"], rel["pass"], rel["weight"]) == (1, 3, 10)
    assert [u["type"] for u in summary["unscored"]] == ["branching", "temporal"]
    by_id = {c["id"]: c for c in summary["per_check"]}
    assert (by_id["tn_er"]["fail_rate"], by_id["tn_er"]["threshold"], by_id["tn_er"]["above_threshold"]) == (
        25.0,
        20.0,
        True,
    )
    assert by_id["dfs_le_os"]["threshold"] == 0.0 and by_id["dfs_le_os"]["above_threshold"] is False  # 0 failures
    assert by_id["er.datatype"]["threshold"] == 50.0  # the variable's name applies to its own checks
    assert summary["above_threshold"] == ["tn_er"]
    failures = (tmp_path / "qc" / "failures.tsv").read_text().splitlines()
    assert failures[1].split("\t")[2:7] == [
        "subtype",
        "tn_er",
        "relational",
        "Conformance",
        "subtype: 0 = Triple negative; er: 50",
    ]
    page = (tmp_path / "qc" / "report.html").read_text()
    assert "▲ tn_er" in page and "subtype: 0 = Triple negative; er: 50" in page
    assert "1 check(s) fail more often than their threshold" in page


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"relational": 101}, "qc.thresholds.relational: 101 is not a failure rate in percent (0-100)"),
        ({"er.nonsense": 5}, "qc.thresholds.er.nonsense: unknown check type 'nonsense'"),
        ({"Bad Key": 5}, "qc.thresholds: 'Bad Key' is not a check type, variable, rule id or <variable>.<type>"),
    ],
)
def test_bad_threshold_values(thresholds: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_thresholds(thresholds)
    assert str(err.value) == message


def test_unknown_threshold_name_fails_before_any_job() -> None:
    config = {"dictionaries": str(DICTIONARIES), "qc": {"thresholds": {"relational": 5, "dfs_le_os": 1, "er.range": 2}}}
    check_config_thresholds(config, [])  # a type, a rule id of uc7, a variable with a type: fine
    config["qc"]["thresholds"] = {"subtype_hr_negativ": 5}
    with pytest.raises(ConfigError) as err:
        check_config_thresholds(config, [])
    assert (
        "config key 'qc.thresholds.subtype_hr_negativ': 'subtype_hr_negativ' is no check type, variable or rule id"
        in str(err.value)
    )
    assert "did you mean 'subtype_hr_negative'?" in str(err.value)


# -- demo and recall ----------------------------------------------------------------------------------------------
def _qc_failures(compiled, tmp_path: Path, text: str) -> list:
    (tmp_path / "dd.json").write_text(compiled.to_json(), encoding="utf-8")
    (tmp_path / "export.csv").write_text(text, encoding="utf-8")
    stage_ingest(
        tmp_path / "dd.json", tmp_path / "export.csv", tmp_path / "r.csv", tmp_path / "rej.tsv", tmp_path / "rep.json"
    )
    rows, _, columns = read_columns(tmp_path / "r.csv")
    result = run_checks(compiled, columns, len(rows))
    ids = result.value_list("record_id")
    return [(ids[r], result.checks[k].id) for k, r in zip(*(result.status == 2).nonzero(), strict=True)]


@pytest.mark.parametrize("use_case", ["uc3", "uc45", "uc68", "uc7"])
def test_clean_demo_has_no_failure(use_case: str, compiled, tmp_path: Path) -> None:
    assert _qc_failures(compiled[use_case], tmp_path, generate(compiled[use_case], "h", 120, 3, defects=False)) == []


def test_demo_injects_known_rule_defects(compiled, tmp_path: Path) -> None:
    text, injected = generate_export(compiled["uc7"], "hospital_a", 200, 5)
    assert [i.kind for i in injected] == ["rule_violation"] * 3 + ["temporal"] * 2  # no calc field in uc7
    found = _qc_failures(compiled["uc7"], tmp_path, text)
    rule_failures = sorted((rid, check) for rid, check in found if "." not in check)
    assert rule_failures == sorted((i.record_id, i.check) for i in injected)
    assert text == generate_export(compiled["uc7"], "hospital_a", 200, 5)[0]  # seeded


def test_measured_recall_small(tmp_path: Path) -> None:
    import bench_qc_recall as bench

    folder = bench.with_calc_field(tmp_path)
    tallies = bench.run_use_case(folder, tmp_path / "work", records=150, per_class=4, seed=2)
    assert {k: (t.injected, t.found, t.false_alarms) for k, t in tallies.items()} == dict.fromkeys(DEFECTS, (4, 4, 0))
    assert set(CLASS_TYPES) == set(DEFECTS) == {
        "blank_required", "wrong_type", "invalid_code", "out_of_range", "hidden_value", "rule_violation",
        "temporal", "calc_mismatch",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ("{dfs_le_o: 5}", "config key 'qc.thresholds.dfs_le_o': 'dfs_le_o' is no check type, variable or rule id"),
        ("{relational: 150}", "config key 'qc.thresholds.relational': 150 is greater than the maximum of 100"),
    ],
)
def test_bad_threshold_stops_the_workflow_before_any_job(tmp_path: Path, thresholds: str, message: str) -> None:
    import subprocess

    from helpers import REPO, workflow_env

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"results: {tmp_path}/r\nqc: {{thresholds: {thresholds}}}\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(cfg)],
        cwd=REPO,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stdout + result.stderr


def test_cli_passes_thresholds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from oncofhir.cli import main

    rows = [{"subtype": "0", "er": "50"}, {"subtype": "0", "er": "1"}]
    compiled, records = write_inputs(tmp_path, receptor_dictionary(TN_ER), rows)
    args = ["qc", "--dictionary", str(compiled), "--records", str(records), "--out-dir", str(tmp_path / "qc")]
    assert main([*args, "--center", "c", "--thresholds", "{tn_er: 49.5}"]) == 0
    assert json.loads((tmp_path / "qc" / "qc.json").read_text())["above_threshold"] == ["tn_er"]  # 50 % > 49.5 %
    assert main([*args, "--center", "c", "--thresholds", "{tn_er: 200}"]) == 2
    assert "qc.thresholds.tn_er: 200 is not a failure rate in percent (0-100)" in capsys.readouterr().err


def test_a_rule_naming_an_unknown_variable_stops_the_workflow_before_any_job(tmp_path: Path) -> None:
    import subprocess

    from helpers import workflow_env

    folder = tmp_path / "dictionaries" / "uc1"
    shutil.copytree(DICTIONARIES / "uc1", folder)
    add_rules(
        folder, "  - {id: bad_rule, category: relational, assert: \"[hep_d] = '0'\", message: no such variable}\n"
    )
    (tmp_path / "centers.tsv").write_text(
        f"use_case\tcenter\texport\nuc1\ta\t{tmp_path}/demo/uc1/a.csv\n", encoding="utf-8"
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"centers: {tmp_path}/centers.tsv\nresults: {tmp_path}/r\ndictionaries: {tmp_path}/dictionaries\n"
        f"ontologies: {DICTIONARIES.parent / 'ontologies'}\ndemo: {{folder: {tmp_path}/demo}}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(cfg)],
        cwd=Path(__file__).resolve().parents[1],
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "rule 'bad_rule', assert: logic refers to unknown variable [hep_d] in \"[hep_d] = '0'\"" in out
    assert "Job " not in out  # nothing scheduled
