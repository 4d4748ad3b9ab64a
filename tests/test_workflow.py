"""The Snakemake workflow: a bad config or centers sheet fails before any job with a message naming the problem."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import REPO, record_jobs, workflow_env

from oncofhir.ig.install import installed_sushi, npm_available

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def dry_run(
    tmp_path: Path, config: str, centers: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if centers is not None:
        (tmp_path / "centers.tsv").write_text(centers, encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config.replace("@", str(tmp_path)), encoding="utf-8")
    return subprocess.run(
        [*SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(cfg)],
        cwd=REPO,
        env=workflow_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_default_dry_run_schedules_every_center(tmp_path: Path) -> None:
    result = subprocess.run(
        [*SNAKEMAKE, "-n", "--cores", "1", "--directory", str(REPO), "--config", f"results={tmp_path}/r"],
        cwd=REPO,
        env=workflow_env(),
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
            "centers.tsv, line 1: missing column(s) center (the header must name use_case, center, export; found "
            "use_case, centre, export)",
        ),
        ("centers: @/centers.tsv\n", "use_case\tcenter\texport\nuc1\tsite a\tx.csv\n", "site a"),
        (
            "centers: @/centers.tsv\n",
            "use_case\tcenter\texport\nno_such_use_case\ta\tx.csv\n",
            "centers.tsv, line 2, column use_case: unknown use case 'no_such_use_case'; valid: ",
        ),
        (
            "centers: @/centers.tsv\n",
            "use_case\tcenter\texport\nuc1\ta\t/nonexistent/export.csv\n",
            "centers.tsv, line 2, column export: export '/nonexistent/export.csv' of uc1/a does not exist",
        ),
        (
            "centers: @/centers.tsv\ndemo: {folder: @/demo}\n",
            "use_case\tcenter\texport\nuc1\ta\tdemo/uc1/a.csv\nuc1\ta\tdemo/uc1/b.csv\n",
            "centers.tsv: center uc1/a is listed twice (lines 2 and 3)",
        ),
        ("centers: @/missing.tsv\n", None, "config key 'centers': file '@/missing.tsv' not found"),
    ],
)
def test_bad_configuration_fails_before_any_job(tmp_path: Path, config: str, centers: str | None, message: str) -> None:
    result = dry_run(tmp_path, config, centers)
    assert result.returncode == 2
    assert message.replace("@", str(tmp_path)) in result.stdout + result.stderr


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
        f"demo: {{folder: {tmp_path}/demo, records: 25, seed: 1}}\n"
        "deposit: {temp_plaintext: false}\n",
        encoding="utf-8",
    )
    cmd = [*SNAKEMAKE, "--cores", "2", "--configfile", str(cfg)]
    first = subprocess.run(cmd, cwd=REPO, env=workflow_env(), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = (tmp_path / "results" / "report" / "run_summary.tsv").read_text().splitlines()
    assert summary[1].split("\t")[:8] == ["tst", "site_1", "27", "24", "3", "24", "3", "yes"]
    bundles = sorted((tmp_path / "results" / "fhir" / "tst" / "site_1").glob("*.json"))
    assert len(bundles) == 24
    patient = json.loads(bundles[0].read_text())["entry"][0]["resource"]
    assert patient["identifier"] == [{"system": "urn:oncofhir:pseudonym", "value": bundles[0].stem}]
    rows = manifest_rows(tmp_path / "results" / "ega" / "manifest.tsv")
    assert len([r for r in rows if not r[3].startswith("tables/")]) == 24 + 1  # bundles + the NDJSON
    views = sorted(p.stem for p in (tmp_path / "results" / "views" / "tst").glob("*.json"))
    assert sorted(r[3] for r in rows if r[3].startswith("tables/")) == [  # + its views' tables (docs/tables.md)
        f"tables/tst/site_1/tst.site_1.{view}.parquet.c4gh" for view in views
    ]
    assert "tst_patients" in views
    row = dict(zip(summary[0].split("\t"), summary[1].split("\t"), strict=True))
    assert row["roundtrip"].startswith("100% (") and row["refused"] == ""  # by name: columns get added
    # its IG (ig.enabled auto: built where SUSHI or npm is, as in CI): profiles and page, claimed by the bundles
    claims = json.loads(bundles[0].read_text())["meta"].get("profile")
    if installed_sushi() is not None or npm_available():
        with tarfile.open(tmp_path / "results" / "ig" / "package.tgz") as tar:
            names = set(tar.getnames())
        assert {"package/StructureDefinition-tst.json", "package/ConceptMap-TstAnswerMap.json"} <= names
        assert (tmp_path / "results" / "ig" / "tst.html").is_file()
        assert claims == ["https://oncofhir.example.org/fhir/StructureDefinition/tst"]
    else:
        assert claims is None
    second = subprocess.run([*cmd, "-n"], cwd=REPO, env=workflow_env(), capture_output=True, text=True, timeout=120)
    assert "Nothing to be done" in second.stdout + second.stderr


def manifest_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


SECRET_MESSAGES = [
    ("", "", "environment variable ONCOFHIR_PSEUDONYM_KEY is missing or empty"),
    ("x7q9z", "", "ONCOFHIR_PSEUDONYM_KEY is too short (5 bytes, at least 16 needed)"),
    (
        "oncofhir-demo-secret-NOT-for-real-data",
        "deposit: {demo_keys: false, recipients: [@/ega.pub]}\n",
        "holds the public demo secret, which must never pseudonymise real data",
    ),
    ("a-real-secret-of-32-characters!!", "deposit: {demo_keys: false}\n", "deposit.recipients is empty"),
    ("a-real-secret-of-32-characters!!", "deposit: {demo_keys: false, recipients: [@/none.pub]}\n", "/none.pub"),
    ("a-real-secret-of-32-characters!!", "deposit: {demo_keys: false, recipients: [@/ega.sec]}\n", "private key"),
    ("a-real-secret-of-32-characters!!", "deposit: {sender_key: @/missing.sec}\n", "missing.sec"),
    (
        "a-real-secret-of-32-characters!!",
        "deposit: {demo_keys: false, recipients: [@/ega.pub]}\ntables: {cohort: {sk: @/other.sec}}\n",
        "@/other.sec: tables.cohort.sk: this private key belongs to none of deposit.recipients",
    ),
]


@pytest.mark.parametrize(("secret", "config", "message"), SECRET_MESSAGES)
def test_missing_secret_or_bad_key_fails_before_any_job(tmp_path: Path, secret: str, config: str, message: str) -> None:
    from oncofhir.deposit.keys import generate_keypair

    generate_keypair(tmp_path / "ega.sec", tmp_path / "ega.pub")
    generate_keypair(tmp_path / "other.sec", tmp_path / "other.pub")
    result = dry_run(tmp_path, f"results: {tmp_path}/results\n{config}", env=workflow_env(secret))
    out = result.stdout + result.stderr
    assert result.returncode != 0 and message.replace("@", str(tmp_path)) in out
    assert "Job stats" not in out and not (tmp_path / "results").exists()
    if secret:
        assert secret not in out


def test_real_secret_and_real_recipient_keys_plan_the_deposit(tmp_path: Path) -> None:
    from oncofhir.deposit.keys import generate_keypair

    generate_keypair(tmp_path / "ega.sec", tmp_path / "ega.pub")
    config = f"results: {tmp_path}/results\ndeposit: {{demo_keys: false, recipients: [{tmp_path}/ega.pub]}}\n"
    result = dry_run(tmp_path, config, env=workflow_env("a-real-secret-of-32-characters!!"))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    stats = dict(re.findall(r"^(\w+) +(\d+)$", out, flags=re.M))
    assert stats["encrypt"] == "11" and stats["manifest"] == "1" and "demo_keys" not in stats
    assert "cohort_db" not in stats  # real data: no key to the deposit unless tables.cohort.sk names one
    with_key = dry_run(
        tmp_path,
        config + f"tables: {{cohort: {{sk: {tmp_path}/ega.sec}}}}\n",
        env=workflow_env("a-real-secret-of-32-characters!!", ONCOFHIR_COHORT_PASSPHRASE=""),
    )
    out = with_key.stdout + with_key.stderr
    assert with_key.returncode == 0, out[-3000:]
    assert dict(re.findall(r"^(\w+) +(\d+)$", out, flags=re.M))["cohort_db"] == "1"


def test_real_data_without_a_cohort_key_writes_no_database_and_says_how(tmp_path: Path) -> None:
    """Real data, deposit on, temp_plaintext: the workflow holds no key to the deposit, so no plaintext database."""
    from oncofhir.demo import generate
    from oncofhir.deposit.keys import generate_keypair
    from oncofhir.dictionary import compile_dictionary

    dd = compile_dictionary(REPO / "resources" / "dictionaries" / "uc1", REPO / "resources" / "ontologies")
    (tmp_path / "a.csv").write_text(generate(dd, "a", 10, 3), encoding="utf-8")
    generate_keypair(tmp_path / "ega.sec", tmp_path / "ega.pub")
    (tmp_path / "centers.tsv").write_text(f"use_case\tcenter\texport\nuc1\ta\t{tmp_path}/a.csv\n", encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"centers: {tmp_path}/centers.tsv\nresults: {tmp_path}/results\n"
        f"deposit: {{demo_keys: false, recipients: [{tmp_path}/ega.pub]}}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", "--configfile", str(cfg)],
        cwd=REPO,
        env=workflow_env("a-real-secret-of-32-characters!!"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "results" / "tables").exists()
    assert (
        f"oncofhir: no {tmp_path}/results/tables/cohort.duckdb (plaintext tables deleted once encrypted): set "
        "tables.cohort.sk to a recipient's private key to build it from the deposit" in result.stderr
    )


def test_the_default_demo_run_writes_the_cohort_database_and_one_center_reruns_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped demo config (deposit on, temp_plaintext, demo keys) writes results/tables/cohort.duckdb from the
    encrypted tables; `oncofhir query` finds it by default and counts the uc7 bundles; a changed export of one center
    then reruns exactly that center's jobs and the cohort job (docs/tables.md#tables-and-the-cohort-database)."""
    from oncofhir.cli import main
    from oncofhir.demo import generate
    from oncofhir.dictionary import compile_dictionary

    (tmp_path / "centers.tsv").write_text(
        "use_case\tcenter\texport\n"
        + "".join(f"uc7\t{c}\t{tmp_path}/demo/uc7/{c}.csv\n" for c in ("site_a", "site_b")),
        encoding="utf-8",
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"centers: {tmp_path}/centers.tsv\nresults: {tmp_path}/results\n"
        f"demo: {{folder: {tmp_path}/demo, records: 15}}\n",
        encoding="utf-8",
    )

    def snakemake(*args: str) -> set[tuple[str, str, str]]:
        code, jobs, output = record_jobs(
            ["--configfile", str(cfg), "--cores", "2", *args], cwd=REPO, env=workflow_env()
        )
        assert code == 0, output[-3000:]
        return jobs

    first = snakemake()
    db = tmp_path / "results" / "tables" / "cohort.duckdb"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600 and stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in db.parent.iterdir()) == ["cohort.duckdb"]  # the plaintext Parquet is gone
    bundles = sum(
        len(p.read_text().splitlines()) - 1 for p in (tmp_path / "results" / "fhir" / "uc7").glob("*.index.tsv")
    )
    assert bundles > 20
    monkeypatch.chdir(tmp_path)  # the default --db: results/tables/cohort.duckdb
    capsys.readouterr()
    assert main(["query", "SELECT count(*) AS n FROM uc7_patients"]) == 0
    assert capsys.readouterr().out == f"n\n{bundles}\n"

    export = tmp_path / "demo" / "uc7" / "site_b.csv"
    dd = compile_dictionary(REPO / "resources" / "dictionaries" / "uc7", REPO / "resources" / "ontologies")
    export.write_bytes(generate(dd, "site_b", 15, 99).encode("utf-8"))  # a new delivery of one center
    plan = snakemake("--dry-run")
    per_center = {job for job in plan if job[2]}
    assert per_center == {job for job in first if job[2] == "site_b" and job[0] != "demo_export"}
    assert ("cohort_db", "", "") in plan and ("fhir", "uc7", "site_b") in plan
    assert plan - per_center <= {job for job in first if not job[2]}  # aggregates only
