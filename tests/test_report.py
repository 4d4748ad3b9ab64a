"""The run report: one TSV row and one HTML line per center, from the stages' real outputs."""

from __future__ import annotations

from pathlib import Path

from helpers import DICTIONARIES, ONTOLOGIES

from oncofhir.demo import generate
from oncofhir.dictionary import load_compiled
from oncofhir.pipeline import stage_compile, stage_fhir, stage_ingest
from oncofhir.qc import stage_qc
from oncofhir.report import COLUMNS, CenterReports, write_run_summary
from oncofhir.validate.report import stage_validate


def center(root: Path, name: str, records: int, extra_column: bool = False) -> CenterReports:
    """Run ingest, QC, FHIR and validation on a seeded demo export of uc3, as the rules do."""
    compiled = root / "uc3.json"
    if not compiled.exists():
        stage_compile(DICTIONARIES / "uc3", ONTOLOGIES, compiled)
    text = generate(load_compiled(compiled), name, records, seed=11)
    if extra_column:  # a column the dictionary does not know: reported, to send back
        lines = text.splitlines()
        text = "\n".join([lines[0] + ",<b>colour</b>"] + [line + ",red" for line in lines[1:]]) + "\n"
    export = root / "exports" / f"{name}.csv"
    export.parent.mkdir(parents=True, exist_ok=True)
    export.write_text(text, encoding="utf-8")
    ing = root / "ingest" / "uc3" / name
    stage_ingest(compiled, export, ing / "records.csv", ing / "rejects.tsv", ing / "report.json")
    qc = root / "qc" / "uc3" / name
    stage_qc(compiled, ing / "records.csv", qc, center=name)
    fhir = root / "fhir" / "uc3"
    stage_fhir(
        compiled,
        ing / "records.csv",
        ing / "rejects.tsv",
        ing / "report.json",
        fhir / name,
        fhir / f"{name}.ndjson",
        fhir / f"{name}.index.tsv",
        root / "rejects" / "uc3" / f"{name}.tsv",
        fhir / f"{name}.summary.json",
        gate_tsv=qc / "gate.tsv",
    )
    val = root / "validation" / "uc3" / name
    stage_validate(compiled, fhir / f"{name}.ndjson", val, fail_on_error=True, center=name)
    return CenterReports(ing / "report.json", fhir / f"{name}.summary.json", qc / "qc.json", val / "summary.json")


def test_one_row_and_one_line_per_center(tmp_path: Path) -> None:
    centers = [center(tmp_path, "site_a", 12), center(tmp_path, "site_b", 7, extra_column=True)]
    tsv, page = tmp_path / "report" / "run_summary.tsv", tmp_path / "report" / "index.html"
    assert write_run_summary(centers, tsv, page) == "2 center(s), 18 bundles, 0 needing attention"
    rows = [dict(zip(COLUMNS, line.split("\t"), strict=True)) for line in tsv.read_text().splitlines()[1:]]
    assert [(r["center"], r["rows_in"], r["bundles"], r["rejected_total"], r["reconciled"]) for r in rows] == [
        ("site_a", "14", "11", "3", "yes"),  # a duplicated id (both rows) and a blank id
        ("site_b", "7", "7", "0", "yes"),
    ]
    assert [(r["validation"], r["validation_errors"], r["encrypted_files"]) for r in rows] == [("valid", "0", "")] * 2
    assert rows[1]["unknown_columns"] == "<b>colour</b>"
    text = page.read_text()
    assert text.count("<tr>") == 2 + 1  # header row + one per center (the total row has a class)
    assert "uc3/site_a: 11 bundles, valid; 0 errors, 0 warnings" in text
    assert '<a href="../rejects/uc3/site_a.tsv">3 rejected row(s)</a>' in text
    assert "unknown column(s): &lt;b&gt;colour&lt;/b&gt;" in text and "<b>colour</b>" not in text
    assert "deposit" not in text  # no manifest given: no deposit column
    first = page.read_bytes()
    write_run_summary(centers, tsv, page)
    assert page.read_bytes() == first  # nothing run-dependent in the page
