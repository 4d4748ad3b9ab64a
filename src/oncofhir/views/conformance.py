"""Run the official SQL-on-FHIR v2 conformance suite against this runner and print the pass count.

``python -m oncofhir.views.conformance [SUITE_DIR]`` (default: tests/data/sql-on-fhir-v2/tests of the source tree).
Exit 0 when every case passes, 1 otherwise, listing each failing case with why. Rows are compared as a multiset
(the suite's own runners ignore row order), each row as a dict; ``expectColumns`` compares the column order.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import CompiledView, ViewError, run_view

DEFAULT_SUITE = Path(__file__).resolve().parents[3] / "tests" / "data" / "sql-on-fhir-v2" / "tests"


@dataclass(frozen=True, slots=True)
class Case:
    """One test case of the suite: its file, title, resources and expectation."""

    file: str
    title: str
    resources: list[dict[str, Any]]
    test: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}::{self.title}"


def load_suite(folder: Path = DEFAULT_SUITE) -> list[Case]:
    """Every case of every ``*.json`` file in ``folder``, in file order."""
    cases = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for test in data["tests"]:
            cases.append(Case(path.stem, test["title"], data["resources"], test))
    return cases


def _key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


def check(case: Case) -> str | None:
    """None when the runner meets the case's expectation, else why not (one line)."""
    test = case.test
    try:
        rows = run_view(test["view"], case.resources)
    except ViewError as exc:
        if test.get("expectError"):
            return None
        return f"raised ViewError: {exc}"
    if test.get("expectError"):
        return f"expected an error, got {len(rows)} row(s)"
    if "expectColumns" in test:
        columns = [c.name for c in CompiledView(test["view"]).columns]
        if columns != test["expectColumns"]:
            return f"columns {columns} != expected {test['expectColumns']}"
        return None
    expected = test.get("expect", [])
    got, want = Counter(map(_key, rows)), Counter(map(_key, expected))
    if got != want:
        missing = list((want - got).elements())[:3]
        extra = list((got - want).elements())[:3]
        return f"rows differ: missing {missing}, unexpected {extra}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Print ``passed/total`` and every failing case with its reason."""
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else DEFAULT_SUITE
    cases = load_suite(folder)
    failures = [(c.id, why) for c in cases if (why := check(c)) is not None]
    print(f"SQL-on-FHIR v2 conformance: {len(cases) - len(failures)}/{len(cases)} passed ({folder})")
    for cid, why in failures:
        print(f"FAIL {cid}: {why}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
