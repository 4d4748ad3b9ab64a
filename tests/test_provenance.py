"""Provenance (issue #16): code versions as rerun triggers.

Code versions: after a full run, changing one stage module in a copy of the package reruns that stage and what
depends on it, for every center, and nothing else; a documentation change reruns nothing. The copy is a real copy of
the repository (Snakefile, rules, package) that Snakemake and the jobs' ``oncofhir`` command import through
PYTHONPATH; the scheduled jobs are read from Snakemake's own job events (as in test_rerun.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO, workflow_env

from oncofhir.demo import generate
from oncofhir.provenance.code_version import STAGE_MODULES, closure, stage_code_version

USE_CASES = ("uc1", "uc3")
CENTERS = ("site_a", "site_b")
SECRET = "a-real-secret-of-32-characters!!"

_RECORD_JOBS = """
import json, logging, sys
from snakemake.cli import main
from snakemake_interface_logger_plugins.common import LogEvent

jobs = []

class Jobs(logging.Handler):
    def emit(self, record):
        if getattr(record, "event", None) == LogEvent.JOB_INFO:
            jobs.append({"rule": record.rule_name, "wildcards": dict(record.wildcards or {})})

logging.getLogger().addHandler(Jobs())
try:
    main(sys.argv[2:])
    code = 0
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as handle:
    json.dump({"exit": code, "jobs": jobs}, handle)
