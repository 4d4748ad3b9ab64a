"""The QC pool checks (issue #15): outliers against the pooled distribution, duplicate patients within and across
centers, cross-center drift; their statistics, the demo's injected defects found exactly, the QC index's heat map,
and the settings' errors."""

from __future__ import annotations

import csv
import json
import math
import stat
from pathlib import Path

import numpy as np
import pytest
from helpers import DICTIONARIES, ONTOLOGIES

from oncofhir.demo import POOL_DEFECTS, generate, outlier_field, recoded_field, rule_variables
from oncofhir.dictionary import compile_dictionary
from oncofhir.errors import ConfigError, DictionaryError
from oncofhir.pipeline import stage_ingest
from oncofhir.qc import stage_qc, write_qc_index
from oncofhir.qc.drift import chi2_sf, js_distance, ks_pvalue, ks_statistic
from oncofhir.qc.duplicates import KeyedRecord, find_duplicates
from oncofhir.qc.outliers import rare_codes, robust_scale, weighted_median
from oncofhir.qc.pool import pool_settings, stage_qc_pool

CENTERS = ["hospital_a", "hospital_b", "hospital_c", "hospital_d", "hospital_e"]


# ---- statistics -------------------------------------------------------------------------------------------------
def test_jensen_shannon_distance_of_every_unknown_entered_as_no() -> None:
    """Shares (1/3, 2/3, 0) against (1/3, 1/3, 1/3): JSD = (2/3·log2(4/3) + 1/3·log2(2/3) + 1/3·log2 2) / 2."""
    expected = math.sqrt((2 / 3 * math.log2(4 / 3) + 1 / 3 * math.log2(2 / 3) + 1 / 3) / 2)
    assert js_distance(np.array([10.0, 20.0, 0.0]), np.array([5.0, 5.0, 5.0])) == pytest.approx(expected, abs=1e-12)
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == 1.0
    assert js_distance(np.array([2.0, 6.0]), np.array([1.0, 3.0])) == 0.0


def test_chi_square_and_kolmogorov_tails_match_the_tables() -> None:
    assert chi2_sf(9.2103, 2) == pytest.approx(0.01, abs=1e-5)  # exact for df = 2
    assert chi2_sf(18.307, 10) == pytest.approx(0.05, abs=1e-3)  # Wilson–Hilferty
    assert chi2_sf(0.0, 3) == 1.0
    # Kolmogorov's 5 % point 1.358 / sqrt(n·m / (n + m)) for large samples
    assert ks_pvalue(1.358 / math.sqrt(5000), 10000, 10000) == pytest.approx(0.05, abs=2e-3)
    values = np.array([1.0, 2.0, 3.0, 4.0])
    assert ks_statistic(values, np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0, 1.0])) == 1.0
    assert ks_statistic(values, np.array([1.0, 1.0, 1.0, 1.0]), np.array([1.0, 0.0, 2.0, 1.0])) == 0.25


def test_robust_scale_ignores_the_outlier_it_should_find() -> None:
    values, counts = np.array([1.0, 2.0, 3.0, 4.0, 100.0]), np.ones(5)
    scale = robust_scale(values, counts)
    assert (scale.median, scale.scale) == (3.0, 1.4826)  # MAD of 2 1 0 1 97 is 1
    assert scale.z(np.array([100.0]))[0] == pytest.approx(97 / 1.4826)
    assert weighted_median(np.array([1.0, 2.0, 7.0]), np.array([2.0, 1.0, 1.0])) == 1.5
    assert rare_codes({"0": 998, "1": 1, "2": 1000}, 0.001) == {"1"}


