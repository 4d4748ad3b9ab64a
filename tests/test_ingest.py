"""Ingest: every REDCap export quirk handled, every row accounted for, every error names file, line, value."""

import json
from pathlib import Path

import pytest

from oncofhir.errors import InputDataError
from oncofhir.ingest import Reject, ingest_export, read_rejects, write_rejects

UC1_COLUMNS = (
    "record_id,redcap_data_access_group,sex,onsetage,indeterm_nodule,diag_method,hep_b,hep_c,ald,autoimm_hep,"
    "nafld,psc,others,chronic_hep,cirrhosis,child_pugh,use_case_1_complete"
)


def export(
    tmp_path: Path, lines: list[str], *, header: str = UC1_COLUMNS, bom: bool = False, crlf: bool = False
) -> Path:
    nl = "\r\n" if crlf else "\n"
    text = nl.join([header, *lines]) + nl
    path = tmp_path / "export.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_bom_crlf_dag_and_form_status(tmp_path: Path, compiled) -> None:
    path = export(
        tmp_path,
        ["A1,site_1,0,78,0,0,2,2,2,2,1,2,2,1,2,1,2", "A2,site_1, 1 ,,,,,,,,,,,,,,0"],
        bom=True,
        crlf=True,
    )
    result = ingest_export(path, compiled["uc1"])
    assert result.report["bom"] is True
    assert result.report["line_endings"] == "CRLF"
    assert result.report["rows_in"] == 2
    assert result.report["records"] == 2
    assert result.report["data_access_groups"] == {"site_1": 2}
    assert result.records.rows[1]["sex"] == "1"  # surrounding blanks stripped
    assert result.records.rows[0]["use_case_1_complete"] == "2"
    assert result.records.row_numbers == [2, 3]
    assert result.rejects == []


def test_unknown_and_missing_optional_columns_are_reported(tmp_path: Path, compiled) -> None:
    header = UC1_COLUMNS.replace(",child_pugh", "") + ",extra_col"
    path = export(tmp_path, ["A1,s,0,78,0,0,2,2,2,2,1,2,2,1,2,2,zzz"], header=header)
    result = ingest_export(path, compiled["uc1"])
    assert result.report["unknown_columns"] == ["extra_col"]
    assert result.report["missing_columns"] == ["child_pugh"]
    assert result.records.rows[0]["child_pugh"] == ""
    assert "extra_col" not in result.records.rows[0]


def test_missing_required_column_is_an_error_for_the_center(tmp_path: Path, compiled) -> None:
    header = UC1_COLUMNS.replace(",onsetage", "")
    path = export(tmp_path, ["A1,s,0,0,0,2,2,2,2,1,2,2,1,2,1,2"], header=header)
    with pytest.raises(InputDataError) as err:
        ingest_export(path, compiled["uc1"])
    assert str(err.value) == (
        f"{path}: required (minimal) column(s) missing: onsetage: export all fields of the instrument from REDCap"
    )


def test_another_use_cases_export_says_so_instead_of_asking_for_all_fields(tmp_path: Path, compiled) -> None:
    """A uc7-like export in a uc1 row shares record_id, sex and onsetage: most of its columns are foreign."""
    header = "record_id,redcap_data_access_group,sex,onsetage,histo,grade,stage_t,stage_n,use_case_7_complete"
    path = export(tmp_path, ["A1,s,0,61,1,2,3,0,2"], header=header)
    with pytest.raises(InputDataError) as err:
        ingest_export(path, compiled["uc1"])
    assert str(err.value) == (
        f"{path}: required (minimal) column(s) missing: indeterm_nodule: 5 of the header's 7 columns are not in the "
        "uc1 dictionary: this is another use case's export, or the centers sheet gives the wrong use case"
    )


