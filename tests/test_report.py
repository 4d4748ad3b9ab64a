"""The run report: one TSV row and one HTML line per center, from the stages' real outputs."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES

from oncofhir import __version__
from oncofhir.demo import generate
from oncofhir.dictionary import load_compiled
from oncofhir.errors import ConfigError
from oncofhir.pipeline import stage_compile, stage_fhir, stage_ingest
from oncofhir.qc import stage_qc, write_qc_index
from oncofhir.report import COLUMNS, CenterReports, center_row, render_html, write_run_summary
from oncofhir.validate.report import stage_validate


def center(
    root: Path,
    name: str,
    records: int,
    extra_column: bool | str = False,
    use_case: str = "uc3",
    text: str | None = None,
) -> CenterReports:
    """Run ingest, QC, FHIR and validation on a seeded demo export (or ``text``), as the rules do."""
    compiled = root / f"{use_case}.json"
    if not compiled.exists():
        stage_compile(DICTIONARIES / use_case, ONTOLOGIES, compiled)
    if text is None:
        text = generate(load_compiled(compiled), name, records, seed=11)
    if extra_column:  # a column the dictionary does not know: reported, to send back
        lines = text.splitlines()
        column = extra_column if isinstance(extra_column, str) else "<b>colour</b>"
        text = "\n".join([f"{lines[0]},{column}"] + [line + ",red" for line in lines[1:]]) + "\n"
    export = root / "exports" / f"{name}.csv"
    export.parent.mkdir(parents=True, exist_ok=True)
    export.write_text(text, encoding="utf-8")
    ing = root / "ingest" / use_case / name
    stage_ingest(compiled, export, ing / "records.csv", ing / "rejects.tsv", ing / "report.json")
    qc = root / "qc" / use_case / name
    stage_qc(compiled, ing / "records.csv", qc, center=name)
    fhir = root / "fhir" / use_case
    stage_fhir(
        compiled,
        ing / "records.csv",
        ing / "rejects.tsv",
        ing / "report.json",
        fhir / name,
        fhir / f"{name}.ndjson",
        fhir / f"{name}.index.tsv",
        root / "rejects" / use_case / f"{name}.tsv",
        fhir / f"{name}.summary.json",
        gate_tsv=qc / "gate.tsv",
    )
    val = root / "validation" / use_case / name
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


def test_a_low_qc_score_is_flagged(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    centers = [center(tmp_path, "site_a", 12)]
    tsv, page = tmp_path / "report" / "run_summary.tsv", tmp_path / "report" / "index.html"
    score = float(json.loads(Path(centers[0].qc).read_text())["total"]["score"])
    assert write_run_summary(centers, tsv, page, min_score=score + 1) == "1 center(s), 11 bundles, 1 needing attention"
    row = dict(zip(COLUMNS, tsv.read_text().splitlines()[1].split("\t"), strict=True))
    assert (row["qc_score"], row["qc_below_minimum"]) == (f"{score:.2f}", "yes")
    text = page.read_text()
    low = f"{score + 1:g}"
    assert '<tr class="low"><td>uc3</td><td>site_a</td>' in text and text.count("▼ below") == 2
    assert f'{score:.2f}</a> <span class="flag">▼ below {low}</span>' in text
    assert f"QC score below the minimum of {low} (<code>qc.min_center_score</code>)" in text  # the legend
    assert write_run_summary(centers, tsv, page, min_score=score) == "1 center(s), 11 bundles, 0 needing attention"
    assert page.read_text().count("▼ below") == 1  # the legend only
    qc_index = tmp_path / "qc" / "index.html"
    write_qc_index([str(centers[0].qc)], str(qc_index), min_score=score + 1)
    index = qc_index.read_text()
    assert '<tr class="low"><td>uc3</td><td><a href="uc3/site_a/report.html">site_a</a></td>' in index
    assert f'{score:.2f}% <span class="flag">▼ below {low}</span></td></tr>' in index
    assert "bars green ≥ 90 %, amber 70–90 %, red &lt; 70 %" in index


def test_every_page_shows_date_version_and_dictionary(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14 22:13:20 UTC
    centers = [center(tmp_path, "site_a", 5)]
    version = load_compiled(tmp_path / "uc3.json").version
    write_run_summary(centers, tmp_path / "report" / "run_summary.tsv", tmp_path / "report" / "index.html")
    write_qc_index([str(centers[0].qc)], str(tmp_path / "qc" / "index.html"))
    pages = [
        tmp_path / "report" / "index.html",
        tmp_path / "qc" / "index.html",
        Path(centers[0].qc).parent / "report.html",
    ]
    meta = f'<p class="meta">Run date 2023-11-14 · oncofhir {__version__} · dictionary uc3 {version}</p>'
    for page in pages:
        assert meta in page.read_text(), page
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(
        ConfigError, match=r"^SOURCE_DATE_EPOCH must be seconds since 1970 \(an integer\), not 'yesterday'$"
    ):
        write_qc_index([str(centers[0].qc)], str(tmp_path / "qc" / "index.html"))


def test_center_page_lists_every_failure_and_links_back(tmp_path: Path) -> None:
    centers = [center(tmp_path, "site_a", 150)]
    qc = json.loads(Path(centers[0].qc).read_text())
    assert qc["failures"] > 200  # more than the page used to show
    text = (Path(centers[0].qc).parent / "report.html").read_text()
    failures = text.split('<table id="failures">', 1)[1].split("</table>", 1)[0]
    assert failures.count("<tr>") == 1 + qc["failures"]  # header + every failure
    tsv = (Path(centers[0].qc).parent / "failures.tsv").read_text().splitlines()
    assert len(tsv) == 1 + qc["failures"]
    row, rid, variable, check, *_, value, _ = tsv[-1].split("\t")
    value = html.escape(value, quote=True)
    assert (
        f'<tr><td class="n">{row}</td><td>{rid}</td><td>{variable}</td><td>{check}</td><td>{value}</td></tr>'
        in failures
    )
    assert '<nav><a href="../../index.html">all centers (QC index)</a> · <a href="../../../report/index.html">' in text
    assert '<input type="search" data-filter="failures">' in text and text.count("<script>") == 1
    assert "src=" not in text and "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_hidden_value_conflicts_are_sent_back_first(tmp_path: Path) -> None:
    """uc7: HER2 FISH positive although the IHC score (0+, HER2-negative) hides FISH: the bundle leaves FISH out,
    so the conflict must head the center's send-back list and the run report's send-back column."""
    compiled = tmp_path / "uc7.json"
    stage_compile(DICTIONARIES / "uc7", ONTOLOGIES, compiled)
    dd = load_compiled(compiled)
    lines = generate(dd, "site_a", 8, seed=3).splitlines()
    header = lines[0].split(",")
    ihc, fish = header.index("her2ihc"), header.index("her2fish")
    rows = [line.split(",") for line in lines[1:]]
    target = rows[5]
    target[ihc], target[fish] = "0", "0"  # IHC 0+ hides FISH; FISH says positive
    for other in rows[:5] + rows[6:]:
        if other[ihc] != "2":
            other[fish] = ""
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    reports = center(tmp_path, "site_a", 0, use_case="uc7", text=text)
    qc_dir = Path(reports.qc).parent
    send_back = [line.split("\t") for line in (qc_dir / "send_back.tsv").read_text().splitlines()]
    assert send_back[0] == ["row", "record_id", "hidden_conflicts", "conflicting_values", "other_failures"]
    assert send_back[1][:4] == ["7", target[0], "1", "her2fish: 0 = positive"]
    assert all(r[2] == "0" for r in send_back[2:])
    summary = json.loads((qc_dir / "qc.json").read_text())
    assert summary["hidden_conflicts"] == {"values": 1, "records": 1}
    page = (qc_dir / "report.html").read_text()
    assert f'<tr><td class="n">7</td><td>{target[0]}</td><td>her2fish: 0 = positive</td></tr>' in page
    # the failure list shows the label beside the code
    assert f"<td>{target[0]}</td><td>her2fish</td><td>her2fish.branching</td><td>0 = positive</td></tr>" in page
    row = center_row(reports)
    assert (row["hidden_conflicts"], row["rejected_total"]) == (1, 0)
    page = render_html([row | {"rejected_total": 1}], deposit=False)
    assert (
        '<td><a href="../qc/uc7/site_a/send_back.tsv">1 hidden value(s) conflicting with their branching logic in '
        '1 record(s)</a>; <a href="../rejects/uc7/site_a.tsv">1 rejected row(s)</a>; '
        f'<a href="../qc/uc7/site_a/failures.tsv">{summary["failures"]} quality finding(s)</a></td></tr>'
    ) in page


def test_run_summary_and_index_are_spreadsheet_safe(tmp_path: Path) -> None:
    """A column name and a record id from an export are written so that a spreadsheet shows them as text."""
    compiled = tmp_path / "uc3.json"
    stage_compile(DICTIONARIES / "uc3", ONTOLOGIES, compiled)
    lines = generate(load_compiled(compiled), "site_a", 3, seed=2).splitlines()
    lines[1] = "@SUM(1+1)," + lines[1].split(",", 1)[1]
    reports = center(tmp_path, "site_a", 0, extra_column="=HYPERLINK(1)", text="\n".join(lines) + "\n")
    tsv = tmp_path / "report" / "run_summary.tsv"
    write_run_summary([reports], tsv)
    row = dict(zip(COLUMNS, tsv.read_text().splitlines()[1].split("\t"), strict=True))
    assert row["unknown_columns"] == "'=HYPERLINK(1)"
    index = (tmp_path / "fhir" / "uc3" / "site_a.index.tsv").read_text().splitlines()
    assert index[1].split("\t")[:2] == ["'@SUM(1+1)", index[1].split("\t")[1]]
    assert not index[1].split("\t")[1].startswith("'")  # the patient key names files: never changed


def _round_trip(root: Path, reports: CenterReports, name: str = "site_a") -> CenterReports:
    """The tables job's round trip for a center made by :func:`center` (uc3), as the workflow runs it."""
    from dataclasses import replace

    from oncofhir.views.generate import write_views
    from oncofhir.views.stage import stage_tables

    compiled = root / "uc3.json"
    write_views(load_compiled(compiled), root / "views" / "uc3")
    fhir = root / "fhir" / "uc3"
    out = root / "roundtrip" / "uc3"
    stage_tables(
        compiled,
        root / "views" / "uc3",
        fhir / f"{name}.ndjson",
        root / "tables" / "uc3" / name,
        name,
        records=root / "ingest" / "uc3" / name / "records.csv",
        index=fhir / f"{name}.index.tsv",
        roundtrip_json=out / f"{name}.json",
        roundtrip_tsv=out / f"{name}.tsv",
    )
    return replace(reports, roundtrip=out / f"{name}.json")