def test_the_double_mad_measures_each_side_of_a_skewed_variable_on_its_own() -> None:
    """A receptor percentage: 35 values of 0, 65 spread evenly over 1-100, and one 2001 (101 values, median 24.2).
    One MAD, set by the crowd at 0, would put 98 % at robust z 2; each side's own MAD puts it at 1.3, 2001 % at 34.5."""
    values = np.array([0.0, *np.linspace(1, 100, 65), 2001.0])
    counts = np.array([35.0, *np.ones(65), 1.0])
    scale = robust_scale(values, counts)
    step = 99 / 64  # linspace's step
    assert scale.median == 1 + 15 * step == 24.203125  # the 51st of 101 values
    assert scale.low == 1.4826 * 24.203125  # below: 35 zeros (deviation 24.2) outnumber the 16 values 1-24.2
    assert scale.high == 1.4826 * 25 * step  # above: the 26th of the 51 deviations 0, step, ..., 1976.8
    z = scale.z(np.array([0.0, 98.0, 2001.0]))
    assert z.round(2).tolist() == [0.67, 1.29, 34.48]


def test_duplicates_pair_every_member_of_a_group_within_and_across() -> None:
    records = [
        KeyedRecord("b", "r9", 5, ("1", "50")),
        KeyedRecord("a", "r1", 2, ("1", "50")),
        KeyedRecord("a", "r2", 3, ("1", "50")),
        KeyedRecord("a", "r3", 4, ("0", "50")),
    ]
    pairs = find_duplicates(records)
    assert [(p.first.record_id, p.second.record_id, p.scope) for p in pairs] == [
        ("r1", "r2", "within"),
        ("r1", "r9", "across"),
        ("r2", "r9", "across"),
    ]


