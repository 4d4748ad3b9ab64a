"""``snakemake --report``: after a small demo run, ``report.html`` (one file, the exact command of issue 10.11) and
``report.zip`` both hold the run report and every center's QC page as one self-contained page (with its caption),
in which every link goes to an element of the same page."""

from __future__ import annotations

import base64
import re
import stat
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import REPO, workflow_env

from oncofhir.report_file import write_report_file

EMBEDDED = re.compile(r"data:text/html;charset=utf8;filename=report\.html;base64,([A-Za-z0-9+/=]+)")
CAPTION = "the lists they link to, in one self-contained file"


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


class Links(HTMLParser):
    """Every id, href and data-filter of a page (the filter script finds its table and counter by id)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.filters: list[str] = []
        self.scripts = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.ids += [values["id"]] if values.get("id") else []
        self.hrefs += [values["href"]] if values.get("href") is not None else []
        self.filters += [values["data-filter"]] if values.get("data-filter") else []
        self.scripts += tag == "script"

    def broken(self) -> list[str]:
        ids = set(self.ids)
        return [h for h in self.hrefs if not (h.startswith("#") and h[1:] in ids)]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-center run (uc1/site_a, uc7/site_b) with the deposit on: (its config, its results folder)."""
    tmp_path = tmp_path_factory.mktemp("report")
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
        "qc: {min_center_score: 100}\n"
        "ig: {enabled: false}\n",  # no IG needed here (test_ig, test_rerun and test_workflow build it)
        encoding="utf-8",
    )
    snakemake("--cores", "2", "--configfile", str(config))
    return config, tmp_path / "results"


def test_report_file_holds_every_page_and_list_with_working_anchors(demo_run: tuple[Path, Path]) -> None:
    _, results = demo_run
    issues = [line.split("\t") for line in (results / "validation/uc7/site_b/issues.tsv").read_text().splitlines()]
    index = [line.split("\t") for line in (results / "fhir/uc7/site_b.index.tsv").read_text().splitlines()]
    by_bundle = {row[3]: (row[0], row[1]) for row in index[1:]}  # bundle id -> record id, pseudonym
    assert issues[0][:4] == ["record_id", "pseudonym", "source", "bundle"] and len(issues) > 1
    assert all((row[0], row[1]) == by_bundle[row[3]] and row[1].startswith("psn-") for row in issues[1:])

    page = results / "report/report.html"
    assert oct(stat.S_IMODE(page.stat().st_mode)) == "0o600"  # QC pages and lists name record ids
    text = page.read_text(encoding="utf-8")
    links = Links(text)
    assert len(links.ids) == len(set(links.ids))
    assert links.broken() == []
    assert len(links.hrefs) > 20
    assert links.scripts == 1  # one filter script for every filter box
    assert all(f in links.ids and f"{f}-shown" in links.ids for f in links.filters)
    assert {
        "report-index-html",
        "qc-index-html",
        "qc-uc1-site_a-report-html",
        "qc-uc7-site_b-report-html",
        "qc-uc7-site_b-report-html--failures",
        "qc-uc7-site_b-send_back-tsv",
        "rejects-uc7-site_b-tsv",
        "validation-uc7-site_b-issues-tsv",
        "report-run_summary-tsv",
        "ega-manifest-tsv",
        "roundtrip-uc7-site_b-tsv",
    } <= set(links.ids)
    # the run report's links: QC page, failures (on the QC page, not copied), validation list, manifests (named),
    # round trip
    assert {
        "#qc-uc7-site_b-report-html",
        "#qc-uc7-site_b-report-html--failures",
        "#validation-uc7-site_b-issues-tsv",
        "#rejects-uc7-site_b-tsv",
        "#ega-manifest-tsv",
        "#ega-uc7-site_b-manifest-tsv",
        "#qc-index-html",
        "#roundtrip-uc7-site_b-tsv",  # the round-trip column
        "#privacy-uc1-tsv",  # the re-identification risk section's classes, one list per use case
        "#privacy-uc7-tsv",
    } <= set(links.hrefs)
    assert '<h2 id="report-index-html--privacy">Re-identification risk</h2>' in text
    assert 'data-filter="qc-uc7-site_b-report-html--failures"' in text
    assert '<li><a href="#qc-uc7-site_b-report-html">Data quality: uc7 / site_b</a></li>' in text  # the contents
    assert text.count('<span class="flag">▼ below 100</span>') >= 3  # the run report: the legend and both centers
    assert f"<td>{issues[1][1]}</td>" in text  # a validation issue, with its pseudonym
    manifest = (results / "ega/uc7/site_b.manifest.tsv").read_text().splitlines()
    kept = f'<li id="ega-uc7-site_b-manifest-tsv"><code>ega/uc7/site_b.manifest.tsv</code>: {len(manifest) - 1} row(s)'
    assert kept in text
    assert (
        manifest[0].split("\t")[9] == "c4gh_sha256" and manifest[1].split("\t")[9] not in text
    )  # its checksums differ at every encryption: not copied


