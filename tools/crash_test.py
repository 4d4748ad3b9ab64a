"""Crash test: kill the workflow (SIGKILL) in the middle of each stage, rerun, and compare with an uninterrupted run.

Usage: python tools/crash_test.py [--records 20000] [--use-case uc1] [--stages ingest,fhir,validate,encrypt,manifest]
                                  [--workdir DIR] [--keep]

One synthetic center of ``--records`` rows is run twice from the same export, into two results folders:
1. the reference: ``snakemake --cores 2``, uninterrupted;
2. the crash run: for each stage in turn, the workflow is started and, once that stage's job is in the middle of
   its work, the whole run (Snakemake and the job, as a node failure or ``kill -9`` of the session does) is killed
   with SIGKILL. The next start is the plain rerun a user makes after such a crash, ``snakemake --unlock`` then
   ``snakemake --cores 2`` (the default profile sets ``rerun-incomplete``); it is itself killed at the next stage,
   and the last rerun completes.
Then every output of the crash run must equal the reference's (encrypted files compared by their decrypted
plaintext, manifests without the encrypted files' checksums, which differ by design: a fresh session key per
file; JSON without timings), and no oncofhir temp file or staging folder may exist anywhere under results/.
Prints one line per kill (what was running, the temp files present at that moment) and the verdict; exit 0 when
everything matches. At 20,000 rows this takes a few minutes on 2 cores; tests/test_faults.py runs a small version.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: A test secret: the exports here count as real data (outside the demo folder), for which the workflow refuses
#: the public demo secret and the demo keys.
SECRET = "crash-test-secret-not-for-real-data-0123"  # noqa: S105
CENTER = "site_a"
STAGES = ("ingest", "fhir", "validate", "encrypt", "manifest")
#: Oncofhir temp names (docs/output.md), and those of earlier versions.
TEMP_RE = re.compile(r"^\..+(\.oncofhir-tmp-[A-Za-z0-9_]*-[0-9]+|\.tmp[0-9]+|\.partial)$")
#: JSON keys that hold timings: they differ between any two runs.
VOLATILE_KEYS = {"seconds", "bundles_per_second"}
#: Folders whose content differs between any two runs by design: logs, timings.
SKIP_TOP = {"logs", "benchmarks", "ro-crate"}  # ro-crate: the run's provenance, with its run times


@dataclass
class Kill:
    stage: str
    after: float
    temp_files: list[str] = field(default_factory=list)
    completed: bool = False  # the run ended before the stage could be killed


def env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ONCOFHIR_", "C4GH_"))}
    return base | {"ONCOFHIR_PSEUDONYM_KEY": SECRET}


def write_center(workdir: Path, use_case: str, records: int) -> Path:
    """The synthetic export (seeded) and a config for it; returns the export."""
    from oncofhir.demo import generate
    from oncofhir.dictionary import compile_dictionary

    export = workdir / "exports" / use_case / f"{CENTER}.csv"
    if not export.exists():
        dd = compile_dictionary(REPO / "resources" / "dictionaries" / use_case, REPO / "resources" / "ontologies")
        export.parent.mkdir(parents=True, exist_ok=True)
        export.write_text(generate(dd, CENTER, records, seed=11), encoding="utf-8")
    return export


def write_config(workdir: Path, name: str, use_case: str, export: Path) -> Path:
    sheet = workdir / f"{name}.tsv"
    sheet.write_text(f"use_case\tcenter\texport\n{use_case}\t{CENTER}\t{export}\n", encoding="utf-8")
    keys = workdir / "keys"
    if not (keys / "ega.pub").exists():
        from oncofhir.deposit.keys import generate_keypair

        keys.mkdir(parents=True, exist_ok=True)
        generate_keypair(keys / "ega.sec", keys / "ega.pub")
    config = workdir / f"{name}.yaml"
    config.write_text(
        f"centers: {sheet}\nresults: {workdir / name / 'results'}\n"
        f"deposit: {{demo_keys: false, recipients: [{keys / 'ega.pub'}]}}\n"
        # no IG: it kills per-center stages, and SUSHI (one core for ~30 s) beside them would shift the kill points
        "ig: {enabled: false}\n",
        encoding="utf-8",
    )
    return config


def snakemake(config: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config), *args]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killed as a whole, as a crashed node would be
    )


def run_to_end(config: Path) -> str:
    proc = snakemake(config)
    out, _ = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"snakemake failed ({proc.returncode}):\n{out[-4000:]}")
    return out


def temp_files(results: Path) -> list[str]:
    """Every oncofhir temp file or staging folder below ``results``."""
    found = []
    for folder, dirs, files in os.walk(results):
        for name in [*dirs, *files]:
            if TEMP_RE.match(name):
                found.append(str(Path(folder, name).relative_to(results)))
    return sorted(found)


def job_seconds(results: Path, stage: str, use_case: str) -> float:
    """How long the stage's job took in the reference run (Snakemake's benchmark file)."""
    bench = results / "benchmarks" / (f"{stage}/{use_case}/{CENTER}.tsv" if stage != "manifest" else "manifest.tsv")
    with open(bench, encoding="utf-8") as handle:
        return float(next(csv.DictReader(handle, delimiter="\t"))["s"])


def unlock(config: Path) -> None:
    """``snakemake --unlock``: what a user runs after a crash that killed Snakemake itself (its lock stays)."""
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--unlock", "--configfile", str(config)],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"snakemake --unlock failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def kill_at(config: Path, results: Path, stage: str, use_case: str, delay: float) -> Kill:
    """Start the workflow; SIGKILL its whole process group while the stage's job writes its main output (its temp
    file exists; stages in :data:`TEMP_WATCH_PATTERNS`), or for the other stages ``delay`` s after the job started."""
    proc = snakemake(config)
    threading.Thread(target=proc.communicate, daemon=True).start()  # drain its output
    while not job_running(proc.pid, stage):
        if proc.poll() is not None:
            return Kill(stage, 0.0, completed=True)
        time.sleep(0.005)
    t0 = time.monotonic()
    pattern = TEMP_WATCH_PATTERNS.get(stage)
    watched = results / pattern.format(uc=use_case, c=CENTER) if pattern else None
    # a stage with a watched output is killed mid-write, however long a loaded machine takes to get there
    limit = max(delay, 300.0) if watched is not None else delay
    while time.monotonic() - t0 < limit and proc.poll() is None:
        if watched is not None and any(watched.parent.glob(f".{watched.name}.oncofhir-tmp-*")):
            break  # the stage is writing its main output: kill it mid-write
        time.sleep(0.002)
    if proc.poll() is not None:
        return Kill(stage, time.monotonic() - t0, completed=True)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return Kill(stage, round(time.monotonic() - t0, 2))


#: The main output each stage streams into a temp file (below results/; {uc} and {c} filled in).
TEMP_WATCH_PATTERNS = {
    "fhir": "fhir/{uc}/{c}.ndjson",
    "encrypt": "ega/{uc}/{c}",
    "manifest": "ega/manifest.tsv",
}
#: What the command line of each stage's job contains (the CLI stages name their log; the manifest is a script).
JOB_MARKERS = {stage: f"/logs/{stage}/" for stage in STAGES} | {"manifest": "merge_manifests.py"}


def job_running(session: int, stage: str) -> bool:
    """True when a process of the run's process group is the stage's job."""
    marker = JOB_MARKERS[stage].encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != session:
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                if marker in handle.read():
                    return True
        except OSError:
            continue
    return False


def _normalise_json(value: object) -> object:
    if isinstance(value, dict):
        return {k: _normalise_json(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_normalise_json(v) for v in value]
    return value


def _manifest_rows(path: Path) -> list[tuple[str, ...]]:
    from oncofhir.deposit.manifest import read_manifest

    return [
        tuple(v for k, v in row.items() if not k.startswith("c4gh_") or k == "c4gh_bytes")
        for row in read_manifest(path)
    ]


def _decrypt(path: Path, secret_key: Path) -> bytes:
    from crypt4gh import lib

    from oncofhir.deposit.keys import load_private_key

    out = io.BytesIO()
    with open(path, "rb") as handle:
        lib.decrypt([(0, load_private_key(secret_key), None)], handle, out)
    return out.getvalue()


def compare(reference: Path, crashed: Path) -> list[str]:
    """Differences between two results folders (empty when they are equal as described in the module's doc)."""

    def files(root: Path) -> set[str]:
        return {
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).parts[0] not in SKIP_TOP
        }

    ref_files, new_files = files(reference), files(crashed)
    problems = [f"only in the reference: {f}" for f in sorted(ref_files - new_files)]
    problems += [f"only after the crashes: {f}" for f in sorted(new_files - ref_files)]
    for rel in sorted(ref_files & new_files):
        a, b = reference / rel, crashed / rel
        if rel.endswith(".c4gh"):
            key = reference.parents[1] / "keys" / "ega.sec"  # <workdir>/<run>/results: the run's recipient key
            same = _decrypt(a, key) == _decrypt(b, key)
        elif rel.endswith("manifest.tsv"):
            same = _manifest_rows(a) == _manifest_rows(b)
        elif rel.endswith(".json"):
            same = _normalise_json(json.loads(a.read_bytes())) == _normalise_json(json.loads(b.read_bytes()))
        else:
            same = a.read_bytes() == b.read_bytes()
        if not same:
            problems.append(f"differs: {rel}")
    return problems


