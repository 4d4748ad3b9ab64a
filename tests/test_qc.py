"""QC stage: Table 2 from its counts, every check type on small tables, weights, gate, outputs."""

from __future__ import annotations

import json
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from qc_helpers import check, dictionary, field, outcome, write_inputs

from oncofhir.errors import ConfigError
from oncofhir.fhir.values import BadValue, parse_number
from oncofhir.qc import DEFAULT_WEIGHTS, OUTPUTS, resolve_weights, score_table, stage_qc, write_qc_index
from oncofhir.qc.scoring import center_counts, pct
from oncofhir.qc.writers import table_tsv

# -- Table 2 of the paper -------------------------------------------------------------------------------------------
TABLE2_COUNTS = {
    "minimal_req": (2, 16),
    "mandatory_req": (3, 32),
    "length": (1, 10),
    "datatype": (0, 40),
    "permissible": (3, 52),
    "range": (1, 3),
}
TABLE2_TSV = """\
Dimension\tType\tFail\tPass\tTotal\tWeight\tScore
Completeness\tminimal_req\t2\t16\t18\t50\t44.44%
Completeness\tmandatory_req\t3\t32\t35\t10\t9.14%
Conformance\tlength\t1\t10\t11\t10\t9.09%
Conformance\tdatatype\t0\t40\t40\t10\t10.00%
Conformance\tpermissible\t3\t52\t55\t10\t9.45%
Plausibility\trange\t1\t3\t4\t10\t7.50%
Total\t\t10\t153\t163\t100\t89.63%
"""


@pytest.mark.parametrize("policy", ["renormalise", "full_credit"])
def test_table2_reproduced_from_its_counts(policy):
    """Share of type t = 100 * w_t * pass_t / total_t / sum(w); with Table 2's weights (sum 100) = w_t * s_t."""
    table = score_table(TABLE2_COUNTS, resolve_weights(None), policy)
    assert [pct(r.score) for r in table.rows] == ["44.44%", "9.14%", "9.09%", "10.00%", "9.45%", "7.50%"]
    total = table.total
    assert (total.fail, total.passed, total.total, total.weight, pct(total.score)) == (10, 153, 163, 100, "89.63%")
    assert table_tsv(table).decode() == TABLE2_TSV
    exact = sum(
        Fraction(DEFAULT_WEIGHTS[t]).limit_denominator() * Fraction(p, f + p) for t, (f, p) in TABLE2_COUNTS.items()
    )
    assert total.score == pytest.approx(float(exact))  # 89.6327...: the formula, not a rounding accident


def test_table2_with_the_tools_example_weights():
    """weights_example.json (0.4/0.2/0.2/0.1/0.1, no length): weights need not sum to 100."""
    weights = resolve_weights(
        {"minimal_req": 0.4, "mandatory_req": 0.2, "length": 0, "datatype": 0.1, "permissible": 0.2, "range": 0.1}
    )
    table = score_table(TABLE2_COUNTS, weights)
    expected = 100 * (0.4 * 16 / 18 + 0.2 * 32 / 35 + 0.1 * 1 + 0.2 * 52 / 55 + 0.1 * 3 / 4) / 1.0
    assert table.total.score == pytest.approx(expected)
    assert pct(table.total.score) == "90.25%"
    assert [r.type for r in table.rows][2] == "length" and table.rows[2].score == 0.0


def test_weights_partial_override_unknown_and_invalid():
    weights = resolve_weights({"minimal_req": 20})
    assert weights["minimal_req"] == 20 and weights["range"] == 10 and weights["branching"] == 0
    table = score_table(TABLE2_COUNTS, weights)
    rates = {t: p / (f + p) for t, (f, p) in TABLE2_COUNTS.items()}
    expected = 100 * (20 * rates["minimal_req"] + 10 * sum(v for t, v in rates.items() if t != "minimal_req")) / 70
    assert table.total.score == pytest.approx(expected) and table.total.weight == 70
    with pytest.raises(ConfigError, match="unknown check type 'minimal'"):
        resolve_weights({"minimal": 1})
    with pytest.raises(ConfigError, match="not a number >= 0"):
        resolve_weights({"range": -1})
    with pytest.raises(ConfigError, match="not a number >= 0"):
        resolve_weights({"range": "10"})
    with pytest.raises(ConfigError, match="every weight is 0"):
        resolve_weights(dict.fromkeys(DEFAULT_WEIGHTS, 0))


