"""Measured recall and precision of the per-center QC: known defects injected at known cells, QC run, counted.

Usage: python benchmarks/bench_qc_recall.py [--records 2000] [--per-class 50] [--use-cases uc1 uc3 uc45 uc68 uc7]

For each use case: a clean synthetic export (``oncofhir.demo`` with defects off: QC finds nothing in it), then
``--per-class`` defects of every class of :data:`oncofhir.defects.DEFECTS` (blank required, wrong type, invalid code,
out of range, rule violation, calc mismatch, temporal, hidden value), each in its own record at a known cell; then
ingest and the QC stage as the workflow runs them, and ``failures.tsv`` is compared with the injected cells.

- recall of a class = injected cells flagged by the expected check / injected cells;
- precision of a class = failures of the class's check types at an injected cell of that class / all failures of
  those types (a failure nobody injected is a false alarm).

None of the five codebooks has a calculated field, so the benchmark also runs a copy of UC7 with one added calc
field (``total_dose_calc = [chemo_dose] * [neoadj_chemo]``, ``--no-calc`` to skip): the computational check needs a
calculation to recompute. A class with no place in a use case (no numeric range in UC3...) is reported as such.
Target: recall and precision at least 99 % for every class.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from oncofhir.defects import CLASS_TYPES, DEFECTS, Injected
from oncofhir.demo import generate_export
from oncofhir.dictionary import compile_dictionary
from oncofhir.pipeline import stage_ingest
from oncofhir.qc import stage_qc

REPO = Path(__file__).resolve().parents[1]
CALC_ROW = (
    'total_dose_calc,use_case_7,,calc,"Total dose (calculated: dose x cycles)","[chemo_dose] * [neoadj_chemo]",'
    "RECOMMENDED,,,,,,,,,,,\n"
)


@dataclass
class Tally:
    """Counts of one defect class: injected, found (true positives) and false alarms."""

    injected: int = 0
    found: int = 0
    false_alarms: int = 0

    @property
    def recall(self) -> float | None:
        return self.found / self.injected if self.injected else None

    @property
    def precision(self) -> float | None:
        flagged = self.found + self.false_alarms
        return self.found / flagged if flagged else None


def with_calc_field(work: Path) -> Path:
    """A copy of UC7 with one calculated field appended (calc fields feed no FHIR resource, so the mapping needs
    nothing more)."""
    folder = work / "calc" / "uc7"
    shutil.copytree(REPO / "resources" / "dictionaries" / "uc7", folder)
    with open(folder / "redcap_dictionary.csv", "a", encoding="utf-8", newline="") as handle:
        handle.write(CALC_ROW)
    return folder


def failures(path: Path) -> list[tuple[str, str, str]]:
    """(record id, check id, type) of every failure in ``failures.tsv``."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row["record_id"], row["check"], row["type"]) for row in reader]


def score(injected: Sequence[Injected], found: Iterable[tuple[str, str, str]]) -> dict[str, Tally]:
    """Per class: injected cells, those flagged by the expected check, and failures of its types nobody injected."""
    tallies = {kind: Tally() for kind in DEFECTS}
    expected = {(i.record_id, i.check): i.kind for i in injected}
    for i in injected:
        tallies[i.kind].injected += 1
    owner = {t: kind for kind, types in CLASS_TYPES.items() for t in types}
    for record_id, check, kind in found:
        cls = owner.get(kind)
        hit = expected.get((record_id, check))
        if hit is not None:
            tallies[hit].found += 1
        elif cls is not None:
            tallies[cls].false_alarms += 1
    return tallies


def run_use_case(folder: Path, work: Path, records: int, per_class: int, seed: int) -> dict[str, Tally]:
    """Clean export + injected defects -> ingest -> QC -> tallies per class."""
    uc = folder.name
    out = work / f"{uc}-{folder.parent.name}"
    out.mkdir(parents=True)
    dd = compile_dictionary(folder, REPO / "resources" / "ontologies")
    compiled = out / "dd.json"
    compiled.write_text(dd.to_json(), encoding="utf-8")
    counts = dict.fromkeys(DEFECTS, per_class)
    text, injected = generate_export(dd, "bench", records, seed, defects=False, inject=counts)
    export = out / "export.csv"
    export.write_text(text, encoding="utf-8")
    stage_ingest(compiled, export, out / "records.csv", out / "rejects.tsv", out / "report.json")
    stage_qc(compiled, out / "records.csv", out / "qc", center="bench")
    return score(injected, failures(out / "qc" / "failures.tsv"))


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def table(results: dict[str, dict[str, Tally]]) -> tuple[list[str], dict[str, Tally]]:
    """The Markdown table (one row per class, all use cases added up) and the totals per class."""
    totals = {kind: Tally() for kind in DEFECTS}
    for tallies in results.values():
        for kind, t in tallies.items():
            totals[kind].injected += t.injected
            totals[kind].found += t.found
            totals[kind].false_alarms += t.false_alarms
    lines = [
        "| class | QC check types | injected | found | false alarms | recall | precision |",
        "|---|---|---|---|---|---|---|",
    ]
    overall = Tally()
    for kind, t in totals.items():
        types = ", ".join(CLASS_TYPES[kind])
        lines.append(
            f"| {kind} | {types} | {t.injected} | {t.found} | {t.false_alarms} | {pct(t.recall)} | {pct(t.precision)} |"
        )
        overall.injected += t.injected
        overall.found += t.found
        overall.false_alarms += t.false_alarms
    lines.append(
        f"| **all** | | {overall.injected} | {overall.found} | {overall.false_alarms} | {pct(overall.recall)} | "
        f"{pct(overall.precision)} |"
    )
    return lines, totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000, help="records per use case")
    parser.add_argument("--per-class", type=int, default=50, help="defects injected per class and use case")
    parser.add_argument("--use-cases", nargs="*", help="default: every use case under resources/dictionaries")
    parser.add_argument("--no-calc", action="store_true", help="skip the UC7 copy with a calculated field")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out"), help="scratch folder")
    args = parser.parse_args(argv)
    root = REPO / "resources" / "dictionaries"
    names = args.use_cases or sorted(p.name for p in root.iterdir() if (p / "mapping.yaml").exists())
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Tally]] = {}
    with tempfile.TemporaryDirectory(prefix="recall-", dir=args.workdir) as tmp:
        work = Path(tmp)
        folders = [root / uc for uc in names]
        if not args.no_calc:
            folders.append(with_calc_field(work))
        for folder in folders:
            label = folder.name if folder.parent == root else f"{folder.name}+calc"
            results[label] = run_use_case(folder, work, args.records, args.per_class, args.seed)
            t = results[label]
            print(f"{label}: " + ", ".join(f"{k} {v.found}/{v.injected} (+{v.false_alarms})" for k, v in t.items()))
    lines, totals = table(results)
    print("\n".join(lines))
    low = [k for k, t in totals.items() if t.injected and ((t.recall or 0) < 0.99 or (t.precision or 0) < 0.99)]
    print("target (recall and precision >= 99 % per class): " + ("met" if not low else f"NOT met: {', '.join(low)}"))
    return 0 if not low else 1


if __name__ == "__main__":
    sys.exit(main())
