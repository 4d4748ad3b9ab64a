"""Only changed centers rerun: after a full run, a dry run schedules exactly the jobs of the center whose export or
centers-sheet row changed (plus the aggregates), and nothing at all when an export is touched but not changed.

The scheduled jobs are read from Snakemake's own job events (rule name and wildcards), not from its console text,
and the per-center stages are taken from the first run's jobs, so a new stage needs no change here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO, record_jobs, workflow_env

from oncofhir.demo import generate
from oncofhir.ig.install import installed_sushi, npm_available

USE_CASES = ("uc1", "uc3")
CENTERS = ("site_a", "site_b")
RECORDS = 20
SEED = 7
REAL_SECRET = "a-real-secret-of-32-characters!!"  # real (not generated) exports: never the public demo secret


Job = tuple[str, str, str]  # (rule, use_case, center); aggregates have "" for both
IG_JOB: Job = ("implementation_guide", "", "")


@dataclass
class Plan:
    jobs: set[Job]
    output: str

    def per_center(self) -> set[Job]:
        return {job for job in self.jobs if job[1] or job[2]}


def snakemake(tmp: Path, config: Path, *args: str) -> Plan:
    """Run (or, with -n, plan) the workflow on ``config``; the jobs it schedules."""
    code, jobs, output = record_jobs(
        ["--configfile", str(config), *args],
        cwd=REPO,
        env=workflow_env(REAL_SECRET, ONCOFHIR_COHORT_PASSPHRASE=""),  # the cohort key has no passphrase
    )
    assert code == 0, output[-3000:]
    return Plan(jobs, output)


def dry_run(tmp: Path, config: Path) -> Plan:
    return snakemake(tmp, config, "--dry-run", "--cores", "1")


@dataclass
class Consortium:
    root: Path
    config: Path
    first_run: Plan

    def export(self, use_case: str, center: str) -> Path:
        return self.root / "exports" / use_case / f"{center}.csv"

    def write_config(self, name: str, rows: list[list[str]]) -> Path:
        """A config identical to the first run's but for its centers sheet (same results folder)."""
        sheet = self.root / f"{name}.tsv"
        sheet.write_text(
            "".join("\t".join(row) + "\n" for row in [["use_case", "center", "export", "description"], *rows]),
            encoding="utf-8",
        )
        config = self.root / f"{name}.yaml"
        config.write_text(
            f"centers: {sheet}\nresults: {self.root / 'results'}\n"
            f"deposit: {{demo_keys: false, recipients: [{self.root / 'keys' / 'ega.pub'}]}}\n"  # real exports
            # the local cohort database, built from the deposit with a recipient's key (docs/tables.md)
            f"tables: {{cohort: {{sk: {self.root / 'keys' / 'ega.sec'}}}}}\n",
            encoding="utf-8",
        )
        return config

    def rows(self) -> list[list[str]]:
        return [[u, c, str(self.export(u, c)), "test center"] for u in USE_CASES for c in CENTERS]

    def stages_of(self, use_case: str, center: str) -> set[Job]:
        """Every job of one center in the first (full) run."""
        return {job for job in self.first_run.jobs if job[1:] == (use_case, center)}


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory, compiled) -> Consortium:
    """2 use cases x 2 centers with ordinary (not generated-by-the-workflow) exports, run once for real."""
    from oncofhir.deposit.keys import generate_keypair

    root = tmp_path_factory.mktemp("rerun")
    (root / "keys").mkdir()
    generate_keypair(root / "keys" / "ega.sec", root / "keys" / "ega.pub")
    for use_case in USE_CASES:
        for center in CENTERS:
            path = root / "exports" / use_case / f"{center}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(generate(compiled[use_case], center, RECORDS, SEED).encode("utf-8"))
    consortium = Consortium(root, root / "config.yaml", Plan(set(), ""))
    consortium.config = consortium.write_config("config", consortium.rows())
    consortium.first_run = snakemake(root, consortium.config, "--cores", "2")
    for use_case in USE_CASES:
        for center in CENTERS:
            assert {"ingest", "fhir"} <= {rule for rule, *_ in consortium.stages_of(use_case, center)}
    return consortium