def test_a_weighted_extra_type_becomes_a_row():
    counts = {**TABLE2_COUNTS, "branching": (1, 9)}
    plain = score_table(counts, resolve_weights(None))
    assert [r.type for r in plain.rows] == list(TABLE2_COUNTS)  # branching: reported, not scored
    weighted = score_table(counts, resolve_weights({"branching": 10}))
    assert [r.type for r in weighted.rows][-1] == "branching" and weighted.total.weight == 110


def test_types_with_no_checks_policies():
    """The consortium README's uc1 example: length has no checks -> 85.10 % renormalised, 86.59 % full credit."""
    counts = {
        "minimal_req": (2, 6),
        "mandatory_req": (2, 20),
        "datatype": (0, 26),
        "permissible": (0, 23),
        "range": (0, 1),
    }
    renorm = score_table(counts, resolve_weights(None), "renormalise")
    full = score_table(counts, resolve_weights(None), "full_credit")
    assert (pct(renorm.total.score), renorm.total.weight, pct(renorm.rows[2].score)) == ("85.10%", 90, "n/a")
    assert (pct(full.total.score), full.total.weight, pct(full.rows[2].score)) == ("86.59%", 100, "10.00%")
    assert [pct(r.score) for r in full.rows[:2]] == ["37.50%", "9.09%"]
    with pytest.raises(ConfigError, match="no_checks"):
        score_table(counts, resolve_weights(None), "ignore")


# -- the checks -----------------------------------------------------------------------------------------------------
def test_minimal_and_mandatory_requirements_with_conditions_and_branching():
    dd = dictionary(
        field("histopat", type="radio", choices={"0": "a", "1": "b", "2": "c"}, minimal=True),
        # required when histopat is not 1, shown only when histopat is not 2
        field(
            "tnm",
            type="radio",
            choices={"0": "x", "1": "y"},
            minimal="[histopat] <> '1'",
            branching="[histopat] <> '2'",
        ),
        field("drug", type="radio", choices={"1": "d"}),
        # minimal when a drug is given, mandatory otherwise (UC4&5's neoadj)
        field("cycles", validation="integer", minimal="[drug] <> ''", mandatory=True),
        field("diag", type="radio", choices={"0": "x"}, mandatory=True),
    )
    rows = [
        {"histopat": "0", "tnm": "", "drug": "1", "cycles": "", "diag": "0"},  # tnm required and blank
        {"histopat": "1", "tnm": "", "drug": "", "cycles": "", "diag": ""},  # tnm: condition false
        {"histopat": "2", "tnm": "", "drug": "", "cycles": "3", "diag": " "},  # tnm: hidden (condition true)
        {"histopat": "0", "tnm": "1", "drug": "1", "cycles": "4", "diag": "0"},
        {"histopat": "", "tnm": "", "drug": "", "cycles": "", "diag": "NA"},  # histopat blank: tnm required
    ]
    result = check(dd, rows)
    assert outcome(result, "histopat.minimal_req") == ["pass", "pass", "pass", "pass", "fail"]
    assert outcome(result, "tnm.minimal_req") == ["fail", "-", "-", "pass", "fail"]
    assert outcome(result, "cycles.minimal_req") == ["fail", "-", "-", "pass", "-"]
    assert outcome(result, "cycles.mandatory_req") == ["-", "fail", "pass", "-", "fail"]
    # ' ' is blank (ingest trims every cell); 'NA' is a value (it then fails conformance, below)
    assert outcome(result, "diag.mandatory_req") == ["pass", "fail", "fail", "pass", "pass"]
    assert outcome(result, "diag.datatype") == ["pass", "-", "-", "pass", "fail"]
    ids = [c.id for c in result.checks]
    assert "histopat.mandatory_req" not in ids  # minimal: true implies mandatory: no second check
    # fail: histopat 1 + tnm 2 + cycles 1; pass: record_id 5 + histopat 4 + tnm 1 + cycles 1
    assert center_counts(result)["minimal_req"] == (4, 11)