"""

Job = tuple[str, str, str]


# ---- the code-version function itself ----------------------------------------------------------------------


def _package_copy(tmp: Path) -> Path:
    root = tmp / "oncofhir"
    shutil.copytree(REPO / "src" / "oncofhir", root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_every_rule_running_package_code_has_a_code_version() -> None:
    """Each rule of the workflow is in the table (a new rule without an entry fails the parse with a KeyError)."""
    rules = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("rule "):
                name = line.split()[1].rstrip(":")
                rules.add(name)
                block = text.split(line, 1)[1].split("\nrule ", 1)[0]
                assert f'code=code_version("{name}")' in block, f"rule {name} in {smk.name} has no code= parameter"
    assert rules <= set(STAGE_MODULES), rules - set(STAGE_MODULES)


def test_a_module_changes_the_version_of_exactly_the_stages_importing_it(tmp_path: Path) -> None:
    root = _package_copy(tmp_path)
    before = {stage: stage_code_version(stage, root) for stage in STAGE_MODULES}
    assert before["qc"].startswith("0.1.0+") and len(before["qc"]) == len("0.1.0+") + 16
    with (root / "qc" / "html.py").open("a") as handle:
        handle.write("\n# a change\n")
    from oncofhir.provenance import code_version

    code_version._file_digest.cache_clear()
    after = {stage: stage_code_version(stage, root) for stage in STAGE_MODULES}
    assert {stage for stage in STAGE_MODULES if before[stage] != after[stage]} == {"qc", "qc_index"}


def test_lazy_imports_count_but_not_a_dispatchers(tmp_path: Path) -> None:
    """A function-level import (validate.report -> dictionary.compiler) is followed; cli.py's are not (each stage
    names its own modules): the encrypt stage does not depend on the FHIR builder."""
    files = {p.relative_to(REPO / "src" / "oncofhir").as_posix() for p in closure(STAGE_MODULES["validate"])}
    assert "dictionary/compiler.py" in files and "cli.py" in files
    encrypt = {p.relative_to(REPO / "src" / "oncofhir").as_posix() for p in closure(STAGE_MODULES["encrypt"])}
    assert "fhir/builder.py" not in encrypt and "deposit/encrypt.py" in encrypt and "cli.py" in encrypt


# ---- end to end: the workflow reruns exactly the changed stages ------------------------------------------------


@dataclass
class Copy:
    root: Path
    config: Path
    first: set[Job]


def _snakemake(copy_root: Path, config: Path, tmp: Path, *args: str) -> tuple[set[Job], str]:
    record = tmp / f"jobs-{time.monotonic_ns()}.json"
    env = workflow_env(SECRET, PYTHONPATH=str(copy_root / "src"))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _RECORD_JOBS,
            str(record),
            "-s",
            str(copy_root / "Snakefile"),
            "--configfile",
            str(config),
            "--notemp",
            *args,
        ],
        cwd=copy_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert record.exists(), output[-3000:]
    data = json.loads(record.read_text())
    assert data["exit"] in (0, None), output[-3000:]
    jobs = {(j["rule"], j["wildcards"].get("use_case", ""), j["wildcards"].get("center", "")) for j in data["jobs"]}
    return jobs, output


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory, compiled) -> Copy:
    """A copy of the repository (no .git, results or tests), run once in full on 2 use cases x 2 centers."""
    from oncofhir.deposit.keys import generate_keypair

    tmp = tmp_path_factory.mktemp("codeversion")
    root = tmp / "repo"
    ignore = shutil.ignore_patterns(".git", "results", "demo", ".snakemake", "__pycache__", "*.egg-info", "tests")
    shutil.copytree(REPO, root, ignore=ignore)
    (tmp / "keys").mkdir()
    generate_keypair(tmp / "keys" / "ega.sec", tmp / "keys" / "ega.pub")
    rows = []
    for use_case in USE_CASES:
        for center in CENTERS:
            export = tmp / "exports" / use_case / f"{center}.csv"
            export.parent.mkdir(parents=True, exist_ok=True)
            export.write_bytes(generate(compiled[use_case], center, 10, 3).encode("utf-8"))
            rows.append(f"{use_case}\t{center}\t{export}\ttest\n")
    sheet = tmp / "centers.tsv"
    sheet.write_text("use_case\tcenter\texport\tdescription\n" + "".join(rows), encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        f"centers: {sheet}\nresults: {tmp / 'results'}\n"
        f"deposit: {{demo_keys: false, recipients: [{tmp / 'keys' / 'ega.pub'}]}}\n",
        encoding="utf-8",
    )
    first, _ = _snakemake(root, config, tmp, "--cores", "2")
    return Copy(root, config, first)


def _append(path: Path, text: str) -> bytes:
    original = path.read_bytes()
    path.write_bytes(original + text.encode())
    return original


def test_a_changed_stage_module_reruns_that_stage_and_its_dependants_for_every_center(
    repo_copy: Copy, tmp_path: Path
) -> None:
    module = repo_copy.root / "src" / "oncofhir" / "qc" / "html.py"
    original = _append(module, "\n# an unreleased change to the QC report\n")
    try:
        planned, output = _snakemake(repo_copy.root, repo_copy.config, tmp_path, "--dry-run", "--cores", "1")
    finally:
        module.write_bytes(original)
    per_center = {job for job in planned if job[1]}
    stages = {"qc", "fhir", "validate", "encrypt", "privacy_counts", "privacy"}
    expected = {job for job in repo_copy.first if job[1] and job[0] in stages}
    assert per_center == expected, output[-3000:]
    assert {("qc", u, c) for u in USE_CASES for c in CENTERS} <= per_center
    assert not {job for job in per_center if job[0] in {"ingest", "compile_dictionary"}}
    aggregates = {job for job in planned if not job[1]}
    assert {"qc_index", "run_summary", "manifest"} <= {rule for rule, *_ in aggregates}
    assert aggregates <= {job for job in repo_copy.first if not job[1]}


def test_a_docs_only_change_reruns_nothing(repo_copy: Copy, tmp_path: Path) -> None:
    originals = {
        path: _append(path, "\nA documentation change.\n")
        for path in (repo_copy.root / "README.md", repo_copy.root / "docs" / "qc.md")
    }
    try:
        planned, output = _snakemake(repo_copy.root, repo_copy.config, tmp_path, "--dry-run", "--cores", "1")
    finally:
        for path, original in originals.items():
            path.write_bytes(original)
    assert not planned and "Nothing to be done" in output, output[-3000:]
