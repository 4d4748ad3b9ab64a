"""What the analysis tables cost the workflow's `fhir` job, against the separate `tables` job they used to have.

Usage: python benchmarks/bench_table_job.py [--patients 572] [--use-cases uc1 uc7 ...] [--rounds 3]

Per use case, one center of ``--patients`` synthetic patients (572: the whole-workflow benchmark's centers,
docs/cluster.md), three processes as the workflow runs them, interleaved, median of ``--rounds``:

* ``fhir``: `oncofhir fhir` without tables (the bundles, NDJSON, index, rejects);
* ``fhir+tables``: the same with ``--views-dir`` (the workflow's job: the views run over each bundle as it is
  written, then Parquet and the round trip);
* ``tables job``: `oncofhir tables` over the written NDJSON, the separate job the views had until they moved into
  the fhir job (a new interpreter, the imports, the dictionary, the NDJSON parsed back).

CPU seconds and peak RSS of each process (``os.wait4``: the machine is shared, so CPU, not wall). Input as
bench_views.py makes it (compile, ingest, FHIR), under ``benchmarks/out/views-input/`` (reused).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench_views import REPO, prepare

from oncofhir.dictionary.compiled import load_compiled
from oncofhir.views.generate import write_views

SECRET = "benchmark-secret-not-the-demo-one"  # synthetic data only


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of one process, which must succeed."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(
            f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}"
        )
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def commands(work: Path, use_case: str, out: Path) -> dict[str, list[str]]:
    """The three processes, with the workflow's arguments."""
    d = work
    fhir = ["oncofhir", "--log", f"{out}/fhir.log", "fhir", "--dictionary", f"{d}/work/dictionary.json",
            "--records", f"{d}/work/records.csv", "--ingest-rejects", f"{d}/work/ingest_rejects.tsv",
            "--ingest-report", f"{d}/work/ingest.json", "--ndjson", f"{out}/b.ndjson", "--index", f"{out}/i.tsv",
            "--rejects", f"{out}/r.tsv", "--summary", f"{out}/s.json", "--refuse-demo-secret"]  # fmt: skip
    with_tables = [*fhir, "--views-dir", f"{d}/views", "--tables-dir", f"{out}/tables/{use_case}/c1", "--center",
                   "c1", "--tables-root", f"{out}/tables", "--roundtrip-json", f"{out}/rt.json", "--roundtrip-tsv",
                   f"{out}/rt.tsv"]  # fmt: skip
    tables = ["oncofhir", "--log", f"{out}/tables.log", "tables", "--dictionary", f"{d}/work/dictionary.json",
              "--views-dir", f"{d}/views", "--ndjson", f"{d}/bundles.ndjson", "--out-dir",
              f"{out}/separate/{use_case}/c1", "--center", "c1", "--root", f"{out}/separate", "--records",
              f"{d}/work/records.csv", "--index", f"{d}/index.tsv", "--roundtrip-json", f"{out}/rt2.json",
              "--roundtrip-tsv", f"{out}/rt2.tsv"]  # fmt: skip
    return {"fhir": fhir, "fhir+tables": with_tables, "tables job": tables}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=572, help="patients of the center (the benchmark's: 572)")
    parser.add_argument("--use-cases", nargs="*", default=["uc1", "uc3", "uc45", "uc68", "uc7"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "ONCOFHIR_PSEUDONYM_KEY": SECRET}
    scratch = REPO / "benchmarks" / "out" / "table-job"
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"{args.patients} patients per center; CPU-s and peak RSS (MB), median of {args.rounds}")
    print("use case | fhir | fhir+tables | added in the fhir job | separate tables job | RSS (MB) of the three")
    print("---|---|---|---|---|---")
    totals = {"added": 0.0, "separate": 0.0}
    for use_case in args.use_cases:
        work = prepare(REPO / "benchmarks" / "out" / "views-input" / f"{use_case}-{args.patients}", use_case,
                       args.patients)  # fmt: skip
        write_views(load_compiled(work / "work" / "dictionary.json"), work / "views")
        cpu: dict[str, list[float]] = {}
        rss: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            out = scratch / use_case
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            for name, cmd in commands(work, use_case, out).items():
                seconds, mb = run(cmd, env)
                cpu.setdefault(name, []).append(seconds)
                rss.setdefault(name, []).append(mb)
        c = {k: statistics.median(v) for k, v in cpu.items()}
        r = {k: max(v) for k, v in rss.items()}
        added = c["fhir+tables"] - c["fhir"]
        totals["added"] += added
        totals["separate"] += c["tables job"]
        print(f"{use_case} | {c['fhir']:.2f} | {c['fhir+tables']:.2f} | {added:.2f} | {c['tables job']:.2f} | "
              f"{r['fhir']:.0f} / {r['fhir+tables']:.0f} / {r['tables job']:.0f}", flush=True)  # fmt: skip
    saved = 1 - totals["added"] / totals["separate"]
    print(f"all | | | {totals['added']:.2f} | {totals['separate']:.2f} | (in the fhir job: {saved:.0%} less CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
