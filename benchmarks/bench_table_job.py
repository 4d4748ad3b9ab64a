"""What a workflow `tables` job costs, and how much of it running the views inside the `fhir` job would save.

Usage: python benchmarks/bench_table_job.py [--patients 572] [--use-cases uc1 uc7 ...] [--rounds 3]

The whole-workflow benchmark (docs/cluster.md) has 572 patients per center, where a table job's fixed cost (a new
interpreter, oncofhir, numpy, pyarrow, reading the dictionary and the records) is a large part of its time. This
runs, per use case, one `oncofhir fhir` job and one `oncofhir tables` job (views, Parquet, round trip, deposit) as
the workflow does, as subprocesses, and two probes of the parts a job doing both would not pay twice: the start-up
the `fhir` job already has (interpreter, oncofhir's CLI, numpy, the dictionary, records and index read) and the
parse of the center's NDJSON (the bundles would be in memory). CPU seconds of each (getrusage of the children: the
machine is shared), interleaved, median of ``--rounds``. Input as bench_views.py makes it (compile, ingest, FHIR),
under ``benchmarks/out/views-input/`` (reused).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench_views import REPO, prepare

from oncofhir.deposit.keys import generate_demo_keys
from oncofhir.dictionary.compiled import load_compiled
from oncofhir.views.generate import write_views

SECRET = "benchmark-secret-not-the-demo-one"  # synthetic data only


def cpu(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """CPU seconds (user + system) of one subprocess, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, out


def commands(work: Path, use_case: str, out: Path, keys: dict[str, tuple[Path, Path]]) -> dict[str, list[str]]:
    """The two jobs as the workflow's rules run them, and the two probes."""
    d, py = work, sys.executable
    fhir = ["oncofhir", "--log", f"{out}/fhir.log", "fhir", "--dictionary", f"{d}/work/dictionary.json",
            "--records", f"{d}/work/records.csv", "--ingest-rejects", f"{d}/work/ingest_rejects.tsv",
            "--ingest-report", f"{d}/work/ingest.json", "--ndjson", f"{out}/b.ndjson", "--index", f"{out}/i.tsv",
            "--rejects", f"{out}/r.tsv", "--summary", f"{out}/s.json", "--refuse-demo-secret"]  # fmt: skip
    ega = out / "ega" / "tables" / use_case
    tables = ["oncofhir", "--log", f"{out}/tables.log", "tables", "--dictionary", f"{d}/work/dictionary.json",
              "--views-dir", f"{d}/views", "--ndjson", f"{d}/bundles.ndjson", "--out-dir",
              f"{out}/tables/{use_case}/c1", "--center", "c1", "--root", f"{out}/tables", "--records",
              f"{d}/work/records.csv", "--index", f"{d}/index.tsv", "--roundtrip-json", f"{out}/rt.json",
              "--roundtrip-tsv", f"{out}/rt.tsv", "--encrypt-dir", f"{ega}/c1", "--manifest", f"{ega}/c1.manifest.tsv",
              "--fhir-summary", f"{d}/summary.json", "--recipient", str(keys["ega"][0]),
              "--recipient", str(keys["consortium"][0])]  # fmt: skip
    shared = [py, "-c", "from oncofhir.cli import main; import numpy; from oncofhir.dictionary.compiled import "
              "load_compiled; from oncofhir.ingest import read_records; from oncofhir.views.roundtrip import "
              f"read_index; load_compiled('{d}/work/dictionary.json'); read_records('{d}/work/records.csv'); "
              f"read_index('{d}/index.tsv')"]  # fmt: skip
    parse = [py, "-c", "import gc, sys, time; from oncofhir.views.tables import read_ndjson; gc.disable(); "
             "t = time.process_time(); sum(1 for _ in read_ndjson(sys.argv[1])); print(time.process_time() - t)",
             f"{d}/bundles.ndjson"]  # fmt: skip
    return {"fhir": fhir, "tables": tables, "shared": shared, "parse": parse}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=572, help="patients of the center (the benchmark's: 572)")
    parser.add_argument("--use-cases", nargs="*", default=["uc1", "uc3", "uc45", "uc68", "uc7"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "ONCOFHIR_PSEUDONYM_KEY": SECRET}
    scratch = REPO / "benchmarks" / "out" / "table-job"
    shutil.rmtree(scratch, ignore_errors=True)
    keys = generate_demo_keys(scratch / "keys")
    print("use case | fhir job CPU-s | tables job CPU-s | shared start-up | NDJSON parse | saved of the tables job")
    totals = {"tables": 0.0, "saved": 0.0}
    for use_case in args.use_cases:
        work = prepare(REPO / "benchmarks" / "out" / "views-input" / f"{use_case}-{args.patients}", use_case,
                       args.patients)  # fmt: skip
        write_views(load_compiled(work / "work" / "dictionary.json"), work / "views")
        runs: dict[str, list[float]] = {"fhir": [], "tables": [], "shared": [], "parse": []}
        for _ in range(args.rounds):
            out = scratch / use_case
            shutil.rmtree(out, ignore_errors=True)
            (out / "ega" / "tables" / use_case).mkdir(parents=True)
            for name, cmd in commands(work, use_case, out, keys).items():
                seconds, stdout = cpu(cmd, env)
                runs[name].append(float(stdout) if name == "parse" else seconds)
        m = {k: statistics.median(v) for k, v in runs.items()}
        saved = m["shared"] + m["parse"]
        totals["tables"] += m["tables"]
        totals["saved"] += saved
        print(f"{use_case} | {m['fhir']:.2f} | {m['tables']:.2f} | {m['shared']:.2f} | {m['parse']:.2f} | "
              f"{saved:.2f} ({saved / m['tables']:.0%})", flush=True)  # fmt: skip
    print(f"all | | {totals['tables']:.2f} | | | {totals['saved']:.2f} ({totals['saved'] / totals['tables']:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