def test_same_condition_at_both_levels_gives_one_check():
    dd = dictionary(field("er", validation="number", minimal="[x] = '1'", mandatory="[x] = '1'"), field("x"))
    assert [c.id for c in check(dd, [{"x": "1"}]).checks if c.variable == "er"] == ["er.minimal_req", "er.datatype"]


def test_hidden_value_flag():
    dd = dictionary(
        field("lactation", type="radio", choices={"0": "yes", "1": "no"}),
        field("lactation_dur", validation="integer", branching="[lactation] = '0'"),
    )
    rows = [
        {"lactation": "0", "lactation_dur": "6"},  # shown, filled
        {"lactation": "1", "lactation_dur": "6"},  # hidden but filled: flagged
        {"lactation": "1", "lactation_dur": ""},  # hidden and blank: as it should be
        {"lactation": "", "lactation_dur": "abc"},  # hidden (blank parent): flagged, and not datatype-checked
    ]
    result = check(dd, rows)
    assert outcome(result, "lactation_dur.branching") == ["-", "fail", "pass", "fail"]
    assert outcome(result, "lactation_dur.datatype") == ["pass", "-", "-", "-"]
    flagged = result.checks[[c.id for c in result.checks].index("lactation_dur.branching")]
    assert flagged.dimension == "Plausibility" and "branching logic ([lactation] = '0') hides it" in flagged.message


def test_permissible_values_outside_the_choices():
    dd = dictionary(
        field("hep_b", type="radio", choices={"0": "pos", "1": "neg", "2": "unk"}),
        field("site", type="checkbox", choices={"1": "a", "2": "b", "3": "c"}),
        field("grade", type="dropdown", choices={"G1": "1", "G2": "2"}),
    )
    rows = [
        {"hep_b": "0", "site": "1,3", "grade": "G1"},
        {"hep_b": "3", "site": "1,7", "grade": "G3"},
        {"hep_b": "1.0", "site": "", "grade": ""},
        {"hep_b": "", "site": "x", "grade": "g1"},
        {"hep_b": "x", "site": "2", "grade": "G2"},
    ]
    result = check(dd, rows)
    assert outcome(result, "hep_b.permissible") == ["pass", "fail", "fail", "-", "fail"]
    assert outcome(result, "hep_b.datatype") == ["pass", "pass", "fail", "-", "fail"]  # codes are integers
    assert outcome(result, "site.permissible") == ["pass", "fail", "-", "fail", "pass"]
    assert outcome(result, "grade.permissible") == ["pass", "fail", "-", "fail", "pass"]
    assert outcome(result, "grade.datatype") == ["pass", "pass", "-", "pass", "pass"]  # codes not integers: any text
    assert "(0, 1, 2)" in result.checks[[c.id for c in result.checks].index("hep_b.permissible")].message


def test_branching_on_a_checkbox_code():
    dd = dictionary(
        field("site", type="checkbox", choices={"1": "a", "2": "b"}),
        field("other", branching="[site(2)] = '1'"),
    )
    result = check(dd, [{"site": "1,2", "other": "x"}, {"site": "1", "other": "x"}])
    assert outcome(result, "other.branching") == ["-", "fail"]


