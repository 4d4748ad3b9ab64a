"""Benchmark the in-process validation layers: bundles/s per use case on synthetic patients, one core.

Usage: python benchmarks/bench_validate.py [--patients 20000] [--repeats 3] [--use-cases uc7 uc1] [--naive 200]

For each use case: build a center of ``--patients`` demo patients with the workflow's own stages (scratch under
benchmarks/out/), then validate its NDJSON ``--repeats`` times, each with a fresh ValidationContext (cold caches, as
a workflow job starts), all six layers on; prints the median. ``--naive N`` also times the naive stack on N bundles:
fhir.resources (pydantic models) plus fhirpathpy evaluating every invariant at every node, uncached.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from oncofhir.demo import generate
from oncofhir.dictionary import compile_dictionary, load_compiled
from oncofhir.pipeline import convert
from oncofhir.validate import ValidationContext, validate_bundle

REPO = Path(__file__).resolve().parents[1]
TARGET = 300  # bundles/s for uc7, one core, all layers (issue 4)


def build_center(work: Path, use_case: str, patients: int) -> tuple[Path, Path]:
    """Compiled dictionary and NDJSON of a synthetic center."""
    dictionary = REPO / "resources" / "dictionaries" / use_case
    ontologies = REPO / "resources" / "ontologies"
    export = work / f"{use_case}.csv"
    export.write_text(generate(compile_dictionary(dictionary, ontologies), "bench", patients, seed=1), encoding="utf-8")
    out = work / f"out-{use_case}"
    convert(dictionary, ontologies, export, out, bundle_files=False)
    return out / "work" / "dictionary.json", out / "bundles.ndjson"


def time_layers(compiled: Path, ndjson: Path) -> tuple[float, int, int, dict[str, int]]:
    """Seconds to read and validate every bundle with a fresh context; bundles, issues, cache statistics."""
    start = time.perf_counter()
    context = ValidationContext.create(load_compiled(compiled))
    bundles = issues = 0
    with ndjson.open("rb") as handle:
        for line in handle:
            issues += len(validate_bundle(orjson.loads(line), context))
            bundles += 1
    return time.perf_counter() - start, bundles, issues, dict(context.stats)


def time_naive(ndjson: Path, n: int) -> float:
    """Bundles/s of the naive stack: pydantic models, then every invariant at every node with fhirpathpy."""
    import fhirpathpy
    from fhir.resources.R4B.bundle import Bundle
    from fhirpathpy.engine.nodes import ResourceNode
    from fhirpathpy.models import models

    from oncofhir.validate.definitions import load_definitions
    from oncofhir.validate.fhirpath import OPTIONS
    from oncofhir.validate.invariants import type_path_of
    from oncofhir.validate.walk import walk

    defs = load_definitions()
    compiled: dict[str, Any] = {}
    lines = ndjson.read_bytes().splitlines()[:n]
    start = time.perf_counter()
    for line in lines:
        bundle = orjson.loads(line)
        Bundle.model_validate(bundle)
        for entry in bundle["entry"]:
            resource = entry["resource"]
            for node in walk(defs, resource):
                el = node.element
                keys = [
                    *(el.constraints if el else ()),
                    *(defs.type(node.type).constraints if defs.type(node.type) else ()),
                ]
                for key in dict.fromkeys(keys):
                    fn = compiled.get(key)
                    if fn is None:
                        fn = compiled[key] = fhirpathpy.compile(
                            defs.constraints[key]["expression"], models["r4"], OPTIONS
                        )
                    path = type_path_of(node)
                    value = ResourceNode.create_node(node.value, path) if path else node.value
                    try:
                        fn(value, {"resource": resource, "rootResource": resource})
                    except Exception:  # the naive stack's failures do not matter for its speed
                        continue
    return len(lines) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--use-cases", nargs="*", default=["uc7", "uc68", "uc45", "uc3", "uc1"])
    parser.add_argument("--naive", type=int, default=0, help="also time the naive stack on this many bundles")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out"), help="scratch folder")
    args = parser.parse_args(argv)
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    header = ("use case", "bundles", "res/bundle", "distinct", "seconds", "bundles/s", "naive/s")
    print(f"{header[0]:9} " + " ".join(f"{h:>{w}}" for h, w in zip(header[1:], (8, 10, 9, 8, 10, 8), strict=True)))
    status = 0
    with tempfile.TemporaryDirectory(prefix="validate-", dir=root) as tmp:
        for uc in args.use_cases:
            compiled, ndjson = build_center(Path(tmp), uc, args.patients)
            runs = [time_layers(compiled, ndjson) for _ in range(args.repeats)]
            seconds = statistics.median(r[0] for r in runs)
            _, bundles, issues, stats = runs[0]
            rate = bundles / seconds
            naive = f"{time_naive(ndjson, args.naive):8.1f}" if args.naive else f"{'-':>8}"
            print(
                f"{uc:9} {bundles:>8} {stats['resources'] / bundles:>10.1f} {stats['distinct']:>9} {seconds:>8.1f} "
                f"{rate:>10.0f} {naive}  ({issues} issues)"
            )
            sys.stdout.flush()
            if uc == "uc7" and rate < TARGET:
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
