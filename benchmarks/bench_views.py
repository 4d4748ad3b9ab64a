"""Benchmark the SQL-on-FHIR views and the round trip (docs/tables.md): rows/s per use case, one process.

Usage: python benchmarks/bench_views.py [--patients 20000] [--use-cases uc1 uc7 ...]

Input is real: a synthetic export of ``--patients`` records per use case goes through compile, ingest and FHIR
(``oncofhir.pipeline.convert``), into ``benchmarks/out/views-input/<use case>-<patients>/`` (gitignored, reused by
later runs). Then, timed separately in CPU seconds of this process (the machine is shared: wall time would measure
the neighbours): reading the NDJSON and running the wide view alone, all views (wide + long) with the Parquet files
written, and the round trip. Prints patients/s per stage and whether uc7's wide view meets 2,000 patients/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

from oncofhir.demo import generate
from oncofhir.dictionary import compile_dictionary
from oncofhir.dictionary.compiled import load_compiled
from oncofhir.ingest import read_records
from oncofhir.pipeline import convert
from oncofhir.views.generate import views_for, write_views
from oncofhir.views.roundtrip import read_index, round_trip
from oncofhir.views.runner import CompiledView
from oncofhir.views.tables import center_tables, load_views

REPO = Path(__file__).resolve().parents[1]
TARGET = 2000  # patients/s per core, uc7's wide view


def prepare(work: Path, use_case: str, patients: int) -> Path:
    """Bundles, records and index of ``patients`` synthetic records of ``use_case`` (made once, then reused)."""
    if (work / "index.tsv").exists():
        return work
    dictionary = REPO / "resources" / "dictionaries" / use_case
    ontologies = REPO / "resources" / "ontologies"
    work.mkdir(parents=True, exist_ok=True)
    export = work / f"{use_case}.csv"
    export.write_text(generate(compile_dictionary(dictionary, ontologies), "bench", patients, seed=1), encoding="utf-8")
    convert(dictionary, ontologies, export, work, bundle_files=False)
    return work


def bench(work: Path) -> dict[str, float]:
    dd = load_compiled(work / "work" / "dictionary.json")
    write_views(dd, work / "views")
    bundles = [orjson.loads(line) for line in (work / "bundles.ndjson").read_bytes().splitlines()]
    n = len(bundles)
    wide = CompiledView(views_for(dd)[0])
    t = time.process_time()
    rows = [row for bundle in bundles for row in wide.rows(bundle)]
    wide_s = time.process_time() - t
    views = load_views(work / "views")
    t = time.process_time()
    counts, _rows = center_tables(views, work / "bundles.ndjson", work / "tables" / "bench", "bench", work / "tables")
    tables_s = time.process_time() - t
    names = [c.name for c in wide.columns]
    by_patient = {r[0]: dict(zip(names, r, strict=True)) for r in rows}
    records, index = read_records(work / "work" / "records.csv"), read_index(work / "index.tsv")
    t = time.process_time()
    results = round_trip(dd, records, index, by_patient)
    rt_s = time.process_time() - t
    values = sum(r.counts["values_in"] for r in results)
    return {
        "patients": n,
        "wide_columns": len(names),
        "wide_per_s": n / wide_s,
        "all_views_per_s": n / tables_s,
        "rows_all_views": sum(counts.values()),
        "roundtrip_per_s": n / rt_s,
        "roundtrip_values_per_s": values / rt_s,
        "passed": all(r.ok for r in results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--use-cases", nargs="*", default=None)
    args = parser.parse_args()
    use_cases = args.use_cases or sorted(
        p.name for p in (REPO / "resources" / "dictionaries").iterdir() if (p / "mapping.yaml").exists()
    )
    print("use case | patients | wide columns | wide view patients/s | all views + Parquet patients/s | "
          "round trip patients/s (values/s) | round trip")  # fmt: skip
    ok = True
    for use_case in use_cases:
        work = prepare(REPO / "benchmarks" / "out" / "views-input" / f"{use_case}-{args.patients}", use_case,
                       args.patients)  # fmt: skip
        r = bench(work)
        print(
            f"{use_case} | {r['patients']} | {r['wide_columns']} | {r['wide_per_s']:,.0f} | {r['all_views_per_s']:,.0f}"
            f" | {r['roundtrip_per_s']:,.0f} ({r['roundtrip_values_per_s']:,.0f}) | "
            f"{'100 %' if r['passed'] else 'FAIL'}",
            flush=True,
        )
        if use_case == "uc7":
            ok = r["wide_per_s"] >= TARGET
            print(f"uc7 wide view: {r['wide_per_s']:,.0f} patients/s per core, target {TARGET:,}: "
                  f"{'met' if ok else 'NOT met'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