def test_bad_logic_is_a_dictionary_error():
    from oncofhir.errors import DictionaryError

    with pytest.raises(DictionaryError, match="variable 'b'"):
        check(dictionary(field("b", branching="[a] = ")), [{"b": "1"}])


def test_length_counts_characters():
    dd = dictionary(field("name", max_length=5))
    result = check(dd, [{"name": "abcde"}, {"name": "abcdef"}, {"name": ""}, {"name": "ééééé"}])
    assert outcome(result, "name.length") == ["pass", "fail", "-", "pass"]
    assert center_counts(result)["length"] == (1, 2)


# The decision table of oncofhir.qc.values: integer and number fields, range 0-110.
NUMBER_CASES = [
    # value,  integer datatype, integer range, number datatype, number range
    ("23.5", "fail", "pass", "pass", "pass"),
    ("1.0", "fail", "pass", "pass", "pass"),
    ("abc", "fail", "-", "fail", "-"),
    (" ", "-", "-", "-", "-"),
    ("inf", "fail", "-", "fail", "-"),
    ("1e3", "fail", "fail", "pass", "fail"),
    ("12,5", "fail", "-", "fail", "-"),
    ("-3", "pass", "fail", "pass", "fail"),
    ("110", "pass", "pass", "pass", "pass"),
    ("+7", "pass", "pass", "pass", "pass"),
]


def test_numbers_versus_text():
    dd = dictionary(
        field("age_i", validation="integer", min="0", max="110"),
        field("age_n", validation="number", min="0", max="110"),
    )
    values = [c[0] for c in NUMBER_CASES]
    result = check(dd, [{"age_i": v, "age_n": v} for v in values])
    assert outcome(result, "age_i.datatype") == [c[1] for c in NUMBER_CASES]
    assert outcome(result, "age_i.range") == [c[2] for c in NUMBER_CASES]
    assert outcome(result, "age_n.datatype") == [c[3] for c in NUMBER_CASES]
    assert outcome(result, "age_n.range") == [c[4] for c in NUMBER_CASES]


@pytest.mark.parametrize("value", ["23.5", "1.0", "abc", "inf", "1e3", "12,5", "-3", "+7", "5.", ".5", "NaN", "1_0"])
def test_qc_and_fhir_agree_on_what_a_number_is(value):
    """QC's number datatype passes exactly when the FHIR stage reads a number; its integer rule is stricter."""
    dd = dictionary(field("n", validation="number"), field("i", validation="integer"))
    result = check(dd, [{"n": value, "i": value}])
    try:
        parse_number(value)
        fhir_number = True
    except BadValue:
        fhir_number = False
    assert (outcome(result, "n.datatype") == ["pass"]) is fhir_number
    if outcome(result, "i.datatype") == ["pass"]:
        parse_number(value, integer=True)  # never raises for a QC-valid integer


def test_dates():
    dd = dictionary(field("d", validation="date_dmy", min="2000-01-01", max="2024-12-31"))
    result = check(dd, [{"d": "2023-02-28"}, {"d": "2023-02-30"}, {"d": "28-02-2023"}, {"d": "1999-12-31"}])
    assert outcome(result, "d.datatype") == ["pass", "fail", "fail", "pass"]
    assert outcome(result, "d.range") == ["pass", "-", "-", "fail"]


def test_every_check_knows_its_dimension_type_variable_and_message():
    dd = dictionary(
        field("a", type="radio", choices={"0": "x"}, minimal=True, branching="[b] = '1'", max_length=3),
        field("b", validation="integer", min="0", max="9", mandatory=True),
    )
    result = check(dd, [{"a": "0", "b": "1"}])
    seen = {(c.variable, c.type, c.dimension) for c in result.checks}
    assert seen == {
        ("record_id", "minimal_req", "Completeness"),
        ("record_id", "datatype", "Conformance"),
        ("a", "minimal_req", "Completeness"),
        ("a", "length", "Conformance"),
        ("a", "datatype", "Conformance"),
        ("a", "permissible", "Conformance"),
        ("a", "branching", "Plausibility"),
        ("b", "mandatory_req", "Completeness"),
        ("b", "datatype", "Conformance"),
        ("b", "range", "Plausibility"),
    }
    assert all(c.message and c.variable in c.message for c in result.checks)


