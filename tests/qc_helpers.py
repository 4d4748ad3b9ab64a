"""Small hand-made dictionaries and records for the QC tests (importable as ``qc_helpers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oncofhir.dictionary.compiled import CompiledDictionary, Field
from oncofhir.ingest import Records, write_records
from oncofhir.qc import QCResult, run_checks
from oncofhir.qc.model import FAIL, NOT_APPLICABLE, PASS

WORDS = {NOT_APPLICABLE: "-", PASS: "pass", FAIL: "fail"}


def field(name: str, **spec: Any) -> Field:
    """A dictionary field; ``type`` defaults to ``text`` and ``label`` to the name."""
    return Field(name=name, form="f", type=spec.pop("type", "text"), label=spec.pop("label", name), **spec)


def dictionary(*fields: Field, use_case: str = "t") -> CompiledDictionary:
    """A compiled dictionary with a minimal ``record_id`` first, then ``fields``."""
    all_fields = [field("record_id", minimal=True), *fields]
    return CompiledDictionary(
        use_case=use_case,
        title="test",
        version="0.0.1",
        record_id="record_id",
        forms=["f"],
        fields={f.name: f for f in all_fields},
        resources=[],
    )


def check(dd: CompiledDictionary, rows: list[dict[str, str]]) -> QCResult:
    """Run the checks of ``dd`` over ``rows`` (missing keys are blank; record ids r1, r2, ... by default)."""
    n = len(rows)
    columns = {name: [r.get(name, "") for r in rows] for name in dd.fields}
    columns["record_id"] = [r.get("record_id", f"r{i + 1}") for i, r in enumerate(rows)]
    return run_checks(dd, columns, n)


def outcome(result: QCResult, check_id: str) -> list[str]:
    """One check's outcome per record: ``pass``, ``fail`` or ``-`` (not applicable)."""
    ids = [c.id for c in result.checks]
    return [WORDS[int(s)] for s in result.status[ids.index(check_id)]]


def write_inputs(tmp: Path, dd: CompiledDictionary, rows: list[dict[str, str]], dags: list[str] | None = None) -> tuple:
    """Write the compiled dictionary and a records table (as ingest writes it); return their paths."""
    compiled = tmp / "dd.json"
    compiled.write_text(dd.to_json(), encoding="utf-8")
    columns = [n for n, f in dd.fields.items() if f.type != "descriptive"] + dd.complete_columns
    full = [{c: r.get(c, f"r{i + 1}" if c == "record_id" else "") for c in columns} for i, r in enumerate(rows)]
    records = Records(columns, full, list(range(2, len(rows) + 2)), dags or [""] * len(rows))
    path = tmp / "records.csv"
    write_records(records, path)
    return compiled, path
