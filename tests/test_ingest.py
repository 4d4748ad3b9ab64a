"""Ingest: every REDCap export quirk handled, every row accounted for, every error names file, line, value."""

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
    ]
    assert result.report["rows_in"] == result.report["records"] + result.report["rejected"] == 7


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
        (b"record_id,sex,sex\nA,0,0\n", "duplicate column(s) in header: sex"),
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