# -- the stage: outputs, gate, escaping -----------------------------------------------------------------------------
UC1_LIKE = [
    field("sex", type="dropdown", choices={"0": "male", "1": "female"}, minimal=True, label="Sex"),
    field("onsetage", validation="integer", min="0", max="110", minimal=True, label="Age at diagnosis"),
    field("hep_b", type="radio", choices={"0": "pos", "1": "neg", "2": "unk"}, mandatory=True),
    field("child_pugh", type="dropdown", choices={"0": "A", "1": "B", "2": "C"}, mandatory=True),
]
ROWS = [
    {"record_id": "p1", "sex": "0", "onsetage": "50", "hep_b": "1", "child_pugh": "0"},  # perfect
    {"record_id": "p2", "sex": "", "onsetage": "50", "hep_b": "1", "child_pugh": "0"},  # minimal 2/3
    {"record_id": "p3", "sex": "1", "onsetage": "150", "hep_b": "1", "child_pugh": "7"},  # range, permissible
    {"record_id": "o'brien<b>", "sex": "1", "onsetage": "61", "hep_b": "<script>alert(1)</script>", "child_pugh": ""},
]


def _stage(tmp_path, rows=ROWS, **options):
    dd = dictionary(*UC1_LIKE, use_case="uc1")
    compiled, records = write_inputs(tmp_path, dd, rows)
    out = tmp_path / "qc"
    summary = stage_qc(compiled, records, out, center="hospital_a", **options)
    return out, summary