# ---- settings and dictionary ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"drift": {"alpha": 0}}, "qc.pool.drift.alpha: 0 is not a number > 0 and <= 1 (config/README.md)"),
        (
            {"drift": {"categorical": 1.5}},
            "qc.pool.drift.categorical: 1.5 is not a number > 0 and <= 1 (config/README.md)",
        ),
        (
            {"outliers": {"max_robust_z": -1}},
            "qc.pool.outliers.max_robust_z: -1 is not a number > 0 (config/README.md)",
        ),
        ({"drift": {"min_n": 0}}, "qc.pool.drift.min_n: 0 is not an integer >= 1 (config/README.md)"),
        ({"weights": {"outliers": 1}}, "qc.pool.weights: unknown check 'outliers' (known: outlier, duplicate, drift)"),
    ],
)
def test_a_bad_pool_setting_names_its_key(config: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        pool_settings(config)
    assert str(raised.value) == message


def test_a_duplicate_key_that_is_not_a_variable_fails_the_dictionary(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "uc1"
    shutil.copytree(DICTIONARIES / "uc1", folder)
    mapping = folder / "mapping.yaml"
    mapping.write_text(
        mapping.read_text(encoding="utf-8").replace("keys: [sex, onsetage,", "keys: [sex, onset_age,"), encoding="utf-8"
    )
    with pytest.raises(DictionaryError) as raised:
        compile_dictionary(folder, ONTOLOGIES)
    assert "duplicates, keys: 'onset_age' is not in the REDCap dictionary" in raised.value.details


# ---- the demo's injected defects, found exactly -----------------------------------------------------------------
@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Five clean uc7 centers of 80 records (no random defects) with the demo's pool defects, ingested, checked and
    pooled."""
    root = tmp_path_factory.mktemp("pool")
    dd = compile_dictionary(DICTIONARIES / "uc7", ONTOLOGIES)
    compiled = root / "uc7.json"
    compiled.write_text(dd.to_json(), encoding="utf-8")
    stats = []
    for center in CENTERS:
        export = root / f"{center}.csv"
        export.write_text(generate(dd, center, 80, 11, defect_rate=0.0), encoding="utf-8")
        folder = root / center
        stage_ingest(compiled, export, folder / "records.csv", folder / "rejects.tsv", folder / "ingest.json")
        stage_qc(compiled, folder / "records.csv", folder / "qc", center=center)
        stats.append(folder / "qc" / "pool_stats.json")
    summary = stage_qc_pool(compiled, stats, root / "pool", pseudonym=lambda uc, rid: f"psn-{uc}-{rid}")
    return root, summary


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_the_injected_outlier_is_the_only_one(pooled: tuple[Path, dict]) -> None:
    root, summary = pooled
    dd = compile_dictionary(DICTIONARIES / "uc7", ONTOLOGIES)
    # a percentage without validation limits (no range check sees it) that no mapping rule names (dfs is in one)
    assert outlier_field(list(dd.fields.values())[1:], rule_variables(dd)).name == "ki67"
    found = rows(root / "pool" / "outliers.tsv")
    assert [(r["center"], r["variable"], r["value"], r["records"]) for r in found] == [
        ("hospital_a", "ki67", "2001", "1")  # 100 % (demo maximum) x 20 + 1
    ]
    assert summary["outliers"] == 1


def test_the_injected_duplicates_are_the_only_pairs_with_ids_and_pseudonyms(pooled: tuple[Path, dict]) -> None:
    root, summary = pooled
    found = rows(root / "pool" / "duplicates.tsv")
    assert [(r["scope"], r["center"], r["other_center"]) for r in found] == [
        ("within", "hospital_a", "hospital_a"),
        ("across", "hospital_a", "hospital_b"),
    ]
    for r in found:
        assert r["pseudonym"] == f"psn-uc7-{r['record_id']}" and r["record_id"] != r["other_record_id"]
    assert summary["duplicate_pairs"] == 2
    assert stat.S_IMODE((root / "pool" / "duplicates.tsv").stat().st_mode) == 0o600
    per = json.loads((root / "pool" / "pool.json").read_text())["per_center"]
    assert per["hospital_a"]["duplicate_pairs"] == {"within": 1, "across": 1}
    assert per["hospital_b"]["duplicate_pairs"] == {"within": 0, "across": 1}
    assert [per[c]["duplicate"][0] for c in CENTERS] == [3, 1, 0, 0, 0]  # records in a pair


def test_the_recoded_center_is_the_only_drift(pooled: tuple[Path, dict]) -> None:
    root, summary = pooled
    dd = compile_dictionary(DICTIONARIES / "uc7", ONTOLOGIES)
    variable, unknown, no = recoded_field(list(dd.fields.values())[1:], rule_variables(dd))
    assert (variable.name, unknown, no) == ("lactation", "2", "1")
    drift = rows(root / "pool" / "drift.tsv")
    flagged = [(r["center"], r["variable"], r["statistic"]) for r in drift if r["flag"] == "yes"]
    assert flagged == [("hospital_c", "lactation", "jensen_shannon")]
    assert summary["drift_flags"] == 1
    # every (center, pooled variable) has a line: 5 centers x the coded and numeric variables with values
    assert len(drift) == 5 * len({r["variable"] for r in drift})


def test_the_demo_injects_the_pool_defects_deterministically(tmp_path: Path) -> None:
    dd = compile_dictionary(DICTIONARIES / "uc1", ONTOLOGIES)
    assert generate(dd, "hospital_b", 30, 3) == generate(dd, "hospital_b", 30, 3)
    clean = generate(dd, "hospital_c", 30, 3, pool_defects=None)
    recoded = generate(dd, "hospital_c", 30, 3)
    assert clean != recoded and POOL_DEFECTS["recoded"] == "hospital_c"
    column = clean.splitlines()[0].split(",").index("ald")  # uc1's first no/unknown variable
    before = [line.split(",")[column] for line in clean.splitlines()[1:]]
    after = [line.split(",")[column] for line in recoded.splitlines()[1:]]
    assert "2" in before and "2" not in after
    assert [b if b != "2" else "1" for b in before] == after


# ---- the QC index -----------------------------------------------------------------------------------------------
def test_the_index_shows_the_heat_map_panels_and_counts_and_scores_only_weighted_checks(
    pooled: tuple[Path, dict], tmp_path: Path
) -> None:
    root, _ = pooled
    qc = [str(root / c / "qc" / "qc.json") for c in CENTERS]
    pool = root / "pool" / "pool.json"
    out = tmp_path / "qc" / "index.html"
    unweighted = write_qc_index(qc, str(out), pool_json_paths=[str(pool)])
    page = out.read_text(encoding="utf-8")
    assert "uc7: across centers (outliers, duplicates, drift)" in page
    assert 'href="#d-uc7-hospital_c-lactation" class="f">!</a>' in page
    assert '<div class="dist" id="d-uc7-hospital_c-lactation">' in page
    assert "<script" not in page and "src=" not in page  # no script, nothing fetched
    # 79 records (the demo's repeated id rejects both copies), 1 outlier, 3 records in pairs, 1 pair within, 1 across
    assert (
        '<tr><td>hospital_a</td><td class="n">79</td><td class="n">1</td><td class="n">3</td><td class="n">1</td>'
        in page
    )
    # with a weight, the outlier and duplicate counts enter the score
    data = json.loads(pool.read_text())
    data["settings"]["weights"] = {"outlier": 0, "duplicate": 10, "drift": 0}
    weighted_pool = tmp_path / "pool.json"
    weighted_pool.write_text(json.dumps(data))
    weighted = write_qc_index(qc, str(tmp_path / "w.html"), pool_json_paths=[str(weighted_pool)])
    assert weighted["use_cases"]["uc7"] != unweighted["use_cases"]["uc7"]
    assert "duplicate pass" in (tmp_path / "w.html").read_text(encoding="utf-8")


def _stats(center: str, codes: dict[str, int], numbers: dict[float, int], keys: list[list]) -> dict:
    values = sorted(numbers)
    return {
        "format": 1,
        "use_case": "t",
        "center": center,
        "records": sum(codes.values()),
        "variables": {
            "smoker": {"kind": "code", "counts": codes},
            "size": {"kind": "number", "values": values, "counts": [numbers[v] for v in values]},
        },
        "duplicates": {"keys": ["sex", "age"], "min_filled": 2, "records": keys},
    }


def test_a_rare_code_a_far_number_and_a_lone_center() -> None:
    from oncofhir.qc.pool import PoolSettings, assess_pool

    labels = {"smoker": {"0": "no", "1": "yes", "2": "former"}}
    a = _stats("a", {"0": 500, "1": 499}, {10.0: 500, 12.0: 499}, [["r1", 2, ["1", "50"]]])
    b = _stats("b", {"0": 500, "1": 499, "2": 1}, {10.0: 499, 12.0: 500, 400.0: 1}, [["s1", 2, ["1", "50"]]])
    result = assess_pool([a, b], labels, {}, PoolSettings())
    assert result["outlier_rows"] == [
        ["b", "smoker", "rare code", "2", 1, "", "", "0.000500"],  # 1 of 1999 values, below 0.001
        # median 12; above it 999 of 1000 values are 12 (MAD 0), so it borrows the scale below it: the deviations
        # of 999 tens (2) and 999 twelves (0) have median 1: (400 - 12) / (1.4826 x 1)
        ["b", "size", "number", "400", 1, "12", "261.70", ""],
    ]
    assert [(p.first.record_id, p.second.record_id, p.scope) for p in result["pairs"]] == [("r1", "s1", "across")]
    assert result["summary"]["per_center"]["b"]["outlier"] == [2, 1998]
    # a use case with one center has no "others": nothing to compare, no flag, no crash
    alone = assess_pool([a], labels, {}, PoolSettings())
    assert {c["flag"] for v in alone["summary"]["variables"] for c in v["cells"].values()} == {False}
    assert [row[3:] for row in alone["drift_rows"]] == [["", "", 999, 0, "no"], ["", "", 999, 0, "no"]]
