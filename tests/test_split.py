"""Splitting a combined REDCap export (all data access groups) into per-center exports."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, workflow_env

from oncofhir.demo import generate
from oncofhir.errors import InputDataError
from oncofhir.split import split_export, unclaimed_groups


def combined(compiled, tmp_path: Path, centers: list[str], records: int = 12) -> Path:
    texts = [generate(compiled["uc1"], c, records, seed=5).lstrip("\ufeff").replace("\r\n", "\n") for c in centers]
    lines = texts[0].splitlines()[:1] + [line for t in texts for line in t.splitlines()[1:]]
    path = tmp_path / "combined.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_split_selects_one_group_and_counts_all(tmp_path: Path, compiled) -> None:
    path = combined(compiled, tmp_path, ["site_a", "site_b", "site_c"])
    report = split_export(path, "site_b", tmp_path / "b.csv", tmp_path / "b.json")
    assert report["rows_by_dag"] == {"site_a": 14, "site_b": 14, "site_c": 14}
    assert report["selected_rows"] == 14
    rows = (tmp_path / "b.csv").read_text().splitlines()
    assert rows[0].startswith("record_id,redcap_data_access_group,")
    assert len(rows) == 15 and all(",site_b," in r for r in rows[1:])
    assert json.loads((tmp_path / "b.json").read_text()) == report
    assert unclaimed_groups([report]) == [(str(path), "site_a", 14), (str(path), "site_c", 14)]


def test_split_needs_the_group_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("record_id,sex\nA,0\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="column 'redcap_data_access_group' is missing"):
        split_export(path, "a", tmp_path / "o.csv", tmp_path / "o.json")


def test_workflow_reads_centers_from_a_combined_export(tmp_path: Path, compiled) -> None:
    path = combined(compiled, tmp_path, ["site_a", "site_b", "site_c"])
    (tmp_path / "centers.tsv").write_text(
        f"use_case\tcenter\texport\tdag\nuc1\tA\t{path}\tsite_a\nuc1\tB\t{path}\tsite_b\n", encoding="utf-8"
    )
    from oncofhir.deposit.keys import generate_keypair

    generate_keypair(tmp_path / "ega.sec", tmp_path / "ega.pub")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(  # a real (not generated) export: real keys and secret, never the demo ones
        f"centers: {tmp_path}/centers.tsv\nresults: {tmp_path}/results\n"
        f"deposit: {{demo_keys: false, recipients: [{tmp_path}/ega.pub]}}\n"
        "ig: {enabled: false}\n",  # no IG needed here (test_ig, test_rerun and test_workflow build it)
        encoding="utf-8",
    )
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(cfg)]
    env = workflow_env("a-real-secret-of-32-characters!!")
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = [line.split("\t") for line in (tmp_path / "results/report/run_summary.tsv").read_text().splitlines()]
    assert [row[:8] for row in summary[1:]] == [
        ["uc1", "A", "14", "11", "3", "11", "3", "yes"],
        ["uc1", "B", "14", "11", "3", "11", "3", "yes"],
    ]
    assert (tmp_path / "results/report/unclaimed_groups.tsv").read_text() == (
        f"combined_export\tdag\trows\n{path}\tsite_c\t14\n"
    )


def test_split_streams_any_export_to_exact_bytes(tmp_path: Path) -> None:
    """The combined export is read row by row (issue 11.9): BOM, CRLF, quoted line breaks, padded group names,
    blank lines and a 300 KB notes field (beyond the csv module's default limit, which failed the split before) are
    copied exactly as the whole-file reader did; the checksum is the file's."""
    big = "x" * 300_000
    data = (
        "\ufeffrecord_id,redcap_data_access_group,notes\r\n"
        '1,a,"two\r\nlines"\r\n2, b ,plain\r\n\r\n'
        f'3,a,{big}\r\n"4,5",a,"say ""hi"""\r\n'
    ).encode()
    path = tmp_path / "combined.csv"
    path.write_bytes(data)
    report = split_export(path, "a", tmp_path / "a.csv", tmp_path / "a.json")
    assert (tmp_path / "a.csv").read_bytes() == (
        f'record_id,redcap_data_access_group,notes\n1,a,"two\r\nlines"\n3,a,{big}\n"4,5",a,"say ""hi"""\n'
    ).encode()
    assert report == {
        "combined_export": str(path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "dag": "a",
        "selected_rows": 3,
        "rows_by_dag": {"a": 3, "b": 1},
    }
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o600


def test_split_names_the_first_byte_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"record_id,redcap_data_access_group\n1,a\n2,\xe9\n")
    with pytest.raises(InputDataError) as caught:
        split_export(path, "a", tmp_path / "o.csv", tmp_path / "o.json")
    assert str(caught.value) == (
        f"{path}: not UTF-8 at byte 41 (line 3): re-export from REDCap, or convert the file to UTF-8"
    )
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.json").exists()