def test_duplicates_repeats_ragged_and_blank_ids_are_rejected_with_reasons(tmp_path: Path, compiled) -> None:
    header = UC1_COLUMNS.replace(",sex", ",redcap_repeat_instrument,redcap_repeat_instance,sex")
    row = "{rid},s,{rpt},{inst},0,78,0,0,2,2,2,2,1,2,2,1,2,1,2"
    path = export(
        tmp_path,
        [
            row.format(rid="A1", rpt="", inst=""),
            row.format(rid="A2", rpt="", inst=""),
            row.format(rid="A1", rpt="", inst=""),
            row.format(rid="A3", rpt="biopsy", inst="2"),
            "A4,s,,,0,78",
            row.format(rid="", rpt="", inst=""),
            row.format(rid="A5", rpt="", inst=""),
            row.format(rid='"A6\tx"', rpt="", inst=""),
            row.format(rid="A7\x1b", rpt="", inst=""),
        ],
        header=header,
    )
    result = ingest_export(path, compiled["uc1"])
    assert [r["record_id"] for r in result.records.rows] == ["A2", "A5"]
    assert [(r.row, r.record_id, r.reason) for r in result.rejects] == [
        (2, "A1", "record id 'A1' appears on lines 2, 4 (duplicate rows): resolve in REDCap, none is used"),
        (4, "A1", "record id 'A1' appears on lines 2, 4 (duplicate rows): resolve in REDCap, none is used"),
        (5, "A3", "repeating instrument 'biopsy' instance 2: this data model has no repeating instruments"),
        (6, "A4", "row has 6 cells, the header has 19"),
        (7, "", "blank record id (column 'record_id')"),
        (9, "A6\\tx", "record id holds the control character U+0009 (column 'record_id'): fix it in REDCap"),
        (10, "A7\\x1b", "record id holds the control character U+001B (column 'record_id'): fix it in REDCap"),
    ]
    assert result.report["rows_in"] == result.report["records"] + result.report["rejected"] == 9


def test_require_complete(tmp_path: Path, compiled) -> None:
    path = export(tmp_path, ["A1,s,0,78,0,0,2,2,2,2,1,2,2,1,2,1,2", "A2,s,0,78,0,0,2,2,2,2,1,2,2,1,2,1,1"])
    result = ingest_export(path, compiled["uc1"], require_complete=True)
    assert [r["record_id"] for r in result.records.rows] == ["A1"]
    assert result.rejects[0].reason == (
        "form not marked Complete (use_case_1_complete=1) and ingest.require_complete is on"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the export is empty (no header line)"),
        (
            b"record_id,sex\nA\xe91,0\n",
            "not UTF-8 at byte 15 (line 2): re-export from REDCap, or convert the file to UTF-8",
        ),
        (b"sex,onsetage\n0,5\n", "record id column 'record_id' is missing (the header names sex, onsetage)"),
        (b"record_id,sex,sex\nA,0,0\n", "line 1: duplicate column(s) in header: sex (columns 2, 3)"),
    ],
)
def test_unusable_files(tmp_path: Path, compiled, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputDataError) as err:
        ingest_export(path, compiled["uc1"])
    assert str(err.value) == f"{path}: {message}"


def test_rejects_round_trip_escapes_tabs_and_newlines(tmp_path: Path) -> None:
    rejects = [Reject(3, "id\twith\ttabs", "ingest", "line1\nline2 \\ backslash")]
    write_rejects(rejects, tmp_path / "r.tsv")
    assert read_rejects(tmp_path / "r.tsv") == rejects
    assert (tmp_path / "r.tsv").stat().st_mode & 0o777 == 0o600


# -- exports that are not raw-data CSV (issue 10.2), without quoting patient values (issue 11.8) --------------------
UC1_ROW = "A{k},site_1,{sex},78,0,0,2,2,2,2,1,2,2,1,2,1,2"
UC1_LABELS_ROW = (
    "A{k},site_1,{sex},78,HCC,histopathology,unknown,unknown,unknown,unknown,no,unknown,unknown,no,unknown,B,{done}"
)


