"""``snakemake --report``: after a small demo run, the report holds the run report and the QC pages (with their
caption) as one browsable folder in which every link of every page resolves."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

from helpers import REPO, workflow_env

HREF = re.compile(r'href="([^"#]+)"')


def snakemake(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=REPO,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


def test_report_zip_holds_every_page_with_working_links(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    sheet = tmp_path / "centers.tsv"
    sheet.write_text(
        f"use_case\tcenter\texport\nuc1\tsite_a\t{demo}/uc1/site_a.csv\nuc7\tsite_b\t{demo}/uc7/site_b.csv\n",
        encoding="utf-8",
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        f"centers: {sheet}\nresults: {tmp_path / 'results'}\n"
        f"demo: {{folder: {demo}, records: 8, seed: 3}}\n"
        "qc: {min_center_score: 100}\n",
        encoding="utf-8",
    )
    snakemake("--cores", "2", "--configfile", str(config))
    issues = [
        line.split("\t") for line in (tmp_path / "results/validation/uc7/site_b/issues.tsv").read_text().splitlines()
    ]
    index = [line.split("\t") for line in (tmp_path / "results/fhir/uc7/site_b.index.tsv").read_text().splitlines()]
    by_bundle = {row[3]: (row[0], row[1]) for row in index[1:]}  # bundle id -> record id, pseudonym
    assert issues[0][:4] == ["record_id", "pseudonym", "source", "bundle"] and len(issues) > 1
    assert all((row[0], row[1]) == by_bundle[row[3]] and row[1].startswith("psn-") for row in issues[1:])
    report = tmp_path / "report.zip"
    snakemake("--report", str(report), "--configfile", str(config))

    with zipfile.ZipFile(report) as archive:
        names = set(archive.namelist())
        index = [n for n in names if re.fullmatch(r"report/data/raw/[^/]+/index\.html", n)]
        assert len(index) == 1, sorted(names)
        site = PurePosixPath(index[0]).parent
        pages = {str(PurePosixPath(n).relative_to(site)) for n in names if n.startswith(f"{site}/")}
        assert {
            "index.html",
            "report/index.html",
            "report/run_summary.tsv",
            "qc/index.html",
            "qc/uc1/site_a/report.html",
            "qc/uc7/site_b/report.html",
            "qc/uc7/site_b/send_back.tsv",
            "rejects/uc7/site_b.tsv",
            "validation/uc7/site_b/issues.tsv",
            "ega/manifest.tsv",
        } <= pages
        links = 0
        for page in (p for p in pages if p.endswith(".html")):
            text = archive.read(f"{site}/{page}").decode("utf-8")
            for href in HREF.findall(text):
                if href.startswith("http://www.w3.org/"):
                    continue
                target = PurePosixPath(site, page).parent / href
                resolved = PurePosixPath(*_normalise(target.parts))
                assert str(resolved) in names, f"{page}: broken link {href}"
                links += 1
        assert links > 20
        run_report = archive.read(f"{site}/report/index.html").decode("utf-8")
        assert run_report.count('<span class="flag">▼ below 100</span>') == 3  # the legend and both centers
        viewer = archive.read("report/report.html").decode("utf-8")
        assert "send back to the hospital&quot; column lists first the values" in viewer  # the caption
        assert "Run report" in viewer  # its category


def _normalise(parts: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for part in parts:
        if part == "..":
            out.pop()
        elif part != ".":
            out.append(part)
    return out
