"""Benchmark the QC pool step (outliers, duplicates, drift over all centers of a use case) and measure its detection.

Usage: python benchmarks/bench_qc_pool.py [--use-case uc7] [--centers 35] [--records 572] [--seeds 5]

1. Detection: for each seed, clean demo exports (``oncofhir.demo`` with defects off) of ``--detect-centers``
   centers get the demo's pool defects (an outlier and a within-center duplicate in hospital_a, hospital_a's
   patient again in hospital_b, every 'unknown' of one variable entered as 'no' in hospital_c); ingest, QC and
   the pool step run; what the pool reports is compared with what was injected. Recall and precision per class:
   outlier (a (center, variable, value) reported), duplicate (a pair of records), recoded center (a flagged
   (center, variable) of drift.tsv).
2. Timing: the pool step alone (reading every center's pool_stats.json, writing every output) for ``--centers``
   centers of ``--records`` records each (default 35 × 572 = 20,020 patients, the workflow benchmark's size),
   median of ``--repeats``. Target (issue #15): under 5 s.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

from oncofhir.demo import POOL_DEFECTS, generate, outlier_field, recoded_field, rule_variables
from oncofhir.dictionary import compile_dictionary
from oncofhir.dictionary.compiled import CompiledDictionary
from oncofhir.pipeline import stage_ingest
from oncofhir.qc import stage_qc
from oncofhir.qc.pool import PoolSettings, stage_qc_pool

REPO = Path(__file__).resolve().parents[1]


def center_names(n: int) -> list[str]:
    """hospital_a, hospital_b, ... (then hospital_aa, ...): the demo's names, so its defects land by name."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        f"hospital_{letters[k]}" if k < 26 else f"hospital_{letters[k // 26 - 1]}{letters[k % 26]}" for k in range(n)
    ]


def prepare(
    dd: CompiledDictionary, compiled: Path, work: Path, centers: list[str], records: int, seed: int, defects: bool
) -> list[Path]:
    """Demo exports -> ingest -> QC for each center; returns the pool_stats.json paths."""
    stats = []
    for center in centers:
        export = work / f"{center}.csv"
        # no random wrong values, none of the per-center defect classes (oncofhir.defects: a rule violation can be
        # a real outlier too): only the pool classes are injected, so every other report counts against precision
        text = generate(
            dd, center, records, seed, defect_rate=0.0, inject={}, pool_defects=POOL_DEFECTS if defects else None
        )
        export.write_text(text, encoding="utf-8")
        folder = work / center
        stage_ingest(compiled, export, folder / "records.csv", folder / "rejects.tsv", folder / "ingest.json")
        stage_qc(compiled, folder / "records.csv", folder / "qc", center=center)
        stats.append(folder / "qc" / "pool_stats.json")
    return stats


def _tsv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def detection(dd: CompiledDictionary, compiled: Path, root: Path, centers: int, records: int, seeds: int) -> dict:
    """Injected vs reported per class, added up over the seeds: {class: [true positives, reported, injected]}."""
    names = center_names(centers)
    fields = [f for f in dd.fields.values() if f.type not in {"descriptive", "calc"}]
    numbers = outlier_field(fields, rule_variables(dd))
    recoded = recoded_field(fields, rule_variables(dd))
    tally = {"outlier": [0, 0, 0], "duplicate": [0, 0, 0], "recoded center": [0, 0, 0]}
    for seed in range(1, seeds + 1):
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            work = Path(tmp)
            stats = prepare(dd, compiled, work, names, records, seed, defects=True)
            stage_qc_pool(compiled, stats, work / "pool")
            outliers = {(r["center"], r["variable"]) for r in _tsv(work / "pool" / "outliers.tsv")}
            expected = {("hospital_a", numbers.name)} if numbers else set()
            tally["outlier"] = _add(tally["outlier"], outliers, expected)
            pairs = {(r["center"], r["other_center"], r["scope"]) for r in _tsv(work / "pool" / "duplicates.tsv")}
            expected = {("hospital_a", "hospital_a", "within"), ("hospital_a", "hospital_b", "across")}
            tally["duplicate"] = _add(tally["duplicate"], pairs, expected)
            flags = {(r["center"], r["variable"]) for r in _tsv(work / "pool" / "drift.tsv") if r["flag"] == "yes"}
            expected = {("hospital_c", recoded[0].name)} if recoded and centers > 2 else set()
            tally["recoded center"] = _add(tally["recoded center"], flags, expected)
    return tally


def _add(total: list[int], found: set, expected: set) -> list[int]:
    return [total[0] + len(found & expected), total[1] + len(found), total[2] + len(expected)]


def timing(
    dd: CompiledDictionary, compiled: Path, root: Path, centers: int, records: int, repeats: int
) -> tuple[float, float]:
    """Median wall and CPU time of the pool step alone over ``repeats`` runs."""
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        work = Path(tmp)
        stats = prepare(dd, compiled, work, center_names(centers), records, 7, defects=True)
        times, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            stage_qc_pool(compiled, stats, work / "pool", settings=PoolSettings())
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-case", default="uc7")
    parser.add_argument("--centers", type=int, default=35, help="centers of the timing run")
    parser.add_argument("--records", type=int, default=572, help="records per center (timing run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=10, help="detection runs (one seed each)")
    parser.add_argument("--detect-centers", type=int, default=6, help="centers of each detection run")
    parser.add_argument("--detect-records", type=int, default=150, help="records per center in detection runs")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out"), help="scratch folder")
    args = parser.parse_args(argv)
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qcpool-", dir=root) as tmp:
        work = Path(tmp)
        compiled = work / f"{args.use_case}.json"
        dd = compile_dictionary(REPO / "resources" / "dictionaries" / args.use_case, REPO / "resources" / "ontologies")
        compiled.write_text(dd.to_json(), encoding="utf-8")
        if args.seeds:
            tally = detection(dd, compiled, work, args.detect_centers, args.detect_records, args.seeds)
            print(
                f"detection: {args.use_case}, {args.seeds} seeds x {args.detect_centers} centers x "
                f"{args.detect_records} records"
            )
            print(f"{'class':<16}{'injected':>9}{'reported':>9}{'found':>7}{'recall':>9}{'precision':>11}")
            for name, (tp, reported, injected) in tally.items():
                recall = f"{100 * tp / injected:.1f}%" if injected else "n/a"
                precision = f"{100 * tp / reported:.1f}%" if reported else "n/a"
                print(f"{name:<16}{injected:>9}{reported:>9}{tp:>7}{recall:>9}{precision:>11}")
        if args.repeats:
            seconds, cpu = timing(dd, compiled, work, args.centers, args.records, args.repeats)
            print(
                f"pool step: {args.use_case}, {args.centers} centers x {args.records} records: {seconds:.2f} s wall, "
                f"{cpu:.2f} s CPU (median of {args.repeats}; target < 5 s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