def _tsv(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def test_stage_outputs_scores_and_records(tmp_path):
    out, summary = _stage(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    # p2: minimal 2/3 (record_id, sex, onsetage), others all pass:
    #     (50 * 2/3 + 10 + 10 + 10 + 10) / 90 (length has no checks: renormalised) = 81.48
    # p3: permissible 2/3 (sex ok, hep_b ok, child_pugh 7), range 0/1: (50 + 10 + 10 + 10 * 2/3 + 0) / 90 = 85.19
    # p4: mandatory 1/2 (child_pugh blank), datatype 3/4 and permissible 1/2 (hep_b; blank child_pugh not
    #     counted), range 1/1: (50 + 5 + 7.5 + 5 + 10) / 90 = 86.11
    records = _tsv(out / "records.tsv")
    assert [(r["record_id"], r["score"]) for r in records] == [
        ("p1", "100.00"),
        ("p2", "81.48"),
        ("p3", "85.19"),
        ("o'brien<b>", "86.11"),
    ]
    assert records[1]["minimal_req_fail"] == "1" and records[1]["minimal_req_score"] == "66.67"
    assert records[0]["length_score"] == "" and records[2]["range_score"] == "0.00"
    scores = (out / "scores.tsv").read_text().splitlines()
    assert scores[0] == "Dimension\tType\tFail\tPass\tTotal\tWeight\tScore"
    # center: minimal 11/12, mandatory 7/8, datatype 17/18, permissible 8/10, range 3/4, W = 90
    assert scores[1:] == [
        "Completeness\tminimal_req\t1\t11\t12\t50\t50.93%",
        "Completeness\tmandatory_req\t1\t7\t8\t10\t9.72%",
        "Conformance\tlength\t0\t0\t0\t10\tn/a",
        "Conformance\tdatatype\t1\t17\t18\t10\t10.49%",
        "Conformance\tpermissible\t2\t8\t10\t10\t8.89%",
        "Plausibility\trange\t1\t3\t4\t10\t8.33%",
        "Total\t\t6\t46\t52\t90\t88.36%",
    ]
    qc = json.loads((out / "qc.json").read_text())
    assert qc["total"]["score"] == pytest.approx(summary["score"])
    assert qc["records"] == 4 and qc["failures"] == summary["failures"] == 6
    assert [r["type"] for r in qc["table"]] == list(TABLE2_COUNTS)


def test_failures_drill_down(tmp_path):
    rows = [*ROWS, {"record_id": "p5", "sex": "0", "onsetage": "4\t0", "hep_b": "1", "child_pugh": "a\nb"}]
    out, _ = _stage(tmp_path, rows)
    lines = (out / "failures.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "row\trecord_id\tvariable\tcheck\ttype\tdimension\tvalue\tmessage"
    cells = [line.split("\t") for line in lines[1:]]
    assert [(c[0], c[1], c[3], c[6]) for c in cells] == [
        ("3", "p2", "sex.minimal_req", ""),
        ("4", "p3", "onsetage.range", "150"),
        ("4", "p3", "child_pugh.permissible", "7"),
        ("5", "o'brien<b>", "hep_b.datatype", "<script>alert(1)</script>"),
        ("5", "o'brien<b>", "hep_b.permissible", "<script>alert(1)</script>"),
        ("5", "o'brien<b>", "child_pugh.mandatory_req", ""),
        ("6", "p5", "onsetage.datatype", "4\\t0"),
        ("6", "p5", "child_pugh.datatype", "a\\nb"),
        ("6", "p5", "child_pugh.permissible", "a\\nb"),
    ]
    assert all(len(c) == 8 for c in cells)
    assert cells[1][7] == "Age at diagnosis (onsetage) is not between 0 and 110"
    assert cells[0][4:6] == ["minimal_req", "Completeness"]


def test_gate_default_excludes_nothing(tmp_path):
    out, summary = _stage(tmp_path)
    gate = _tsv(out / "gate.tsv")
    assert summary["excluded"] == 0 and {g["passed"] for g in gate} == {"yes"} and {g["reason"] for g in gate} == {""}


def test_gate_threshold_and_type_minimums(tmp_path):
    out, summary = _stage(tmp_path, min_record_score=85.19, min_type_scores={"minimal_req": 100, "permissible": 50})
    gate = _tsv(out / "gate.tsv")
    assert [(g["record_id"], g["score"], g["passed"], g["reason"]) for g in gate] == [
        ("p1", "100.00", "yes", ""),
        ("p2", "81.48", "no", "score 81.48 < 85.19; minimal_req 66.67 < 100.00"),
        ("p3", "85.19", "yes", ""),  # equal to the threshold as shown: passes
        ("o'brien<b>", "86.11", "yes", ""),
    ]
    assert summary["excluded"] == 1
    out, summary = _stage(tmp_path, min_type_scores={"range": 100, "mandatory_req": 60})
    assert [(g["passed"], g["reason"]) for g in _tsv(out / "gate.tsv")] == [
        ("yes", ""),
        ("yes", ""),
        ("no", "range 0.00 < 100.00"),
        ("no", "mandatory_req 50.00 < 60.00"),
    ]
    assert json.loads((out / "qc.json").read_text())["gate"]["excluded"] == 2


def test_gate_configuration_is_checked_before_reading_data(tmp_path):
    for options, message in [
        ({"min_record_score": 101}, "between 0 and 100"),
        ({"min_type_scores": {"minimal": 50}}, "unknown check type"),
        ({"weights": {"range": -2}}, "not a number"),
        ({"no_checks": "skip"}, "no_checks"),
    ]:
        with pytest.raises(ConfigError, match=message):
            stage_qc(tmp_path / "missing.json", tmp_path / "missing.csv", tmp_path / "o", center="c", **options)


def test_html_escapes_every_value(tmp_path):
    out, _ = _stage(tmp_path)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<script>") == 1 and page.lower().count("<script") == 1  # only the failure-list filter
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "o&#x27;brien&lt;b&gt;" in page
    assert "<svg" in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Scores (Table 2)" in page


def test_outputs_are_private(tmp_path):
    out, _ = _stage(tmp_path)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in OUTPUTS:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name


def test_rerun_is_byte_identical(tmp_path):
    out, _ = _stage(tmp_path)
    first = {name: (out / name).read_bytes() for name in OUTPUTS}
    out, _ = _stage(tmp_path)
    assert first == {name: (out / name).read_bytes() for name in OUTPUTS}


def test_full_credit_policy_in_the_stage(tmp_path):
    out, _ = _stage(tmp_path, no_checks="full_credit")
    assert _tsv(out / "records.tsv")[1]["score"] == f"{(50 * 2 / 3 + 50):.2f}"  # 83.33: length counted as 100 %
    assert json.loads((out / "qc.json").read_text())["policy"]["no_checks"] == "full_credit"


def test_groups_score_per_data_access_group(tmp_path):
    dd = dictionary(*UC1_LIKE, use_case="uc1")
    compiled, records = write_inputs(tmp_path, dd, ROWS, dags=["north", "north", "south", "south"])
    stage_qc(compiled, records, tmp_path / "qc", center="c")
    groups = {g["dag"]: g for g in json.loads((tmp_path / "qc" / "qc.json").read_text())["groups"]}
    assert set(groups) == {"north", "south"} and groups["north"]["records"] == 2
    # north = p1 + p2: only p2's sex fails; its score is Table 2 of the two records' pooled counts
    assert groups["north"]["score"] == pytest.approx(100 * (50 * 5 / 6 + 40) / 90)


def test_combined_index_pools_centers(tmp_path):
    dd = dictionary(*UC1_LIKE, use_case="uc1")
    paths, inputs = [], {}
    for center, rows in [("a<1>", ROWS[:2]), ("b", ROWS[2:])]:
        (tmp_path / center).mkdir()
        inputs[center] = write_inputs(tmp_path / center, dd, rows)
        out = tmp_path / "qc" / "uc1" / center
        stage_qc(*inputs[center], out, center=center)
        paths.append(str(out / "qc.json"))
    index = tmp_path / "qc" / "index.html"
    summary = write_qc_index(paths, str(index))
    rows = [r for p in paths for r in json.loads(Path(p).read_text(encoding="utf-8"))["table"]]
    pooled = {
        t: tuple(int(x) for x in np.sum([[r["fail"], r["pass"]] for r in rows if r["type"] == t], axis=0))
        for t in TABLE2_COUNTS
    }
    assert summary["use_cases"]["uc1"] == pytest.approx(score_table(pooled, resolve_weights(None)).total.score)
    page = index.read_text(encoding="utf-8")
    assert 'href="uc1/a%3C1%3E/report.html"' in page and "a&lt;1&gt;" in page and 'href="uc1/b/report.html"' in page
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
    # centers of one use case scored with different weights cannot be pooled
    stage_qc(*inputs["b"], tmp_path / "qc" / "uc1" / "b", center="b", weights={"range": 1})
    with pytest.raises(ConfigError, match="different weights"):
        write_qc_index(paths, str(index))


# -- streaming (issue 11.9): chunks of any size give the same bytes --------------------------------------------------
def test_chunked_qc_writes_the_same_files_as_one_chunk(tmp_path, compiled):
    """An export with duplicates, rejects, branching and three DAGs; a tiny chunk size against one chunk."""
    from oncofhir.demo import generate
    from oncofhir.pipeline import stage_ingest

    dd = compiled["uc45"]
    assert any(f.branching for f in dd.fields.values())
    lines = generate(dd, "hospital_a", 120, seed=11).split("\n")
    for k in range(1, len(lines) - 1, 3):  # three DAGs, interleaved
        lines[k] = lines[k].replace(",hospital_a,", ",north," if k % 2 else ",south,", 1)
    lines.insert(7, "broken,row")  # a ragged row: rejected
    export = tmp_path / "export.csv"
    export.write_text("\n".join(lines), encoding="utf-8")
    compiled_json = tmp_path / "dd.json"
    compiled_json.write_text(dd.to_json(), encoding="utf-8")
    records = tmp_path / "records.csv"
    report = stage_ingest(compiled_json, export, records, tmp_path / "rejects.tsv", tmp_path / "report.json")
    assert report["rejected"] >= 4 and len(report["data_access_groups"]) == 3
    options = {"min_record_score": 75, "min_type_scores": {"mandatory_req": 60, "branching": 100}}
    one = stage_qc(compiled_json, records, tmp_path / "one", center="c", **options)
    small = stage_qc(compiled_json, records, tmp_path / "small", center="c", chunk_rows=2, **options)
    assert one == small
    assert one["excluded"] > 0 and one["failures"] > 0
    for name in OUTPUTS:
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
        assert (tmp_path / "small" / name).stat().st_mode & 0o777 == 0o600


def test_chunked_qc_sends_back_conflicts_first_and_pages_every_failure_in_any_chunk_size(
    tmp_path, compiled, monkeypatch
):
    """uc7: the one record whose HER2 FISH value contradicts its IHC score (0+ hides FISH) sits in the third chunk of
    two rows; send_back.tsv still lists it first, the page lists every failure, and every output (send_back.tsv and
    report.html included) is the same byte for byte as with one chunk."""
    from oncofhir.demo import generate
    from oncofhir.pipeline import stage_ingest

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # both pages print the same date
    dd = compiled["uc7"]
    lines = generate(dd, "site_a", 8, seed=3).splitlines()
    header = lines[0].split(",")
    ihc, fish = header.index("her2ihc"), header.index("her2fish")
    rows = [line.split(",") for line in lines[1:]]
    rows[5][ihc], rows[5][fish] = "0", "0"  # IHC 0+ hides FISH; FISH says positive
    for other in rows[:5] + rows[6:]:
        if other[ihc] != "2":
            other[fish] = ""
    rows[1][header.index("sex")] = "=1+1"  # a formula: neutralised in every TSV
    export = tmp_path / "export.csv"
    export.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    compiled_json = tmp_path / "dd.json"
    compiled_json.write_text(dd.to_json(), encoding="utf-8")
    records = tmp_path / "records.csv"
    stage_ingest(compiled_json, export, records, tmp_path / "rejects.tsv", tmp_path / "report.json")
    one = stage_qc(compiled_json, records, tmp_path / "one", center="c")
    small = stage_qc(compiled_json, records, tmp_path / "small", center="c", chunk_rows=2)
    assert one == small
    for name in OUTPUTS:
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    send_back = [line.split("\t") for line in (tmp_path / "small" / "send_back.tsv").read_text().splitlines()]
    assert send_back[0] == ["row", "record_id", "hidden_conflicts", "conflicting_values", "other_failures"]
    assert send_back[1][:4] == ["7", rows[5][0], "1", "her2fish: 0 = positive"]
    assert [r[0] for r in send_back[2:]] == sorted((r[0] for r in send_back[2:]), key=int)
    assert all(r[2] == "0" for r in send_back[2:]) and len(send_back) > 3
    summary = json.loads((tmp_path / "small" / "qc.json").read_text())
    assert summary["hidden_conflicts"] == {"values": 1, "records": 1}
    failures = (tmp_path / "small" / "failures.tsv").read_text()
    assert "\tsex\t" in failures and "\t'=1+1\t" in failures
    page = (tmp_path / "small" / "report.html").read_text()
    listed = page.split('<table id="failures">', 1)[1].split("</table>", 1)[0]
    assert listed.count("<tr>") == 1 + summary["failures"] == len(failures.splitlines())
    assert f'<td class="n">7</td><td>{rows[5][0]}</td><td>her2fish</td>' in page