def assert_only(plan: Plan, consortium: Consortium, use_case: str, center: str) -> None:
    """Exactly the center's jobs are scheduled, plus aggregates (jobs without wildcards) and its use case's
    aggregates over its centers (the re-identification risk); nothing of other centers or use cases."""
    own_use_case = {job for job in plan.per_center() if job[1:] == (use_case, "")}
    assert own_use_case <= {job for job in consortium.first_run.jobs if job[1:] == (use_case, "")}
    others = sorted(job for job in plan.per_center() - own_use_case if job[1:] != (use_case, center))
    assert not others, f"jobs of other centers or use cases scheduled: {others}\n{plan.output[-3000:]}"
    assert plan.per_center() - own_use_case == consortium.stages_of(use_case, center), plan.output[-3000:]
    aggregates = {job for job in consortium.first_run.jobs if not job[1] and not job[2]}
    assert plan.jobs - plan.per_center() <= aggregates


def test_touching_an_export_reruns_nothing(consortium: Consortium, tmp_path: Path) -> None:
    """A second run does nothing, even after an export got a newer time stamp with the same content: Snakemake
    then compares content checksums (of files up to --max-checksum-file-size, 1 MB by default)."""
    export = consortium.export("uc1", "site_a")
    later = time.time() + 5
    os.utime(export, (later, later))
    plan = dry_run(tmp_path, consortium.config)
    assert not plan.jobs and "Nothing to be done" in plan.output, plan.output[-3000:]


def test_a_changed_export_reruns_only_its_center(consortium: Consortium, tmp_path: Path, compiled) -> None:
    export = consortium.export("uc3", "site_b")
    original = export.read_bytes()
    try:
        export.write_bytes(generate(compiled["uc3"], "site_b", RECORDS, SEED + 1).encode("utf-8"))
        plan = dry_run(tmp_path, consortium.config)
        assert_only(plan, consortium, "uc3", "site_b")
        assert ("fhir", "uc3", "site_b") in plan.jobs
        # the use case's pool step (it needs every center) reruns; site_a's QC and the other use case's pool do not
        assert ("qc", "uc3", "site_b") in plan.jobs and ("qc_pool", "uc3", "") in plan.jobs
        assert ("qc", "uc3", "site_a") not in plan.jobs and ("qc_pool", "uc1", "") not in plan.jobs
        assert ("cohort_db", "", "") in plan.jobs  # from the encrypted tables: no other center's tables remade
        # the IG (ig.enabled auto: built on the first run where SUSHI or npm is there) depends on no export
        assert (IG_JOB in consortium.first_run.jobs) == (installed_sushi() is not None or npm_available())
        assert IG_JOB not in plan.jobs
    finally:
        export.write_bytes(original)  # same content, newer time stamp: nothing to do again (as when touched)


def test_a_changed_sheet_row_reruns_only_its_center(consortium: Consortium, tmp_path: Path, compiled) -> None:
    """A center's row now points to a new export file (as after a new delivery): only that center reruns."""
    new_export = consortium.root / "exports" / "uc1" / "site_b.2024-06.csv"
    new_export.write_bytes(generate(compiled["uc1"], "site_b", RECORDS, SEED + 2).encode("utf-8"))
    rows = [[u, c, str(new_export) if (u, c) == ("uc1", "site_b") else e, d] for u, c, e, d in consortium.rows()]
    plan = dry_run(tmp_path, consortium.write_config("new-delivery", rows))
    assert_only(plan, consortium, "uc1", "site_b")
    assert ("ingest", "uc1", "site_b") in plan.jobs


def test_a_changed_description_reruns_no_center(consortium: Consortium, tmp_path: Path) -> None:
    """The description column is free text that no job reads."""
    rows = [[u, c, e, "renamed" if (u, c) == ("uc3", "site_a") else d] for u, c, e, d in consortium.rows()]
    plan = dry_run(tmp_path, consortium.write_config("new-description", rows))
    assert not plan.per_center(), plan.output[-3000:]
