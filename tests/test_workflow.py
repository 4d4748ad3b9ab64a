"""The Snakemake workflow: a bad config or centers sheet fails before any job with a message naming the problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def dry_run(tmp_path: Path, config: str, centers: str | None = None) -> subprocess.CompletedProcess[str]:
    if centers is not None:
        (tmp_path / "centers.tsv").write_text(centers, encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config.replace("@", str(tmp_path)), encoding="utf-8")
    return subprocess.run(
        [*SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(cfg)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_default_dry_run_schedules_every_center(tmp_path: Path) -> None:
    result = subprocess.run(
        [*SNAKEMAKE, "-n", "--cores", "1", "--directory", str(REPO), "--config", f"results={tmp_path}/r"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    centers = [line.split("\t")[:2] for line in (REPO / "config" / "centers.tsv").read_text().splitlines()[1:]]
    for use_case, center in centers:
        assert f"{tmp_path}/r/fhir/{use_case}/{center}.ndjson" in out


@pytest.mark.parametrize(
    ("config", "centers", "message"),
    [
        ("centers: @/centers.tsv\ncolour: red\n", "use_case\tcenter\texport\n", "colour"),
        (
            "centers: @/centers.tsv\n",
            "use_case\tcentre\texport\nuc1\ta\tx.csv\n",
            "centers.tsv: missing column(s) center",
        ),
        ("centers: @/centers.tsv\n", "use_case\tcenter\texport\nuc1\tsite a\tx.csv\n", "site a"),
        (
            "centers: @/centers.tsv\n",
            "use_case\tcenter\texport\nuc9\ta\tx.csv\n",
            "line 2: use case 'uc9' has no dictionary",
        ),
        (
            "centers: @/centers.tsv\n",
            "use_case\tcenter\texport\nuc1\ta\t/nonexistent/export.csv\n",
            "line 2: export '/nonexistent/export.csv' of uc1/a does not exist",
        ),
        (
            "centers: @/centers.tsv\n",
            "use_case\tcenter\texport\nuc1\ta\tdemo/uc1/a.csv\nuc1\ta\tdemo/uc1/b.csv\n",
            "duplicate (use_case, center) rows: uc1/a, uc1/a",
        ),
        ("centers: @/missing.tsv\n", None, "centers sheet '"),
    ],
)
def test_bad_configuration_fails_before_any_job(tmp_path: Path, config: str, centers: str | None, message: str) -> None:
    result = dry_run(tmp_path, config, centers)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_a_sixth_use_case_needs_only_files(tmp_path: Path) -> None:
    """A new use case is a folder of files: the construct-test dictionary runs end to end, and reruns nothing."""
    dictionaries = tmp_path / "dictionaries"
    (dictionaries / "tst").mkdir(parents=True)
    for name in ("redcap_dictionary.csv", "mapping.yaml"):
        (dictionaries / "tst" / name).write_bytes((REPO / "tests" / "data" / "tst" / name).read_bytes())
    (tmp_path / "centers.tsv").write_text(
        f"use_case\tcenter\texport\ntst\tsite_1\t{tmp_path}/demo/tst/site_1.csv\n", encoding="utf-8"
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"centers: {tmp_path}/centers.tsv\nresults: {tmp_path}/results\ndictionaries: {dictionaries}\n"
        f"demo: {{folder: {tmp_path}/demo, records: 25, seed: 1}}\n",
        encoding="utf-8",
    )
    cmd = [*SNAKEMAKE, "--cores", "2", "--configfile", str(cfg)]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = (tmp_path / "results" / "report" / "run_summary.tsv").read_text().splitlines()
    assert summary[1].split("\t")[:8] == ["tst", "site_1", "27", "24", "3", "24", "3", "yes"]
    bundles = sorted((tmp_path / "results" / "fhir" / "tst" / "site_1").glob("*.json"))
    assert len(bundles) == 24
    patient = json.loads(bundles[0].read_text())["entry"][0]["resource"]
    assert patient["identifier"][0]["system"] == "urn:oncofhir:record-id"  # the default config's value
    second = subprocess.run([*cmd, "-n"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "Nothing to be done" in second.stdout + second.stderr
