"""Re-identification risk (issue #16): exact class sizes, l-diversity, drivers and generalisations on crafted
records, the mapping's declaration checked at compile time, and ``privacy.action: block`` stopping the encryption
of one use case end to end while the others are encrypted.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES, REPO, stage_fhir_again, workflow_env

from oncofhir.demo import generate
from oncofhir.dictionary import compile_dictionary
from oncofhir.errors import DictionaryError, InputDataError
from oncofhir.privacy import check_release, count_classes, stage_privacy, write_counts
from oncofhir.tsv import cell

SECRET = "a-real-secret-of-32-characters!!"


def _center_files(tmp: Path, center: str, rows: list[tuple[str, str, str, str]], deposited: set[str]) -> tuple:
    """A uc1 records table (record_id, sex, onsetage, indeterm_nodule) and the FHIR index of the deposited ids, each
    written as the FHIR stage writes it (a spreadsheet-safe cell)."""
    records = tmp / f"{center}.records.csv"
    with records.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["_row", "_dag", "record_id", "sex", "onsetage", "indeterm_nodule", "diag_method"])
        for i, (rid, sex, age, nodule) in enumerate(rows, start=2):
            writer.writerow([i, "", rid, sex, age, nodule, "0"])
    index = tmp / f"{center}.index.tsv"
    index.write_text(
        "record_id\tpatient_key\tfile\tbundle_id\tresources\n"
        + "".join(f"{cell(rid)}\tpsn-x{k}\tf.json\tb\t3\n" for k, (rid, *_) in enumerate(rows) if rid in deposited),
        encoding="utf-8",
    )
    return records, index


@pytest.fixture()
def crafted(tmp_path: Path, compiled) -> dict:
    """Two uc1 centers: a has 5 women of 60 and 5 men of 62 plus one man of 87 (unique); b has 5 women of 61
    and one rejected record (not in the index: not deposited, not counted)."""
    dd = compiled["uc1"]
    a_rows = [(f"a{i}", "1", "60", str(i % 2)) for i in range(5)]
    a_rows += [(f"a{i}", "0", "62", "0") for i in range(5, 10)]
    a_rows += [("unique87", "0", "87", "1")]
    b_rows = [(f"b{i}", "1", "61", "1") for i in range(5)] + [("rejected", "0", "87", "1")]
    counts = []
    for center, rows in (("hospital_a", a_rows), ("hospital_b", b_rows)):
        deposited = {rid for rid, *_ in rows if rid != "rejected"}
        records, index = _center_files(tmp_path, center, rows, deposited)
        out = tmp_path / "privacy" / "uc1" / f"{center}.counts.tsv"
        write_counts(dd, count_classes(dd, records, index, center), out)
        counts.append(out)
    dictionary = tmp_path / "uc1.json"
    dictionary.write_text(dd.to_json(), encoding="utf-8")
    return {"dictionary": dictionary, "counts": counts, "tmp": tmp_path}


def test_counts_hold_no_record_id_and_are_owner_only(crafted) -> None:
    text = crafted["counts"][0].read_text(encoding="utf-8")
    assert text == (
        "center\tsex\tonsetage\tindeterm_nodule\trecords\n"
        "hospital_a\t0\t62\t0\t5\n"
        "hospital_a\t0\t87\t1\t1\n"
        "hospital_a\t1\t60\t0\t3\n"
        "hospital_a\t1\t60\t1\t2\n"
    )
    assert "unique87" not in text and "a1" not in text
    assert stat.S_IMODE(crafted["counts"][0].stat().st_mode) == 0o600
    assert "rejected" not in crafted["counts"][1].read_text(encoding="utf-8")


def test_a_unique_patient_gives_the_exact_class_sizes(crafted) -> None:
    tmp = crafted["tmp"]
    line = stage_privacy(crafted["dictionary"], crafted["counts"], tmp / "uc1.json", tmp / "uc1.tsv", 5, "report")
    assert line == "uc1: 16 records, 4 classes, k=1, l=1, 1 record(s) below k=5"
    result = json.loads((tmp / "uc1.json").read_text(encoding="utf-8"))
    assert (result["records"], result["classes"], result["k"], result["l"]) == (16, 4, 1, 1)
    assert (result["records_below_k"], result["classes_below_k"], result["meets_k"]) == (1, 1, False)
    assert result["classes_with_one_sensitive_value"] == 3  # the men of 62, the man of 87, the women of 61
    assert result["smallest_classes"] == [
        {
            "values": {"center": "hospital_a", "sex": "0", "onsetage": "87"},
            "records": 1,
            "sensitive_values": 1,
            "drivers": ["onsetage"],  # without the age he joins the 5 men of hospital_a
            "size_without": {"center": 1, "sex": 1, "onsetage": 6},
        }
    ]
    assert result["without_attribute"]["onsetage"] == {"k": 5, "records_below_k": 0, "classes_below_k": 0}
    assert result["without_attribute"]["center"] == {"k": 1, "records_below_k": 1, "classes_below_k": 1}
    by_band = {o["band"]: (o["k"], o["records_below_k"], o["reaches_k"]) for o in result["generalisations"]}
    assert by_band == {5: (1, 1, False), 10: (1, 1, False), 20: (1, 1, False)}
    assert result["release"] == {
        "action": "report",
        "blocked": False,
        "message": "use case uc1: k-anonymity is 1, below privacy.k = 5: 1 of 16 record(s) are in 1 class(es) "
        "smaller than 5 over center, sex, onsetage",
    }
    rows = list(csv.reader(io.StringIO((tmp / "uc1.tsv").read_text(encoding="utf-8")), delimiter="\t"))
    assert rows == [
        ["center", "sex", "onsetage", "records", "sensitive_values", "below_k"],
        ["hospital_a", "0", "87", "1", "1", "yes"],
        ["hospital_a", "0", "62", "5", "1", "no"],
        ["hospital_a", "1", "60", "5", "2", "no"],
        ["hospital_b", "1", "61", "5", "1", "no"],
    ]
    assert check_release(tmp / "uc1.json") == result["release"]["message"]


def test_a_use_case_meeting_k_is_released_in_block_mode(crafted) -> None:
    """hospital_b alone: one class of 5 women of 61 (its rejected record is not deposited), k = 5."""
    tmp = crafted["tmp"]
    stage_privacy(crafted["dictionary"], crafted["counts"][1:], tmp / "b.json", tmp / "b.tsv", 5, "block")
    result = json.loads((tmp / "b.json").read_text(encoding="utf-8"))
    assert (result["k"], result["meets_k"], result["release"]["blocked"]) == (5, True, False)
    stage_privacy(crafted["dictionary"], crafted["counts"], tmp / "k2.json", tmp / "k2.tsv", 2, "report")
    bands = json.loads((tmp / "k2.json").read_text(encoding="utf-8"))["generalisations"]
    assert [(o["band"], o["k"], o["reaches_k"]) for o in bands] == [(5, 1, False), (10, 1, False), (20, 1, False)]


def test_block_refuses_with_the_reason(crafted) -> None:
    tmp = crafted["tmp"]
    stage_privacy(crafted["dictionary"], crafted["counts"], tmp / "uc1.json", tmp / "uc1.tsv", 5, "block")
    with pytest.raises(InputDataError) as err:
        check_release(tmp / "uc1.json")
    assert str(err.value) == (
        f"{tmp / 'uc1.json'}: use case uc1: k-anonymity is 1, below privacy.k = 5: 1 of 16 record(s) are in "
        "1 class(es) smaller than 5 over center, sex, onsetage; privacy.action is block, so it is not encrypted "
        "(this report lists what would reach k; or set privacy.action: report)"
    )
    assert err.value.exit_code == 4


def test_a_use_case_without_a_privacy_block_is_blocked_saying_what_to_declare(tmp_path: Path) -> None:
    """The message pointed at results/privacy/<uc>.json "for what would reach k" (a fixed path, wrong with another
    `results`, and nothing was measured) and the TSV said below_k "no" for a use case not assessed."""
    folder = tmp_path / "ucnopriv"
    shutil.copytree(DICTIONARIES / "uc1", folder)
    mapping = (folder / "mapping.yaml").read_text(encoding="utf-8")
    mapping = mapping.replace("use_case: uc1", "use_case: ucnopriv").split("\nprivacy:")[0] + "\n"
    (folder / "mapping.yaml").write_text(mapping, encoding="utf-8")
    dd = compile_dictionary(folder, ONTOLOGIES)
    records, index = _center_files(tmp_path, "a", [("r1", "1", "60", "0"), ("r2", "0", "61", "1")], {"r1", "r2"})
    counts = tmp_path / "a.counts.tsv"
    write_counts(dd, count_classes(dd, records, index, "a"), counts)
    (tmp_path / "dd.json").write_text(dd.to_json(), encoding="utf-8")
    out = tmp_path / "elsewhere" / "ucnopriv.json"
    stage_privacy(tmp_path / "dd.json", [counts], out, tmp_path / "u.tsv", 5, "block")
    with pytest.raises(InputDataError) as err:
        check_release(out)
    assert str(err.value) == (
        f"{out}: use case ucnopriv: no quasi_identifiers declared under privacy in its mapping.yaml; privacy.action "
        "is block, so it is not encrypted (declare privacy: {quasi_identifiers: [...]} in its mapping.yaml, "
        "docs/dictionary-format.md; or set privacy.action: report)"
    )
    assert list(csv.reader(io.StringIO((tmp_path / "u.tsv").read_text()), delimiter="\t")) == [
        ["records", "sensitive_values", "below_k"],
        ["2", "", ""],
    ]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "FileNotFoundError: [Errno 2] No such file or directory: '{path}'"),
        ("not json", "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
        ('{"use_case": "uc1"}', "KeyError: 'release'"),
    ],
)
def test_the_gate_on_a_missing_or_corrupt_decision_is_an_input_error(tmp_path: Path, content, reason) -> None:
    """``oncofhir privacy-gate`` on such a file was an internal error (exit 70)."""
    path = tmp_path / "uc1.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputDataError) as err:
        check_release(path)
    assert str(err.value) == (
        f"{path}: cannot read the privacy decision ({reason.format(path=path)}); rerun the privacy stage"
    )
    assert err.value.exit_code == 4


def test_a_band_reaching_k_is_reported(tmp_path: Path, compiled) -> None:
    """Ages 60-64 of one sex: each age alone is a class of 2, 5-year bands make one class of 10."""
    dd = compiled["uc1"]
    rows = [(f"r{i}", "1", str(60 + i % 5), "0") for i in range(10)]
    records, index = _center_files(tmp_path, "hospital_a", rows, {r[0] for r in rows})
    counts = tmp_path / "a.counts.tsv"
    write_counts(dd, count_classes(dd, records, index, "hospital_a"), counts)
    dictionary = tmp_path / "uc1.json"
    dictionary.write_text(dd.to_json(), encoding="utf-8")
    stage_privacy(dictionary, [counts], tmp_path / "p.json", tmp_path / "p.tsv", 5, "report")
    result = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert (result["k"], result["records_below_k"], result["l"]) == (2, 10, 1)
    assert result["generalisations"][0] == {
        "attributes": ["onsetage"],
        "band": 5,
        "k": 10,
        "records_below_k": 0,
        "classes_below_k": 0,
        "reaches_k": True,
    }
    from oncofhir.privacy.html import privacy_section

    assert "onsetage in 5-year/unit bands reaches k" in privacy_section([tmp_path / "p.json"])


def test_the_declaration_is_checked_when_compiling(tmp_path: Path) -> None:
    folder = tmp_path / "uc1"
    shutil.copytree(DICTIONARIES / "uc1", folder)
    mapping = folder / "mapping.yaml"
    text = mapping.read_text(encoding="utf-8")
    assert "  quasi_identifiers: [center, sex, onsetage]\n" in text
    mapping.write_text(
        text.replace("[center, sex, onsetage]", "[center, sex, age_at_dx]").replace(
            "sensitive: indeterm_nodule", "sensitive: hcc"
        ),
        encoding="utf-8",
    )
    with pytest.raises(DictionaryError) as err:
        compile_dictionary(folder, ONTOLOGIES)
    assert "privacy, quasi_identifiers: 'age_at_dx' is not in the REDCap dictionary" in err.value.details
    assert "privacy, sensitive: 'hcc' is not in the REDCap dictionary" in err.value.details


# ---- end to end: privacy.action: block stops uc1's encryption, uc3 is encrypted ---------------------------------


def _craft_export(compiled, use_case: str, center: str, values) -> str:
    """A generated export whose quasi-identifier columns are overwritten by ``values(row number)``."""
    text = generate(compiled[use_case], center, 12, 5)
    rows = list(csv.DictReader(io.StringIO(text)))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for i, row in enumerate(rows):
        writer.writerow(row | values(i))
    return out.getvalue()


def test_block_stops_encryption_of_that_use_case_only(tmp_path: Path, compiled) -> None:
    from oncofhir.deposit.keys import generate_keypair

    generate_keypair(tmp_path / "ega.sec", tmp_path / "ega.pub")
    exports = {
        # uc1: everybody a woman of 50 but row 0, a man of 87: one unique patient
        ("uc1", "hospital_a"): lambda i: {"sex": "0", "onsetage": "87"} if i == 0 else {"sex": "1", "onsetage": "50"},
        # uc3: all alike: one class
        ("uc3", "hospital_a"): lambda i: {"sex": "1", "onsetage": "50", "histopat": "0"},
    }
    sheet = ["use_case\tcenter\texport\tdescription\n"]
    for (use_case, center), values in exports.items():
        path = tmp_path / f"{use_case}.csv"
        path.write_text(_craft_export(compiled, use_case, center, values), encoding="utf-8")
        sheet.append(f"{use_case}\t{center}\t{path}\ttest\n")
    (tmp_path / "centers.tsv").write_text("".join(sheet), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"centers: {tmp_path / 'centers.tsv'}\nresults: {tmp_path / 'results'}\nprivacy: {{k: 5, action: block}}\n"
        f"deposit: {{demo_keys: false, recipients: [{tmp_path / 'ega.pub'}]}}\n"
        "ig: {enabled: false}\n",  # no IG needed here (test_ig, test_rerun and test_workflow build it)
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--keep-going", "--configfile", str(config)],
        cwd=REPO,
        env=workflow_env(SECRET),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    results = tmp_path / "results"
    assert result.returncode != 0, output[-3000:]
    assert (results / "privacy" / "uc1.json").is_file(), output[-3000:]
    uc1 = json.loads((results / "privacy" / "uc1.json").read_text(encoding="utf-8"))
    uc3 = json.loads((results / "privacy" / "uc3.json").read_text(encoding="utf-8"))
    deposited = uc1["records"]
    assert (uc1["k"], uc1["records_below_k"], uc1["classes_below_k"], uc1["classes"]) == (1, 1, 1, 2)
    assert uc1["smallest_classes"][0]["values"] == {"center": "hospital_a", "sex": "0", "onsetage": "87"}
    message = (
        f"use case uc1: k-anonymity is 1, below privacy.k = 5: 1 of {deposited} record(s) are in 1 class(es) "
        "smaller than 5 over center, sex, onsetage; privacy.action is block, so it is not encrypted (this report "
        "lists what would reach k; or set privacy.action: report)"
    )
    assert f"oncofhir: error: {results / 'privacy' / 'uc1.json'}: {message}" in output, output[-3000:]
    assert (uc3["k"], uc3["classes"], uc3["release"]["blocked"]) == (uc3["records"], 1, False)
    assert uc3["records"] >= 5
    assert (results / "ega" / "uc3" / "hospital_a.manifest.tsv").is_file()
    assert not (results / "ega" / "uc1" / "hospital_a.manifest.tsv").exists()
    assert not (results / "ega" / "uc1" / "hospital_a").exists()
    # the analysis tables are deposited by the same job, behind the same gate (they were not, before)
    assert not (results / "ega" / "tables" / "uc1").exists()
    assert len(list((results / "ega" / "tables" / "uc3" / "hospital_a").glob("*.parquet.c4gh"))) >= 2
    # no record id in the privacy outputs or logs
    ids = [row.split(",", 1)[0] for row in (tmp_path / "uc1.csv").read_text(encoding="utf-8").splitlines()[1:]]
    for path in [*(results / "privacy").rglob("*"), *(results / "logs" / "privacy").rglob("*")]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not [rid for rid in ids if rid and rid in text], path


def test_the_risk_section_goes_into_the_run_report_escaped_below_its_header(tmp_path: Path) -> None:
    """The section is rendered from its template (values escaped) and placed by run_report.html.j2 after the
    center table, keeping the page header and legend; a plain string given as a section is escaped, not placed."""
    from oncofhir.privacy.html import privacy_section
    from oncofhir.report import render_html

    result = {
        "use_case": "uc1",
        "assessed": True,
        "quasi_identifiers": ["center", "onsetage"],
        "k_required": 5,
        "records": 3,
        "k": 1,
        "l": 1,
        "records_below_k": 3,
        "meets_k": False,
        "smallest_classes": [
            {"values": {"center": "<b>a</b>", "onsetage": "16"}, "records": 1, "drivers": ["onsetage"]},
        ],
        "release": {"action": "report", "blocked": False, "message": "below k"},
    }
    (tmp_path / "uc1.json").write_text(json.dumps(result), encoding="utf-8")
    page = render_html([], deposit=False, sections=[privacy_section([tmp_path / "uc1.json"])])
    assert page.index('<p class="meta">Run date') < page.index('<p class="legend">') < page.index('id="privacy"')
    assert '<tr class="bad"><td>uc1</td><td class="n">3</td>' in page
    assert "<td>&lt;b&gt;a&lt;/b&gt;</td><td>16</td>" in page and "<b>a</b>" not in page
    assert '<a href="../privacy/uc1.tsv">classes</a>' in page
    assert page.endswith("</body></html>\n")
    assert "&lt;h2&gt;x&lt;/h2&gt;" in render_html([], deposit=False, sections=["<h2>x</h2>"])


def test_the_classes_tsv_is_spreadsheet_safe(tmp_path: Path, compiled) -> None:
    """A center named like a formula (from the centers sheet) is written as text, as in every other TSV."""
    dd = compiled["uc1"]
    rows = [("r1", "1", "60", "0")]
    records, index = _center_files(tmp_path, "site", rows, {"r1"})
    counts = tmp_path / "a.counts.tsv"
    write_counts(dd, count_classes(dd, records, index, "=HYPERLINK(1)"), counts)
    dictionary = tmp_path / "uc1.json"
    dictionary.write_text(dd.to_json(), encoding="utf-8")
    stage_privacy(dictionary, [counts], tmp_path / "p.json", tmp_path / "p.tsv", 5, "report")
    lines = (tmp_path / "p.tsv").read_text(encoding="utf-8").splitlines()
    assert lines == ["center\tsex\tonsetage\trecords\tsensitive_values\tbelow_k", "'=HYPERLINK(1)\t1\t60\t1\t1\tyes"]
    assert oct(stat.S_IMODE((tmp_path / "p.tsv").stat().st_mode)) == "0o600"


def test_record_ids_a_spreadsheet_would_misread_are_counted(tmp_path: Path, compiled) -> None:
    """The index holds ``'=1`` for the id ``=1``, and a quote is data: every deposited record is counted (a csv
    reader of the index used to miss both)."""
    rows = [("=1", "1", "60", "0"), ('a"b', "1", "60", "0"), ("plain", "1", "60", "0")]
    records, index = _center_files(tmp_path, "a", rows, {r[0] for r in rows})
    assert count_classes(compiled["uc1"], records, index, "a") == {("a", "1", "60", "0"): 3}


@pytest.mark.parametrize("use_case", ["uc1", "uc7"])
def test_the_fhir_stage_writes_the_counts_the_privacy_counts_command_writes(tmp_path: Path, use_case: str) -> None:
    """The workflow counts in the fhir job (after the index is written); ``oncofhir privacy-counts`` over the same
    records and index must give the same file, and only deposited records (the index's) count."""
    from oncofhir.cli import main
    from oncofhir.pipeline import convert

    dd = compile_dictionary(DICTIONARIES / use_case, ONTOLOGIES)
    export = tmp_path / f"{use_case}.csv"
    export.write_text(generate(dd, "hospital_a", 30, 3), encoding="utf-8")
    out = tmp_path / "convert"
    convert(DICTIONARIES / use_case, ONTOLOGIES, export, out, bundle_files=False)
    work, again = out / "work", tmp_path / "stage"
    summary = stage_fhir_again(out, again, privacy_counts=("hospital_a", again / "counts.tsv"))
    args = ["privacy-counts", "--dictionary", str(work / "dictionary.json"), "--records", str(work / "records.csv")]
    assert (
        main([*args, "--index", str(again / "index.tsv"), "--center", "hospital_a", "--out", str(tmp_path / "c.tsv")])
        == 0
    )
    written = (again / "counts.tsv").read_text(encoding="utf-8")
    assert written == (tmp_path / "c.tsv").read_text(encoding="utf-8")
    assert stat.S_IMODE((again / "counts.tsv").stat().st_mode) == 0o600
    assert sum(int(line.rsplit("\t", 1)[1]) for line in written.splitlines()[1:]) == summary["bundles"]