def test_a_labels_export_fails_the_center_naming_a_column(tmp_path: Path, compiled) -> None:
    rows = [UC1_LABELS_ROW.format(k=k, sex="Female" if k % 2 else "male", done="Complete") for k in range(4)]
    path = export(tmp_path, rows)
    with pytest.raises(InputDataError) as err:
        ingest_export(path, compiled["uc1"])
    assert str(err.value) == (
        f"{path}: this export holds labels; export raw data (codes) from REDCap (56 of 56 values of coded columns are "
        "choice labels; e.g. column 'indeterm_nodule' holds 'HCC', the label of code 0)"
    )
    assert "A1" not in str(err.value)


def test_a_few_labels_in_a_raw_export_are_data_errors_not_a_labels_export(tmp_path: Path, compiled) -> None:
    rows = [UC1_ROW.format(k=0, sex="Female"), UC1_ROW.format(k=1, sex="1")]
    result = ingest_export(export(tmp_path, rows), compiled["uc1"])
    assert [r["sex"] for r in result.records.rows] == ["Female", "1"]  # QC flags 'Female' as not a code


def test_checkbox_and_form_status_labels_count_too(tmp_path: Path) -> None:
    from qc_helpers import dictionary, field

    dd = dictionary(field("symptoms", type="checkbox", choices={"1": "Pain", "2": "Fever"}))
    boxes = ["symptoms___1", "symptoms___2"]
    header = ",".join([dd.record_id, *boxes, *dd.complete_columns])
    line = ",".join(["{rid}", *(["Unchecked"] * len(boxes)), *(["Incomplete"] * len(dd.complete_columns))])
    path = export(tmp_path, [line.format(rid=f"P{k}") for k in range(3)], header=header)
    with pytest.raises(InputDataError) as err:
        ingest_export(path, dd)
    total = 3 * (len(boxes) + len(dd.complete_columns))
    assert str(err.value).startswith(
        f"{path}: this export holds labels; export raw data (codes) from REDCap ({total} of {total} values of coded "
        f"columns are choice labels; e.g. column '{boxes[0]}' holds 'Unchecked' (raw data: 0))"
    )


@pytest.mark.parametrize(
    ("sep", "message"),
    [
        (";", "semicolon-separated; export CSV from REDCap (comma-separated raw data, not a file saved by Excel)"),
        ("\t", "tab-separated; export CSV from REDCap (comma-separated raw data, not a file saved by Excel)"),
    ],
)
def test_semicolon_and_tab_separated_exports_say_so(tmp_path: Path, compiled, sep: str, message: str) -> None:
    path = export(tmp_path, [UC1_ROW.format(k=1, sex="1").replace(",", sep)], header=UC1_COLUMNS.replace(",", sep))
    with pytest.raises(InputDataError) as err:
        ingest_export(path, compiled["uc1"])
    assert str(err.value) == f"{path}: {message}"


def test_a_labels_header_says_labels(tmp_path: Path, compiled) -> None:
    header = "Patient ID,Data Access Group,Sex,Age at diagnosis,Hepatitis B status HbsAg,Liver cirrhosis"
    path = export(tmp_path, ["A1,site_1,female,78,unknown,no"], header=header)
    with pytest.raises(InputDataError) as err:
        ingest_export(path, compiled["uc1"])
    assert str(err.value) == (
        f"{path}: this export holds labels; export raw data (codes) from REDCap with variable names as headers "
        "(line 1 holds field labels, not variable names such as 'record_id')"
    )


def test_no_header_line_names_no_value_on_the_console_and_the_log_is_0600(tmp_path: Path, compiled, capsys) -> None:
    from oncofhir.cli import main

    dd_json = tmp_path / "uc1.json"
    dd_json.write_text(compiled["uc1"].to_json(), encoding="utf-8")
    path = tmp_path / "export.csv"
    path.write_text("PATIENT-0042,site_1,1,61,0,0,2,2,2,2,1,2,2,1,2,1,2\n", encoding="utf-8")
    log = tmp_path / "ingest.log"
    log.write_text("old\n", encoding="utf-8")
    log.chmod(0o644)
    out = tmp_path / "out"
    argv = ["--log", str(log), "ingest", "--dictionary", str(dd_json), "--export", str(path)]
    code = main([*argv, "--records", str(out / "r.csv"), "--rejects", str(out / "x.tsv"), "--report", str(out / "j")])
    message = (
        f"oncofhir: error: {path}: record id column 'record_id' is missing and line 1 names no column of the uc1 "
        "dictionary: the header line is missing, or this is another use case's export"
    )
    assert code == 4
    assert capsys.readouterr().err == f"{message}\n(log: {log})\n"
    assert log.read_text(encoding="utf-8") == f"{message}\n"
    assert log.stat().st_mode & 0o777 == 0o600
    assert not out.exists() or not any(out.iterdir())


