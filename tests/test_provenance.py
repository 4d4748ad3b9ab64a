"""Provenance (issue #16): code versions as rerun triggers.

Code versions: after a full run, changing one stage module in a copy of the package reruns that stage and what
depends on it, for every center, and nothing else; a documentation change reruns nothing. The copy is a real copy of
the repository (Snakefile, rules, package) that Snakemake and the jobs' ``oncofhir`` command import through
PYTHONPATH; the scheduled jobs are read from Snakemake's own job events (as in test_rerun.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO, record_jobs, workflow_env

from oncofhir.demo import generate
from oncofhir.provenance.code_version import STAGE_MODULES, closure, stage_code_version

USE_CASES = ("uc1", "uc3")
CENTERS = ("site_a", "site_b")
SECRET = "a-real-secret-of-32-characters!!"


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
    # qc_pool too: oncofhir.qc's __init__ (on the way to oncofhir.qc.pool) imports the stage and its pages
    assert {stage for stage in STAGE_MODULES if before[stage] != after[stage]} == {"qc", "qc_pool", "qc_index"}


def test_a_template_changes_the_version_of_exactly_the_stages_rendering_pages(tmp_path: Path) -> None:
    """Templates are not imported: MODULE_DATA puts them in the hash of every stage using oncofhir.pages."""
    root = _package_copy(tmp_path)
    before = {stage: stage_code_version(stage, root) for stage in STAGE_MODULES}
    with (root / "templates" / "run_report.html.j2").open("a") as handle:
        handle.write("\n{# a change #}\n")
    from oncofhir.provenance import code_version

    code_version._file_digest.cache_clear()
    after = {stage: stage_code_version(stage, root) for stage in STAGE_MODULES}
    changed = {stage for stage in STAGE_MODULES if before[stage] != after[stage]}
    assert changed == {"qc", "qc_pool", "qc_index", "run_summary", "report_file"}


def test_the_sushi_installer_changes_the_version_of_the_ig_stage_only(tmp_path: Path) -> None:
    """A new pinned SUSHI (install_sushi.sh, MODULE_DATA) rebuilds the IG package and nothing else."""
    root = _package_copy(tmp_path)
    before = {stage: stage_code_version(stage, root) for stage in STAGE_MODULES}
    with (root / "ig" / "install_sushi.sh").open("a") as handle:
        handle.write("\n# a change\n")
    from oncofhir.provenance import code_version

    code_version._file_digest.cache_clear()
    after = {stage: stage_code_version(stage, root) for stage in STAGE_MODULES}
    assert {stage for stage in STAGE_MODULES if before[stage] != after[stage]} == {"implementation_guide"}


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
    env = workflow_env(SECRET, PYTHONPATH=str(copy_root / "src"))
    args = ("-s", str(copy_root / "Snakefile"), "--configfile", str(config), "--notemp", *args)
    code, jobs, output = record_jobs(list(args), cwd=copy_root, env=env)
    assert code == 0, output[-3000:]
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
        f"deposit: {{demo_keys: false, recipients: [{tmp / 'keys' / 'ega.pub'}]}}\n"
        "ig: {enabled: false}\n",  # no IG needed here (test_ig, test_rerun and test_workflow build it)
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
    stages = {"qc", "qc_pool", "fhir", "validate", "encrypt", "privacy"}
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


# ---- the run's Provenance Run Crate ------------------------------------------------------------------------------


def _crate(repo_copy: Copy) -> tuple[dict, dict, Path]:
    results = repo_copy.config.parent / "results"
    path = results / "ro-crate" / "ro-crate-metadata.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return data, {e["@id"]: e for e in data["@graph"]}, results


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_the_run_crate_describes_workflow_steps_versions_and_deposit(repo_copy: Copy) -> None:
    import csv

    data, by_id, results = _crate(repo_copy)
    root = by_id["./"]
    assert {p["@id"] for p in root["conformsTo"]} == {
        "https://w3id.org/ro/wfrun/process/0.5",
        "https://w3id.org/ro/wfrun/workflow/0.5",
        "https://w3id.org/ro/wfrun/provenance/0.5",
        "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
    }
    workflow = by_id[root["mainEntity"]["@id"]]
    assert workflow["@id"] == "workflow/Snakefile" and workflow["version"].startswith("0.1.0")
    assert (results / "ro-crate" / "workflow" / "Snakefile").read_bytes() == (repo_copy.root / "Snakefile").read_bytes()
    software = {by_id[s["@id"]]["name"]: by_id[s["@id"]]["softwareVersion"] for s in workflow["softwareRequirements"]}
    assert {"Python", "oncofhir", "snakemake", "crypt4gh", "fhir.resources"} <= set(software)
    assert software["oncofhir"] == "0.1.0"
    # one CreateAction per job, named by rule, use case and center, with start and end; tools carry code versions
    runs = {e["name"] for e in data["@graph"] if e.get("@type") == "CreateAction" and e["@id"].startswith("#run-")}
    for use_case in USE_CASES:
        for center in CENTERS:
            for rule in ("ingest", "qc", "fhir", "validate", "encrypt"):
                assert f"{rule} {use_case}/{center}" in runs
        assert f"privacy {use_case}" in runs
    qc_run = next(e for e in data["@graph"] if e.get("name") == f"qc {USE_CASES[0]}/{CENTERS[0]}")
    assert qc_run["startTime"] <= qc_run["endTime"]
    assert by_id["#tool-qc"]["softwareVersion"] == stage_code_version("qc", repo_copy.root / "src" / "oncofhir")
    qc_json = by_id[f"../qc/{USE_CASES[0]}/{CENTERS[0]}/qc.json"]
    assert (
        qc_json["sha256"]
        == hashlib.sha256((results / "qc" / USE_CASES[0] / CENTERS[0] / "qc.json").read_bytes()).hexdigest()
    )
    # every deposit file with the manifest's checksum; dictionaries with their version; code tables with theirs
    with open(results / "ega" / "manifest.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert rows and all(by_id[f"../ega/{r['file']}"]["sha256"] == r["c4gh_sha256"] for r in rows)
    assert by_id["../dictionaries/uc1.json"]["version"] == "1.0.0"
    assert by_id["#code-table-sct.tsv"]["url"] == "http://snomed.info/sct"
    config = json.loads((results / "ro-crate" / "config.json").read_text(encoding="utf-8"))
    assert config["privacy"] == {"k": 5, "action": "report"}


def test_the_crate_holds_no_secret_record_id_or_plaintext_path(repo_copy: Copy) -> None:
    """The run kept its plaintext (--notemp): still none of it is named, and no record id or secret appears."""
    import re

    _, by_id, results = _crate(repo_copy)
    text = "".join(p.read_text(encoding="utf-8") for p in (results / "ro-crate").glob("*.*"))
    assert SECRET not in text
    record_ids = set()
    for export in (repo_copy.config.parent / "exports").rglob("*.csv"):
        record_ids |= {line.split(",", 1)[0] for line in export.read_text(encoding="utf-8").splitlines()[1:]}
    assert not [rid for rid in record_ids if rid and rid in text]
    assert (results / "ingest" / "uc1" / "site_a" / "records.csv").exists()  # kept, yet not named
    plaintexts = ("records.csv", "index.tsv", "/exports/", "rejects", "gate.tsv", "failures.tsv", ".sec", "counts.tsv")
    for plaintext in plaintexts:
        assert plaintext not in text, plaintext
    assert not re.search(r"\.ndjson(?!\.c4gh)", text)
    assert not [i for i in by_id if re.match(r"\.\./fhir/[^/]+/[^/.]+$", i)]  # no per-patient bundle folder


def test_roc_validator_finds_no_issue_at_the_strictest_profile(repo_copy: Copy) -> None:
    pytest.importorskip("rocrate_validator", reason="roc-validator is not installed (pip install -e '.[dev]')")
    crate = repo_copy.config.parent / "results" / "ro-crate"
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "ro-crate" / "validate.py"), str(crate)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    assert (report["profile"], report["severity"]) == ("provenance-run-crate-0.5", "REQUIRED")
    assert report["issues"] == [] and report["passed"] is True, result.stdout + result.stderr[-2000:]
    assert result.returncode == 0


def test_verify_checks_the_crate_against_the_manifest(repo_copy: Copy, tmp_path: Path) -> None:
    from oncofhir.cli import main

    results = tmp_path / "results"
    shutil.copytree(repo_copy.config.parent / "results" / "ega", results / "ega")
    shutil.copytree(repo_copy.config.parent / "results" / "ro-crate", results / "ro-crate")
    manifest = results / "ega" / "manifest.tsv"
    assert main(["verify", str(manifest)]) == 0
    path = results / "ro-crate" / "ro-crate-metadata.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    entity = next(e for e in data["@graph"] if e["@id"].startswith("../ega/") and e["@id"].endswith(".json.c4gh"))
    good, entity["sha256"] = entity["sha256"], "0" * 64
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["verify", str(manifest)]) == 1
    path.write_text(json.dumps({**data, "@graph": [e for e in data["@graph"] if e is not entity]}), encoding="utf-8")
    assert main(["verify", str(manifest)]) == 1
    assert good != "0" * 64
