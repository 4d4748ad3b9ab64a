"""Benchmark memory and time of the per-center stages (ingest, qc, fhir, validate) on one large export.

Usage: python benchmarks/bench_ingest.py --mb 500 [--use-case uc7] [--stages ingest,qc,fhir,validate]
       [--mem-limit-gb 10]

Generates a synthetic export of about ``--mb`` megabytes (a block of ``oncofhir.demo.generate`` records, with its
duplicated and blank record ids, repeated with distinct record ids until the size is reached), then runs each
stage as the workflow does (``python -m oncofhir --log ... <stage>``, one fresh process each) and prints, per
stage, the wall time, the peak resident memory of that process (``os.wait4``'s ``ru_maxrss``) and its exit code.
Each stage runs under an address-space limit (``--mem-limit-gb``) so a stage that does not stream fails with
"out of memory" instead of taking the shared machine down; a stage after a failed one is skipped.
Target (issue 11.9): under 1 GB peak per job for a 500 MB export. Run it once per change: it takes minutes.
The fhir and validate stages write and read the center's NDJSON, 7-33 KiB per patient (a UC7 export of 500 MB
makes ~85 GB of it): check the disk before running them at that size (docs/performance.md#memory-per-job).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from oncofhir.demo import generate
from oncofhir.dictionary import compile_dictionary

REPO = Path(__file__).resolve().parents[1]
BLOCK = 20000  # records generated once, then repeated with new ids (generation costs ~1 ms per uc7 record)
STAGES = ("ingest", "qc", "fhir", "validate")


def write_export(dd_json: Path, out: Path, use_case: str, megabytes: float) -> tuple[int, int]:
    """Write an export of at least ``megabytes`` MB; returns (data rows, bytes)."""
    from oncofhir.dictionary import load_compiled

    dd = load_compiled(dd_json)
    text = generate(dd, "bench", BLOCK, seed=1)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    target = int(megabytes * 1_000_000)
    written = 0
    n = 0
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        copy = 0
        while handle.tell() < target:
            suffix = f"-{copy}"
            writer.writerows([(r[0] + suffix if r[0] else "", *r[1:]) for r in body])
            n += len(body)
            copy += 1
        written = handle.tell()
    return n, written


def run_stage(argv: list[str], log: Path, mem_limit: int) -> tuple[float, float, int]:
    """Run one stage in a fresh process: (seconds, peak RSS in MB, exit code)."""

    def limit() -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "oncofhir", "--log", str(log), *argv], preexec_fn=limit if mem_limit else None
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    return seconds, usage.ru_maxrss / 1024, proc.returncode  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=500, help="export size in MB (default 500)")
    parser.add_argument("--use-case", default="uc7")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in order (default: all)")
    parser.add_argument("--mem-limit-gb", type=float, default=10, help="address-space limit per stage (0: none)")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out"), help="scratch folder")
    parser.add_argument("--keep", action="store_true", help="keep the export and outputs (path printed)")
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(unknown)} (known: {', '.join(STAGES)})")
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    mem_limit = int(args.mem_limit_gb * 2**30)
    work = Path(tempfile.mkdtemp(prefix="ingest-", dir=root))
    try:
        compiled = work / f"{args.use_case}.json"
        dd = compile_dictionary(REPO / "resources" / "dictionaries" / args.use_case, REPO / "resources" / "ontologies")
        compiled.write_text(dd.to_json(), encoding="utf-8")
        export = work / "export.csv"
        t0 = time.perf_counter()
        rows, size = write_export(compiled, export, args.use_case, args.mb)
        print(
            f"export: {args.use_case}, {rows:,} rows, {size / 1e6:,.0f} MB ({time.perf_counter() - t0:.0f} s to write)"
        )
        ing = work / "ingest"
        commands = {
            "ingest": [
                "ingest", "--dictionary", str(compiled), "--export", str(export), "--records", str(ing / "records.csv"),
                "--rejects", str(ing / "rejects.tsv"), "--report", str(ing / "report.json"),
            ],
            "qc": [
                "qc", "--dictionary", str(compiled), "--records", str(ing / "records.csv"),
                "--out-dir", str(work / "qc"), "--center", "bench",
            ],
            "fhir": [
                "fhir", "--dictionary", str(compiled), "--records", str(ing / "records.csv"),
                "--ingest-rejects", str(ing / "rejects.tsv"), "--ingest-report", str(ing / "report.json"),
                "--ndjson", str(work / "fhir.ndjson"), "--index", str(work / "index.tsv"),
                "--rejects", str(work / "fhir_rejects.tsv"), "--summary", str(work / "summary.json"),
                "--no-pseudonyms",
            ],
            "validate": [
                "validate-center", "--dictionary", str(compiled), "--bundles", str(work / "fhir.ndjson"),
                "--out-dir", str(work / "validation"), "--center", "bench", "--no-fail-on-error",
            ],
        }  # fmt: skip
        if "qc" in stages:
            commands["fhir"] += ["--gate", str(work / "qc" / "gate.tsv")]
        print(f"{'stage':<9}{'seconds':>10}{'peak RSS MB':>14}{'x export':>10}  exit")
        failed = False
        for stage in stages:
            if failed:
                print(f"{stage:<9}{'skipped (an earlier stage failed)':>36}")
                continue
            log = work / f"{stage}.log"
            seconds, peak, code = run_stage(commands[stage], log, mem_limit)
            print(f"{stage:<9}{seconds:>10.1f}{peak:>14,.0f}{peak * 2**20 / size:>10.2f}  {code}", flush=True)
            if stage == "fhir" and code == 0:
                print(f"         NDJSON {(work / 'fhir.ndjson').stat().st_size / 1e6:,.0f} MB", flush=True)
            if code != 0:
                failed = True
                tail = (
                    log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] if log.exists() else []
                )
                print(f"         {tail[0] if tail else 'no log'}")
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