# -- notes of any size and stray quotes (issue 10.3) ----------------------------------------------------------------
def test_a_field_over_128_kib_is_read_and_written_back(tmp_path: Path, compiled) -> None:
    from oncofhir.ingest import read_records
    from oncofhir.pipeline import stage_ingest
    from oncofhir.qc import stage_qc

    big = "x" * 300_000
    header = UC1_COLUMNS + ",comments"
    rows = [UC1_ROW.format(k=1, sex="1") + f',"{big}"', UC1_ROW.format(k=2, sex=big) + ",short"]
    path = export(tmp_path, rows, header=header)
    dd_json = tmp_path / "uc1.json"
    dd_json.write_text(compiled["uc1"].to_json(), encoding="utf-8")
    records = tmp_path / "ingest" / "records.csv"
    report = stage_ingest(dd_json, path, records, tmp_path / "ingest" / "rejects.tsv", tmp_path / "ingest" / "r.json")
    assert (report["rows_in"], report["records"], report["rejected"]) == (2, 2, 0)
    assert read_records(records).rows[1]["sex"] == big
    summary = stage_qc(dd_json, records, tmp_path / "qc", center="c")
    assert summary["records"] == 2


def test_an_unclosed_quote_names_its_line_and_column_and_what_it_swallowed(tmp_path: Path, compiled) -> None:
    rows = [UC1_ROW.format(k=k, sex="1") for k in range(14)]
    rows[2] = rows[2].replace(",2,2,2,2,1", ',"2,2,2,2,1', 1)  # line 4: a quote opens in column hep_b
    path = export(tmp_path, rows)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 15
    result = ingest_export(path, compiled["uc1"])
    assert [r["record_id"] for r in result.records.rows] == ["A0", "A1"]
    assert [(r.row, r.record_id, r.reason) for r in result.rejects] == [
        (
            4,
            "A2",
            "a quote opens a field in column 'hep_b' on line 4 and never closes: it swallows the 11 line(s) after "
            "it (lines 5-15, the end of the file); fix the stray quote and export again",
        )
    ]
    assert (result.report["lines"], result.report["rows_in"], result.report["rejected"]) == (15, 3, 1)


def test_an_unclosed_quote_in_the_last_column_is_not_a_record(tmp_path: Path, compiled) -> None:
    rows = [UC1_ROW.format(k=k, sex="1") for k in range(5)]
    rows[1] = rows[1][:-1] + '"2'  # line 3: the form status opens a quote that never closes
    result = ingest_export(export(tmp_path, rows), compiled["uc1"])
    assert [r["record_id"] for r in result.records.rows] == ["A0"]
    assert [(r.row, r.reason) for r in result.rejects] == [
        (
            3,
            "a quote opens a field in column 'use_case_1_complete' on line 3 and never closes: it swallows the 3 "
            "line(s) after it (lines 4-6, the end of the file); fix the stray quote and export again",
        )
    ]
    assert result.report["rows_in"] == result.report["records"] + result.report["rejected"] == 2


