"""Benchmark the FHIR stage (read records, build, write files + NDJSON) per use case on synthetic patients.

Usage: python benchmarks/bench_fhir.py [--patients 20000] [--repeats 3] [--use-cases uc1 uc7] [--no-claim-profiles]
Prints a table: patients/s (median of repeats) beside the original scripts' published figures (REVIEW.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

from oncofhir.demo import generate
from oncofhir.dictionary import compile_dictionary, load_compiled
from oncofhir.fhir.builder import BundleBuilder
from oncofhir.ig.names import DEFAULT_CANONICAL
from oncofhir.ingest import read_records
from oncofhir.pipeline import stage_fhir, stage_ingest

REPO = Path(__file__).resolve().parents[1]
#: Original EuCanImage scripts, one core, 20,000 scaled patients (REVIEW.md, "Baseline speed").
ORIGINAL = {"uc1": 374, "uc3": 190, "uc45": 183, "uc68": 89, "uc7": 75}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--use-cases", nargs="*", default=list(ORIGINAL))
    parser.add_argument(
        "--workdir", default=str(REPO / "benchmarks" / "out"), help="scratch folder (on the disk under test)"
    )
    parser.add_argument(
        "--no-claim-profiles",
        action="store_true",
        help="bundles without meta.profile (the workflow claims them by default: fhir.claim_profiles)",
    )
    args = parser.parse_args(argv)
    claim = None if args.no_claim_profiles else DEFAULT_CANONICAL
    print(
        f"{'use case':9} {'patients':>8} {'build/s':>9} {'stage s':>8} {'stage/s':>8} {'original/s':>11} {'ratio':>7}"
    )
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fhir-", dir=root) as tmp:
        work = Path(tmp)
        for uc in args.use_cases:
            compiled = work / f"{uc}.json"
            dd = compile_dictionary(REPO / "resources" / "dictionaries" / uc, REPO / "resources" / "ontologies")
            compiled.write_text(dd.to_json(), encoding="utf-8")
            export = work / f"{uc}.csv"
            export.write_text(generate(dd, "bench", args.patients, seed=1), encoding="utf-8")
            ing = work / uc
            stage_ingest(compiled, export, ing / "records.csv", ing / "rejects.tsv", ing / "report.json")
            times, cpu = [], []
            for rep in range(args.repeats):
                # CPU part alone: read records, build every bundle, serialise (no file system).
                t0 = time.perf_counter()
                records = read_records(ing / "records.csv")
                builder = BundleBuilder(load_compiled(compiled), "urn:bench", canonical=claim)
                nbytes = sum(
                    len(orjson.dumps(b.bundle))
                    for b in builder.build(records.rows, records.column_arrays(), records.row_numbers)
                    if b.bundle
                )
                cpu.append(time.perf_counter() - t0)
                # A fresh folder per repeat: deleting 20,000 files first (mounted with `discard`) slows the
                # creations that follow by up to 10x here; the scratch folder is removed once, at the end.
                out = work / f"out-{uc}-{rep}"
                t0 = time.perf_counter()
                summary = stage_fhir(
                    compiled,
                    ing / "records.csv",
                    ing / "rejects.tsv",
                    ing / "report.json",
                    out / "bundles",
                    out / "all.ndjson",
                    out / "index.tsv",
                    out / "rejects.tsv",
                    out / "summary.json",
                    claim_profiles=claim,
                )
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            rate = summary["bundles"] / med
            build_rate = summary["bundles"] / statistics.median(cpu)
            print(
                f"{uc:9} {summary['bundles']:>8} {build_rate:>9.0f} {med:>8.2f} {rate:>8.0f} {ORIGINAL[uc]:>11}"
                f" {rate / ORIGINAL[uc]:>6.1f}x  ({nbytes / summary['bundles'] / 1024:.1f} KiB/patient)"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
