"""Run-level reports: the per-center table a data manager reads first, as TSV and as an HTML page.

One line per (use case, center) reconciles every input row (rows in = bundles + rejects), and says what to send
back to the hospital: values hidden by branching logic that contradict the record's answers (first: the bundles
leave them out, so only the hospital can settle them), rejected rows, the quality score and its failures,
validation errors. A center whose QC score is under the configured minimum (``qc.min_center_score``) is flagged.
The page (``templates/run_report.html.j2``) is self-contained and links to each center's detailed reports, which
live next to it under the results folder. Only its run date depends on the day it is made (``SOURCE_DATE_EPOCH``
fixes it, :func:`oncofhir.pages.run_date`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from .io_utils import write_text_atomic
from .pages import render
from .tsv import write_tsv

#: Default of ``qc.min_center_score``: a center scoring below it is flagged in the run report and the QC index.
DEFAULT_MIN_CENTER_SCORE = 80.0

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
    "validation",
    "validation_errors",
    "validation_warnings",
    "encrypted_files",
    # added later: at the end, so positions of the columns above never change for readers of older files
    "qc_below_minimum",
    "hidden_conflicts",
    "dictionary_version",
    "roundtrip",
    "refused",
]


@dataclass(frozen=True)
class CenterReports:
    """The per-center report files the run report reads; ``manifest`` is None when the deposit is off,
    ``roundtrip`` (the tables job's round-trip JSON, docs/tables.md) when there is none."""

    ingest: str | Path
    fhir: str | Path
    qc: str | Path
    validation: str | Path
    manifest: str | Path | None = None
    roundtrip: str | Path | None = None


def _load(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _manifest_files(path: str | Path | None) -> int | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle) - 1


def center_row(files: CenterReports, min_score: float = DEFAULT_MIN_CENTER_SCORE) -> dict[str, Any]:
    """Everything the run report says about one center; ``min_score`` (0-100) flags a low QC score."""
    ing, fh, qc, va = _load(files.ingest), _load(files.fhir), _load(files.qc), _load(files.validation)
    sev = va["by_severity"]
    encrypted = _manifest_files(files.manifest)
    score = qc["total"]["score"]
    conflicts = qc.get("hidden_conflicts", {"values": 0, "records": 0})
    return {
        "use_case": ing["use_case"],
        "center": Path(files.ingest).parent.name,
        "rows_in": ing["rows_in"],
        "records": ing["records"],
        "ingest_rejected": ing["rejected"],
        "bundles": fh["bundles"],
        "rejected_total": fh["rejected"],
        "reconciled": "yes" if ing["rows_in"] == fh["bundles"] + fh["rejected"] else "NO",
        "qc_score": "n/a" if score is None else f"{score:.2f}",
        "qc_below_minimum": "yes" if score is not None and round(score, 2) < min_score else "no",
        "qc_excluded": qc["gate"]["excluded"],
        "hidden_conflicts": conflicts["values"],
        "hidden_conflict_records": conflicts["records"],
        "dictionary_version": qc["dictionary_version"],
        "qc_failures": qc["failures"],
        "resources": ";".join(f"{k}={v}" for k, v in fh["resources"].items()),
        "absent_data_markers": fh["absent_data_markers"],
        "unknown_columns": ",".join(ing["unknown_columns"]),
        "missing_columns": ",".join(ing["missing_columns"]),
        "validation": "valid" if va["valid"] else "INVALID",
        "validation_errors": sev["fatal"] + sev["error"],
        "validation_warnings": sev["warning"],
        "validation_line": va["line"],
        "encrypted_files": "" if encrypted is None else encrypted,
        "roundtrip": roundtrip_cell(files.roundtrip),
        "refused": ing.get("refused", ""),
    }


def roundtrip_cell(path: str | Path | None) -> str:
    """The round trip of the SQL-on-FHIR wide view (docs/tables.md): ``100% (n values)`` or ``FAIL ...``."""
    if path is None:
        return ""
    rt = _load(path)
    t = rt["totals"]
    checked = t["recovered"] + t["lost"] + t["changed"]
    if rt["passed"]:
        return f"{rt['recovered_percent']:g}% ({checked} values)"
    lost = ",".join(f["variable"] for f in rt["failures"])
    return f"FAIL {rt['recovered_percent']:g}% (lost/changed: {lost})"


def write_run_summary(
    centers: list[CenterReports],
    tsv_out: str | Path,
    html_out: str | Path | None = None,
    sections: Sequence[Markup] = (),
    *,
    min_score: float = DEFAULT_MIN_CENTER_SCORE,
) -> str:
    """Write the TSV (one row per center) and, if asked, the HTML page with extra ``sections`` (safe HTML blocks
    rendered elsewhere from their own templates, e.g. :func:`oncofhir.privacy.html.privacy_section`) after the
    center table; returns a one-line summary for the log."""
    rows = [center_row(c, min_score) for c in centers]
    write_tsv(tsv_out, COLUMNS, ([row[c] for c in COLUMNS] for row in rows), private=False)
    if html_out is not None:
        page = render_html(rows, deposit=any(c.manifest for c in centers), min_score=min_score, sections=sections)
        write_text_atomic(html_out, page)
    problems = sum(1 for r in rows if _attention(r))
    return f"{len(rows)} center(s), {sum(r['bundles'] for r in rows)} bundles, {problems} needing attention"


def _bad(row: dict[str, Any]) -> bool:
    """Red: a refused export, counts that do not reconcile, validation errors, or a round trip that lost or changed
    values."""
    return (
        bool(row["refused"])
        or row["reconciled"] != "yes"
        or row["validation"] != "valid"
        or row["roundtrip"].startswith("FAIL")
    )


def _attention(row: dict[str, Any]) -> bool:
    return _bad(row) or row["qc_below_minimum"] == "yes"


def _send_back(row: dict[str, Any], base: str) -> list[tuple[str | None, str]]:
    """What the data manager sends back to the hospital, hidden-value conflicts first, with links to the lists."""
    items: list[tuple[str | None, str]] = []
    if row["refused"]:
        items.append((f"../rejects/{base}.tsv", f"the whole export, refused: {row['refused']}"))
        return items
    if row["hidden_conflicts"]:
        items.append(
            (
                f"../qc/{base}/send_back.tsv",
                f"{row['hidden_conflicts']} hidden value(s) conflicting with their branching logic in "
                f"{row['hidden_conflict_records']} record(s)",
            )
        )
    if row["rejected_total"]:
        items.append((f"../rejects/{base}.tsv", f"{row['rejected_total']} rejected row(s)"))
    if row["qc_failures"]:
        items.append((f"../qc/{base}/failures.tsv", f"{row['qc_failures']} quality finding(s)"))
    if row["missing_columns"]:
        items.append((None, f"missing column(s): {row['missing_columns']}"))
    if row["unknown_columns"]:
        items.append((None, f"unknown column(s): {row['unknown_columns']}"))
    return items


def render_html(
    rows: list[dict[str, Any]],
    *,
    deposit: bool,
    min_score: float = DEFAULT_MIN_CENTER_SCORE,
    sections: Sequence[Markup] = (),
) -> str:
    """The run report page: totals, a legend, one line per center with links to its detailed reports, then the
    extra ``sections`` (each a :class:`~markupsafe.Markup` block; a plain string would be escaped, not placed)."""
    cards = [
        ("centers", len(rows)),
        ("rows in", sum(r["rows_in"] for r in rows)),
        ("bundles", sum(r["bundles"] for r in rows)),
        ("rejected rows", sum(r["rejected_total"] for r in rows)),
        ("validation errors", sum(r["validation_errors"] for r in rows)),
        ("QC below minimum", sum(1 for r in rows if r["qc_below_minimum"] == "yes")),
        ("centers needing attention", sum(1 for r in rows if _attention(r))),
    ]
    refused = sum(1 for r in rows if r["refused"])
    if refused:
        cards.insert(0, ("refused exports", refused))
    if deposit:
        cards.append(("encrypted files", sum(int(r["encrypted_files"] or 0) for r in rows)))
    roundtrip = any(r["roundtrip"] for r in rows)
    head = ["use case", "center", "rows in", "bundles", "rejected", "reconciled", "QC score", "validation"]
    head += [*(["round trip"] if roundtrip else []), *(["deposit"] if deposit else []), "send back to the hospital"]
    lines = []
    for r in rows:
        base = f"{r['use_case']}/{r['center']}"
        bad = _bad(r)
        low = r["qc_below_minimum"] == "yes"
        lines.append(
            {
                **r,
                "base": base,
                "low": low,
                "css": "bad" if bad else "low" if low else "",
                "send_back": _send_back(r, base),
            }
        )
    total = {
        "rows": cards[1][1],
        "bundles": cards[2][1],
        "rejected": cards[3][1],
        "errors": cards[4][1],
        "reconciled": "NO" if any(r["reconciled"] != "yes" for r in rows) else "yes",
    }
    return render(
        "run_report.html.j2",
        title="oncofhir run report",
        dictionaries={r["use_case"]: r["dictionary_version"] for r in rows},
        nav=[],
        card_items=cards,
        head=head,
        rows=lines,
        total=total,
        deposit=deposit,
        roundtrip=roundtrip,
        refused=[r for r in lines if r["refused"]],
        min_score=f"{min_score:g}",
        sections=list(sections),
    )