def test_the_round_trip_is_a_column_and_on_the_page(tmp_path: Path) -> None:
    """A formula-like record id (written to the index as a spreadsheet-safe cell) still joins its record to its
    wide-view row: the round trip checks as many values as with a plain id."""
    compiled = tmp_path / "plain" / "uc3.json"
    stage_compile(DICTIONARIES / "uc3", ONTOLOGIES, compiled)
    lines = generate(load_compiled(compiled), "site_a", 3, seed=2).splitlines()
    counts = {}
    for folder, rid in (("plain", "r1"), ("formula", "@SUM(1+1)")):
        lines[1] = f"{rid}," + lines[1].split(",", 1)[1]
        reports = _round_trip(tmp_path / folder, center(tmp_path / folder, "site_a", 0, text="\n".join(lines) + "\n"))
        tsv, page = tmp_path / folder / "report" / "run_summary.tsv", tmp_path / folder / "report" / "index.html"
        assert write_run_summary([reports], tsv, page) == "1 center(s), 3 bundles, 0 needing attention"
        header, row = (line.split("\t") for line in tsv.read_text().splitlines())
        assert header[-2:] == ["roundtrip", "refused"] and header == COLUMNS and row[-1] == ""
        counts[folder] = row[-2]
        assert f'<td><a href="../roundtrip/uc3/site_a.tsv">{row[-2]}</a></td>' in page.read_text()
        assert "<th>round trip</th>" in page.read_text()
    assert counts["formula"] == counts["plain"] and counts["plain"].startswith("100% (")
    table = (tmp_path / "formula" / "roundtrip" / "uc3" / "site_a.tsv").read_text().splitlines()
    assert table[0].split("\t")[:3] == ["center", "variable", "kind"]

    # a round trip that lost values: FAIL in the TSV, a red line that needs attention on the page
    result = json.loads(Path(reports.roundtrip).read_text())
    result.update(passed=False, recovered_percent=97.5, failures=[{"variable": "tumor_size", "rows": [2]}])
    Path(reports.roundtrip).write_text(json.dumps(result))
    assert write_run_summary([reports], tsv, page) == "1 center(s), 3 bundles, 1 needing attention"
    assert tsv.read_text().splitlines()[1].split("\t")[-2] == "FAIL 97.5% (lost/changed: tumor_size)"
    assert '<tr class="bad"><td>uc3</td><td>site_a</td>' in page.read_text()
