"""Paths shared by the tests (importable as ``helpers``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DICTIONARIES = REPO / "resources" / "dictionaries"
ONTOLOGIES = REPO / "resources" / "ontologies"
#: Every use case is a folder of resources/dictionaries holding a mapping.yaml: a sixth one is files only.
USE_CASES = sorted(p.name for p in DICTIONARIES.iterdir() if (p / "mapping.yaml").is_file())


def _shared_reference() -> Path | None:
    for base in (REPO.parent / "shared", REPO.parent.parent / "shared"):
        if (base / "reference" / "eucanimage-fhir").is_dir():
            return base / "reference"
    return None


SHARED_REFERENCE = _shared_reference()


def _covered(relative: str) -> list[str]:
    """The use cases the reference material has ``relative`` (``{uc}`` filled in) for; all of them where the
    material is absent (the tests that read it skip then)."""
    if SHARED_REFERENCE is None:
        return list(USE_CASES)
    return [uc for uc in USE_CASES if (SHARED_REFERENCE / relative.format(uc=uc)).exists()]


#: Use cases with published EuCanImage outputs (the parity tests); a new use case has none and is not compared.
REFERENCE_USE_CASES = _covered("eucanimage-fhir/{uc}")
#: Use cases the consortium's quality tool has a dummy export for.
QUALITY_TOOLS_USE_CASES = _covered("quality-tools/dummy/{uc}.csv")


def workflow_env(secret: str = "oncofhir-demo-secret-NOT-for-real-data", **extra: str) -> dict[str, str]:
    """The environment for a Snakemake subprocess: the caller's, without any oncofhir secret of its own, plus the
    pseudonym secret (the public demo secret unless given) and ``extra`` variables."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONCOFHIR_", "C4GH_"))}
    if secret:
        env["ONCOFHIR_PSEUDONYM_KEY"] = secret
    return env | extra


# Runs Snakemake's command line in-process and records every job it schedules (dry run) or runs, from the
# JOB_INFO events that logger plugins receive; writes {"exit": code, "jobs": [{"rule", "wildcards"}]} to argv[1].
RECORD_JOBS = """
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


def record_jobs(
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: int = 600
) -> tuple[int, set[tuple[str, str, str]], str]:
    """Snakemake with ``args`` in-process under :data:`RECORD_JOBS`: its exit code, the (rule, use_case, center)
    of every job it scheduled or ran (aggregates have "" for both), and its console output."""
    import json
    import subprocess
    import sys
    import time

    record = Path(cwd) / f".jobs-{time.monotonic_ns()}.json"
    result = subprocess.run(
        [sys.executable, "-c", RECORD_JOBS, str(record), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert record.exists(), output[-3000:]
    data = json.loads(record.read_text())
    record.unlink()
    jobs = {(j["rule"], j["wildcards"].get("use_case", ""), j["wildcards"].get("center", "")) for j in data["jobs"]}
    return data["exit"] or 0, jobs, output


def stage_fhir_again(converted: Path, out: Path, **options: object) -> dict:
    """The FHIR stage run again, with ``options`` (``tables=``, ``privacy_counts=``), over what
    :func:`oncofhir.pipeline.convert` wrote into ``converted``; outputs in ``out`` (``bundles.ndjson``, ``index.tsv``,
    ``rejects.tsv``, ``summary.json``), as the workflow's ``fhir`` job lays them out beside its extras."""
    from oncofhir.pipeline import stage_fhir

    work = converted / "work"
    return stage_fhir(
        work / "dictionary.json",
        work / "records.csv",
        work / "ingest_rejects.tsv",
        work / "ingest.json",
        None,
        out / "bundles.ndjson",
        out / "index.tsv",
        out / "rejects.tsv",
        out / "summary.json",
        **options,  # type: ignore[arg-type]
    )