def test_a_stray_quote_closed_by_another_names_both_lines(tmp_path: Path, compiled) -> None:
    rows = [UC1_ROW.format(k=k, sex="1") for k in range(6)]
    rows[1] = rows[1].replace(",78,", ',"78,', 1)  # line 3 opens a quote in onsetage ...
    rows[3] = rows[3].replace(",78,", ',78",', 1)  # ... that line 5 closes
    result = ingest_export(export(tmp_path, rows), compiled["uc1"])
    assert [r["record_id"] for r in result.records.rows] == ["A0", "A4", "A5"]
    assert [(r.row, r.record_id, r.reason) for r in result.rejects] == [
        (
            3,
            "A1",
            "a quote opens a field in column 'onsetage' on line 3 and closes only on line 5: it swallows 2 line(s) "
            "(lines 4-5) into that field, which cannot hold line breaks; fix the stray quote and export again",
        )
    ]
    assert result.report["rows_in"] == result.report["records"] + result.report["rejected"] == 4


def test_a_stray_quote_in_the_first_column_is_found_too(tmp_path: Path, compiled) -> None:
    rows = [UC1_ROW.format(k=k, sex="1") for k in range(4)]
    rows[1] = '"' + rows[1]  # line 3: the record id opens a quote ...
    rows[2] = rows[2].replace("A2,", 'A2",', 1)  # ... that line 4 closes
    result = ingest_export(export(tmp_path, rows), compiled["uc1"])
    assert [r["record_id"] for r in result.records.rows] == ["A0", "A3"]
    assert [(r.row, r.record_id, r.reason) for r in result.rejects] == [
        (
            3,
            "",  # the "id" holds the rows it swallowed: not an id
            "a quote opens a field in column 'record_id' on line 3 and closes only on line 4: it swallows 1 line(s) "
            "(line 4) into that field, which cannot hold line breaks; fix the stray quote and export again",
        )
    ]


def test_a_stray_quote_that_breaks_the_row_names_its_cells(tmp_path: Path, compiled) -> None:
    rows = [UC1_ROW.format(k=k, sex="1") for k in range(6)]
    rows[1] = rows[1].replace(",78,", ',"78,', 1)  # line 3 opens a quote in onsetage ...
    rows[3] = rows[3].replace(",78,0,0,", ',78,0",0,', 1)  # ... that line 5 closes a cell later
    result = ingest_export(export(tmp_path, rows), compiled["uc1"])
    assert [r["record_id"] for r in result.records.rows] == ["A0", "A4", "A5"]
    assert [(r.row, r.reason) for r in result.rejects] == [
        (
            3,
            "a quote opens a field in column 'onsetage' on line 3 and closes only on line 5: it swallows 2 line(s) "
            "(lines 4-5) into one row of 16 cells (the header has 17); fix the stray quote and export again",
        )
    ]


# -- streaming (issue 11.9) -----------------------------------------------------------------------------------------
def test_streamed_files_equal_the_in_memory_result_for_any_chunk_size(tmp_path: Path, compiled) -> None:
    from oncofhir.demo import generate
    from oncofhir.ingest import ingest_to_files, write_records

    dd = compiled["uc3"]
    text = generate(dd, "hospital_b", 60, seed=7)  # BOM, CRLF, a duplicated id and a blank id
    lines = text.split("\r\n")
    lines.insert(5, lines[5].replace("hospital_b", "north"))  # another duplicate, in another DAG
    path = tmp_path / "export.csv"
    path.write_text("\r\n".join(lines), encoding="utf-8")
    expected = ingest_export(path, dd, require_complete=True)
    write_records(expected.records, tmp_path / "expected.csv")
    write_rejects(expected.rejects, tmp_path / "expected.tsv")
    assert len(expected.rejects) >= 4
    for chunk_rows in (1, 3, 1000):
        report = ingest_to_files(
            path, dd, tmp_path / f"{chunk_rows}" / "r.csv", tmp_path / f"{chunk_rows}" / "x.tsv",
            require_complete=True, chunk_rows=chunk_rows,
        )  # fmt: skip
        assert report == expected.report
        assert (tmp_path / f"{chunk_rows}" / "r.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
        assert (tmp_path / f"{chunk_rows}" / "x.tsv").read_bytes() == (tmp_path / "expected.tsv").read_bytes()
        assert (tmp_path / f"{chunk_rows}" / "r.csv").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (tmp_path / "1").iterdir()) == ["r.csv", "x.tsv"]  # no spool left behind