def crash_test(workdir: Path, records: int, use_case: str, stages: tuple[str, ...], out=print) -> dict:
    """Run the whole test in ``workdir``; returns the findings (see ``main`` for their use)."""
    workdir.mkdir(parents=True, exist_ok=True)
    export = write_center(workdir, use_case, records)
    ref_config, crash_config = (write_config(workdir, name, use_case, export) for name in ("reference", "crash"))
    ref_results, crash_results = workdir / "reference" / "results", workdir / "crash" / "results"
    for folder in (ref_results, crash_results):
        shutil.rmtree(folder, ignore_errors=True)
    t0 = time.monotonic()
    run_to_end(ref_config)
    out(f"reference run: {time.monotonic() - t0:.1f} s, {records} rows of {use_case}")
    kills, left, differences, compared = [], {}, {}, 0
    for stage in stages:
        shutil.rmtree(crash_results, ignore_errors=True)
        # stages that stream their main output are killed when its temp file appears (at the latest after twice
        # the reference job's time); the others halfway through the reference job's time
        delay = job_seconds(ref_results, stage, use_case) * (2 if stage in ("fhir", "encrypt") else 0.5)
        kill = kill_at(crash_config, crash_results, stage, use_case, delay)
        kill.temp_files = temp_files(crash_results)
        kills.append(kill)
        what = "finished before it could be killed" if kill.completed else f"killed {kill.after} s into the job"
        out(f"{stage}: {what}; temp files then: {', '.join(kill.temp_files) or 'none'}")
        t0 = time.monotonic()
        unlock(crash_config)
        run_to_end(crash_config)
        left[stage] = temp_files(crash_results)
        differences[stage] = compare(ref_results, crash_results)
        compared = sum(
            1 for p in crash_results.rglob("*") if p.is_file() and p.relative_to(crash_results).parts[0] not in SKIP_TOP
        )
        out(
            f"  plain rerun: {time.monotonic() - t0:.1f} s; temp files left under results/: "
            f"{', '.join(left[stage]) or 'none'}; {compared} output files compared with the uninterrupted run: "
            f"{len(differences[stage])} difference(s)"
        )
        for line in differences[stage][:20]:
            out(f"    {line}")
    return {"kills": kills, "left": left, "differences": differences, "compared": compared}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--use-case", default="uc1")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in workflow order")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="oncofhir-crash-"))
    try:
        found = crash_test(workdir, args.records, args.use_case, tuple(args.stages.split(",")))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    ok = not any(found["left"].values()) and not any(found["differences"].values())
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
