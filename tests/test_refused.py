"""An export refused as a whole (ingest.on_refused: report, the default) never blocks the other centers.

Before, one hospital's semicolon-separated or labels export failed its ingest job, and with it the run report, the
merged manifest and the provenance of every other center. Now its rows go to its rejects with the reason, every
run-wide output is made, and the run ends with exit code 4 and one line per refused center.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers import REPO, record_jobs, workflow_env

from oncofhir.demo import generate
from oncofhir.errors import InputDataError
from oncofhir.ingest import read_rejects, refuse_export

SECRET = "a-real-secret-of-32-characters!!"
SEMICOLONS = "semicolon-separated; export CSV from REDCap (comma-separated raw data, not a file saved by Excel)"


def run(root: Path, *args: str) -> tuple[int, set[tuple[str, str]], str]:
    """The workflow on root/config.yaml: exit code, the (rule, center) of each job, and its console output."""
    code, jobs, output = record_jobs(
        ["--configfile", str(root / "config.yaml"), *args], cwd=REPO, env=workflow_env(SECRET)
    )
    return code, {(rule, center) for rule, _, center in jobs}, output


def test_refuse_export_puts_every_row_in_the_rejects_with_the_reason(tmp_path: Path, compiled) -> None:
    export = tmp_path / "a.csv"
    export.write_text(
        "record_id;sex;onsetage\nP1;1;60\n\nP2;0;71\n", encoding="utf-8"
    )  # no comma: one column, no record id column
    report = refuse_export(
        export, compiled["uc1"], InputDataError(SEMICOLONS), tmp_path / "r.csv", tmp_path / "rejects.tsv"
    )
    assert [(r.row, r.record_id, r.stage, r.reason) for r in read_rejects(tmp_path / "rejects.tsv")] == [
        (2, "", "ingest", f"export refused: {SEMICOLONS}"),
        (4, "", "ingest", f"export refused: {SEMICOLONS}"),
    ]
    assert {k: report[k] for k in ("rows_in", "records", "rejected", "refused", "lines")} == {
        "rows_in": 2,
        "records": 0,
        "rejected": 2,
        "refused": SEMICOLONS,
        "lines": 4,
    }
    with open(tmp_path / "r.csv", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1 and rows[0][:3] == ["_row", "_dag", "record_id"]  # the header only: no record
    assert (tmp_path / "r.csv").stat().st_mode & 0o777 == 0o600


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory, compiled) -> tuple[Path, int, set, str]:
    """uc1 with three centers whose third export is semicolon-separated (a file saved by Excel), run once."""
    from oncofhir.deposit.keys import generate_keypair

    root = tmp_path_factory.mktemp("refused")
    (root / "keys").mkdir()
    generate_keypair(root / "keys" / "ega.sec", root / "keys" / "ega.pub")
    exports = root / "exports"
    exports.mkdir()
    for center in ("site_a", "site_b", "site_c"):
        (exports / f"{center}.csv").write_text(generate(compiled["uc1"], center, 12, 5), encoding="utf-8")
    good = (exports / "site_c.csv").read_text(encoding="utf-8")
    (exports / "site_c.csv").write_text(good.replace(",", ";"), encoding="utf-8")
    (root / "good_site_c.csv").write_text(good, encoding="utf-8")
    sheet = "use_case\tcenter\texport\n" + "".join(
        f"uc1\t{c}\texports/{c}.csv\n" for c in ("site_a", "site_b", "site_c")
    )
    (root / "centers.tsv").write_text(sheet, encoding="utf-8")
    (root / "config.yaml").write_text(
        f"centers: centers.tsv\nresults: {root / 'results'}\n"
        "deposit: {demo_keys: false, recipients: [keys/ega.pub]}\n"
        "ig: {enabled: false}\n",  # no IG needed here (test_ig, test_rerun and test_workflow build it)
        encoding="utf-8",
    )
    code, jobs, output = run(root, "--cores", "2")
    return root, code, jobs, output


def test_the_other_centers_and_every_run_wide_output_are_made_and_the_run_exits_4(consortium) -> None:
    root, code, _, output = consortium
    results = root / "results"
    assert code == 4, output[-3000:]
    rows_in = len((root / "good_site_c.csv").read_text(encoding="utf-8").splitlines()) - 1
    assert [line for line in output.splitlines() if line.startswith(("oncofhir: 1 of", "oncofhir:   "))] == [
        f"oncofhir: 1 of 3 export(s) refused; every other center is done, see {results}/report/index.html:",
        f"oncofhir:   uc1/site_c: {SEMICOLONS} ({rows_in} rows in {results}/ingest/uc1/site_c/rejects.tsv)",
    ]
    with open(results / "report" / "run_summary.tsv", encoding="utf-8") as handle:
        summary = {row["center"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert summary["site_c"]["refused"] == SEMICOLONS
    assert (summary["site_c"]["rows_in"], summary["site_c"]["bundles"], summary["site_c"]["reconciled"]) == (
        str(rows_in),
        "0",
        "yes",
    )
    assert summary["site_a"]["refused"] == summary["site_b"]["refused"] == ""
    assert int(summary["site_a"]["bundles"]) > 0 and int(summary["site_b"]["bundles"]) > 0
    for made in ("report/index.html", "report/report.html", "ega/manifest.tsv", "ro-crate/ro-crate-metadata.json"):
        assert (results / made).is_file(), made
    page = (results / "report" / "index.html").read_text(encoding="utf-8")
    assert f"<strong>uc1/site_c</strong>: {SEMICOLONS}" in page


def test_the_fixed_export_reruns_only_its_center(consortium) -> None:
    root, _, first, _ = consortium
    (root / "exports" / "site_c.csv").write_text((root / "good_site_c.csv").read_text(encoding="utf-8"))
    code, jobs, output = run(root, "--dry-run", "--cores", "1")
    assert code == 0, output[-3000:]
    per_center = {job for job in jobs if job[1]}
    assert per_center == {job for job in first if job[1] == "site_c"}, output[-3000:]
    assert {job for job in jobs if not job[1]} <= {job for job in first if not job[1]}