@pytest.mark.parametrize("on_refused", ["fail", "report"])
def test_the_workflow_fails_only_the_centers_with_such_exports(tmp_path: Path, on_refused: str) -> None:
    """End to end from the Snakefile: a labels and a semicolon export fail their ingest jobs with the message
    (``ingest.on_refused: fail``) or are reported as refused, their rows rejected (``report``, the default); a raw
    export next to them is ingested either way; logs are 0600."""
    import subprocess
    import sys

    from helpers import REPO, workflow_env

    good = ",".join(["A{k}", "site_1", "1", "61", *(["0"] * 12), "2"])
    exports = {
        "raw": [UC1_COLUMNS, *(good.format(k=k) for k in range(3))],
        "labels": [UC1_COLUMNS, *(UC1_LABELS_ROW.format(k=k, sex="female", done="Complete") for k in range(3))],
        "semi": [UC1_COLUMNS.replace(",", ";"), *(good.format(k=k).replace(",", ";") for k in range(3))],
    }
    sheet = ["use_case\tcenter\texport"]
    for center, lines in exports.items():
        (tmp_path / f"{center}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        sheet.append(f"uc1\t{center}\t{tmp_path / f'{center}.csv'}")
    (tmp_path / "centers.tsv").write_text("\n".join(sheet) + "\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(  # real exports: no demo keys, a real secret
        f"centers: {tmp_path}/centers.tsv\nresults: {tmp_path}/r\ndeposit: {{enabled: false, demo_keys: false}}\n"
        f"ingest: {{on_refused: {on_refused}}}\n"
    )
    targets = [f"{tmp_path}/r/ingest/uc1/{center}/report.json" for center in exports]
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *targets, "--cores", "1", "--keep-going", "--configfile", str(config)],
        cwd=REPO,
        env=workflow_env("a-real-secret-of-32-characters!!"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    labels = (
        "this export holds labels; export raw data (codes) from REDCap (42 of 42 values of coded columns are choice "
        "labels; e.g. column 'sex' holds 'female', the label of code 1)"
    )
    semi = "semicolon-separated; export CSV from REDCap (comma-separated raw data, not a file saved by Excel)"
    assert json.loads((tmp_path / "r/ingest/uc1/raw/report.json").read_text())["records"] == 3
    if on_refused == "fail":
        assert result.returncode != 0
        assert f"oncofhir: error: {tmp_path / 'labels.csv'}: {labels}" in out
        assert f"oncofhir: error: {tmp_path / 'semi.csv'}: {semi}" in out
        assert not (tmp_path / "r/ingest/uc1/labels/records.csv").exists()
    else:
        assert result.returncode == 4, out[-3000:]
        for center, reason in (("labels", labels), ("semi", semi)):
            report = json.loads((tmp_path / f"r/ingest/uc1/{center}/report.json").read_text())
            assert (report["refused"], report["rows_in"], report["records"], report["rejected"]) == (reason, 3, 0, 3)
            rejects = (tmp_path / f"r/ingest/uc1/{center}/rejects.tsv").read_text().splitlines()
            assert rejects[1:] == [
                f"{k}\t{rid}\tingest\texport refused: {reason}"
                for k, rid in (
                    (2, "A0" if center == "labels" else ""),
                    (3, "A1" if center == "labels" else ""),
                    (4, "A2" if center == "labels" else ""),
                )
            ]
    for center in exports:
        assert (tmp_path / f"r/logs/ingest/uc1/{center}.log").stat().st_mode & 0o777 == 0o600


def test_script_rule_logs_are_0600_too(tmp_path: Path) -> None:
    """``oncofhir.smk.run`` (the ``script:`` rules) opens its log owner-only, even one that existed 0644."""
    from types import SimpleNamespace

    from oncofhir.smk import run

    log = tmp_path / "rule.log"
    log.write_text("old\n", encoding="utf-8")
    log.chmod(0o644)
    run(SimpleNamespace(log=[str(log)]), lambda: "done")
    assert log.read_text(encoding="utf-8") == "done\n"
    assert log.stat().st_mode & 0o777 == 0o600