def test_snakemake_report_html_embeds_the_report_file(demo_run: tuple[Path, Path], tmp_path: Path) -> None:
    config, results = demo_run
    report = tmp_path / "report.html"
    snakemake("--report", str(report), "--configfile", str(config))

    viewer = report.read_text(encoding="utf-8")
    embedded = EMBEDDED.findall(viewer)
    assert len(embedded) == 1
    assert base64.b64decode(embedded[0]) == (results / "report/report.html").read_bytes()
    assert CAPTION in viewer and "Run report" in viewer  # the caption and its category


def test_snakemake_report_zip_holds_the_report_file(demo_run: tuple[Path, Path], tmp_path: Path) -> None:
    config, results = demo_run
    report = tmp_path / "report.zip"
    snakemake("--report", str(report), "--configfile", str(config))

    with zipfile.ZipFile(report) as archive:
        names = [n for n in archive.namelist() if re.fullmatch(r"report/data/raw/[^/]+/report\.html", n)]
        assert len(names) == 1, archive.namelist()
        assert archive.read(names[0]) == (results / "report/report.html").read_bytes()
        viewer = archive.read("report/report.html").decode("utf-8")
        assert CAPTION in viewer and "Run report" in viewer


def test_a_link_to_a_file_outside_the_report_is_left_as_text_and_values_are_escaped(tmp_path: Path) -> None:
    (tmp_path / "qc").mkdir()
    (tmp_path / "qc/index.html").write_text(
        "<!DOCTYPE html><html><head><title>QC &amp; more</title><script>alert(1)</script></head><body>"
        '<p id="top"><a href="#top">up</a> <a href="gone.tsv">gone</a> <a href="../list.tsv#x">list</a> '
        '<a href="https://example.org/">out</a> 1 &lt; 2</p><script>alert(2)</script></body></html>',
        encoding="utf-8",
    )
    (tmp_path / "list.tsv").write_text("a\tb\n<script>\t&\n", encoding="utf-8")
    (tmp_path / "kept.tsv").write_text("a\nsecret-checksum\n", encoding="utf-8")
    out = tmp_path / "report/report.html"

    summary = write_report_file(
        [tmp_path / "qc/index.html"], [tmp_path / "list.tsv"], tmp_path, out, [tmp_path / "kept.tsv"]
    )

    assert summary == f"1 page(s), 1 list(s) and 1 file name(s) in {out}, 1 link(s) left as text"
    assert oct(stat.S_IMODE(out.stat().st_mode)) == "0o600"
    text = out.read_text(encoding="utf-8")
    assert '<li id="kept-tsv"><code>kept.tsv</code>: 1 row(s)</li>' in text and "secret-checksum" not in text
    section = text[text.index('<section id="qc-index-html">') : text.index("</section>")]
    assert section == (
        '<section id="qc-index-html">\n<hr>\n<p id="qc-index-html--top"><a href="#qc-index-html--top">up</a> '
        '<a>gone</a> <a href="#list-tsv--x">list</a> <a href="https://example.org/">out</a> 1 &lt; 2</p>'
    )
    assert "<td>&lt;script&gt;</td><td>&amp;</td>" in text and "alert" not in text
    assert '<a href="#qc-index-html">QC &amp; more</a>' in text  # the contents, from the page's title
