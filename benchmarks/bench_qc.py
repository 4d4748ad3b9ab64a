"""Benchmark the QC stage (read records, all checks, scores, gate, every output file) on synthetic records.

Usage: python benchmarks/bench_qc.py --records 20000 --use-case uc7 [--repeats 3] [--score-all]
Prints the median wall time of the whole stage over the repeats, records/s, and the part spent in the checks.
Target (issue 3): 20,000 records of uc7 in under 5 s on one core, the mapping's rules included (issue 15;
``--score-all`` also puts branching and the rule types in the score, with a failure-rate threshold per type).
The consortium tool: 15-33 records/s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from oncofhir.demo import generate
from oncofhir.dictionary import compile_dictionary, load_compiled
from oncofhir.pipeline import stage_ingest
from oncofhir.qc import run_checks, stage_qc
from oncofhir.qc.stage import read_columns

REPO = Path(__file__).resolve().parents[1]
TOOL_RECORDS_PER_S = (15, 33)  # quality-tools README, measured on 2,000-row exports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--use-case", default="uc7")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--score-all", action="store_true", help="weight 10 and a threshold for every new check type")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out"), help="scratch folder")
    args = parser.parse_args(argv)
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qc-", dir=root) as tmp:
        work = Path(tmp)
        compiled = work / f"{args.use_case}.json"
        dd = compile_dictionary(REPO / "resources" / "dictionaries" / args.use_case, REPO / "resources" / "ontologies")
        compiled.write_text(dd.to_json(), encoding="utf-8")
        export = work / "export.csv"
        export.write_text(generate(dd, "bench", args.records, seed=1), encoding="utf-8")
        records = work / "records.csv"
        stage_ingest(compiled, export, records, work / "rejects.tsv", work / "report.json")
        stage, checks = [], []
        new_types = ("branching", "relational", "computational", "temporal")
        weights = dict.fromkeys(new_types, 10.0) if args.score_all else None
        thresholds = dict.fromkeys(new_types, 1.0) if args.score_all else None
        for rep in range(args.repeats):
            t0 = time.perf_counter()
            summary = stage_qc(
                compiled, records, work / f"qc-{rep}", center="bench", weights=weights, thresholds=thresholds
            )
            stage.append(time.perf_counter() - t0)
            rows, _, columns = read_columns(records)
            dd = load_compiled(compiled)
            t0 = time.perf_counter()
            run_checks(dd, columns, len(rows))
            checks.append(time.perf_counter() - t0)
        med = statistics.median(stage)
        n = summary["records"]
        print(f"use case {args.use_case}: {n} records, {summary['checks']} checks, {summary['failures']} failures")
        print(f"whole QC stage: median {med:.2f} s of {args.repeats} ({', '.join(f'{t:.2f}' for t in stage)})")
        print(f"records/s: {n / med:,.0f}  (checks alone: {statistics.median(checks):.2f} s)")
        lo, hi = TOOL_RECORDS_PER_S
        print(f"consortium tool: {lo}-{hi} records/s -> {n / med / hi:,.0f}-{n / med / lo:,.0f}x faster")
        print(f"target (20,000 records < 5 s): {'met' if n / med >= 4000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
