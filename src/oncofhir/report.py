"""Run-level reports: the per-center reconciliation table a data manager reads first."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = [
    "use_case",
    "center",
    "rows_in",
    "records",
    "ingest_rejected",
    "bundles",
    "rejected_total",
    "reconciled",
    "qc_score",
    "qc_excluded",
    "resources",
    "absent_data_markers",
    "unknown_columns",
    "missing_columns",
]


def write_run_summary(
    ingest_reports: list[str], fhir_summaries: list[str], qc_summaries: list[str], out: str | Path
) -> int:
    """One row per center; ``reconciled`` is ``yes`` when rows in = bundles + rejects."""
    lines = ["\t".join(COLUMNS)]
    for ing_path, fhir_path, qc_path in zip(ingest_reports, fhir_summaries, qc_summaries, strict=True):
        ing = json.loads(Path(ing_path).read_text(encoding="utf-8"))
        fh = json.loads(Path(fhir_path).read_text(encoding="utf-8"))
        qc = json.loads(Path(qc_path).read_text(encoding="utf-8"))
        center = Path(ing_path).parent.name
        row = {
            "use_case": ing["use_case"],
            "center": center,
            "rows_in": ing["rows_in"],
            "records": ing["records"],
            "ingest_rejected": ing["rejected"],
            "bundles": fh["bundles"],
            "rejected_total": fh["rejected"],
            "reconciled": "yes" if ing["rows_in"] == fh["bundles"] + fh["rejected"] else "NO",
            "qc_score": f"{qc['total']['score']:.2f}",
            "qc_excluded": qc["gate"]["excluded"],
            "resources": ";".join(f"{k}={v}" for k, v in fh["resources"].items()),
            "absent_data_markers": fh["absent_data_markers"],
            "unknown_columns": ",".join(ing["unknown_columns"]),
            "missing_columns": ",".join(ing["missing_columns"]),
        }
        lines.append("\t".join(str(row[c]) for c in COLUMNS))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1
