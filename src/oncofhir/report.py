"""Run-level reports: the per-center table a data manager reads first, as TSV and as an HTML page.

One line per (use case, center) reconciles every input row (rows in = bundles + rejects), and says what to send
back to the hospital: rejected rows, the quality score and its failures, validation errors. The page is
self-contained (inline CSS, no JavaScript, nothing fetched) and links to each center's detailed reports, which
live next to it under the results folder. Nothing in it depends on timing, so reruns give identical bytes.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .io_utils import write_text_atomic

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
]


@dataclass(frozen=True)
class CenterReports:
    """The per-center report files the run report reads; ``manifest`` is None when the deposit is off."""

    ingest: str | Path
    fhir: str | Path
    qc: str | Path
    validation: str | Path
    manifest: str | Path | None = None


def _load(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _manifest_files(path: str | Path | None) -> int | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle) - 1


def center_row(files: CenterReports) -> dict[str, Any]:
    """Everything the run report says about one center."""
    ing, fh, qc, va = _load(files.ingest), _load(files.fhir), _load(files.qc), _load(files.validation)
    sev = va["by_severity"]
    encrypted = _manifest_files(files.manifest)
    return {
        "use_case": ing["use_case"],
        "center": Path(files.ingest).parent.name,
        "rows_in": ing["rows_in"],
        "records": ing["records"],
        "ingest_rejected": ing["rejected"],
        "bundles": fh["bundles"],
        "rejected_total": fh["rejected"],
        "reconciled": "yes" if ing["rows_in"] == fh["bundles"] + fh["rejected"] else "NO",
        "qc_score": f"{qc['total']['score']:.2f}",
        "qc_excluded": qc["gate"]["excluded"],
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
    }


def write_run_summary(
    centers: list[CenterReports],
    tsv_out: str | Path,
    html_out: str | Path | None = None,
    sections: Sequence[str] = (),
) -> str:
    """Write the TSV (one row per center) and, if asked, the HTML page (with extra ``sections``, see
    :func:`with_sections`); returns a one-line summary for the log."""
    rows = [center_row(c) for c in centers]
    lines = ["\t".join(COLUMNS)] + ["\t".join(str(row[c]) for c in COLUMNS) for row in rows]
    write_text_atomic(tsv_out, "\n".join(lines) + "\n")
    if html_out is not None:
        write_text_atomic(
            html_out, with_sections(render_html(rows, deposit=any(c.manifest for c in centers)), sections)
        )
    problems = sum(1 for r in rows if r["reconciled"] != "yes" or r["validation"] != "valid")
    return f"{len(rows)} center(s), {sum(r['bundles'] for r in rows)} bundles, {problems} needing attention"


def with_sections(page: str, sections: Sequence[str]) -> str:
    """The page with extra sections (HTML fragments made elsewhere, e.g. the re-identification risk of
    :func:`oncofhir.privacy.html.privacy_section`) before its end."""
    return page.replace("\n</body>", "".join(sections) + "\n</body>", 1)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:90em;padding:0 1em;
color:#1d2733;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}.sub{color:#5b6775;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #d5dbe3;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#eef2f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fbeaea}tr.total td{font-weight:600;background:#f6f8fa}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #d5dbe3;border-radius:6px;padding:.6em 1em}
.card b{display:block;font-size:1.4em}.note{color:#5b6775;font-size:.88em}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(href: str, text: object) -> str:
    return f'<a href="{_e(href)}">{_e(text)}</a>'


def _send_back(row: dict[str, Any], base: str) -> str:
    """What the data manager sends back to the hospital, with links to the lists."""
    items = []
    if row["rejected_total"]:
        items.append(_link(f"../rejects/{base}.tsv", f"{row['rejected_total']} rejected row(s)"))
    if row["qc_failures"]:
        items.append(_link(f"../qc/{base}/failures.tsv", f"{row['qc_failures']} quality finding(s)"))
    if row["missing_columns"]:
        items.append(f"missing column(s): {_e(row['missing_columns'])}")
    if row["unknown_columns"]:
        items.append(f"unknown column(s): {_e(row['unknown_columns'])}")
    return "; ".join(items) or "nothing"


def render_html(rows: list[dict[str, Any]], *, deposit: bool) -> str:
    """The run report page: totals, then one line per center with links to its detailed reports."""
    total_rows = sum(r["rows_in"] for r in rows)
    total_bundles = sum(r["bundles"] for r in rows)
    total_rejected = sum(r["rejected_total"] for r in rows)
    errors = sum(r["validation_errors"] for r in rows)
    attention = [r for r in rows if r["reconciled"] != "yes" or r["validation"] != "valid"]
    cards = [
        ("centers", len(rows)),
        ("rows in", total_rows),
        ("bundles", total_bundles),
        ("rejected rows", total_rejected),
        ("validation errors", errors),
        ("centers needing attention", len(attention)),
    ]
    if deposit:
        cards.append(("encrypted files", sum(int(r["encrypted_files"] or 0) for r in rows)))
    head = [
        "use case",
        "center",
        "rows in",
        "bundles",
        "rejected",
        "reconciled",
        "QC score",
        "validation",
        *(["deposit"] if deposit else []),
        "send back to the hospital",
    ]
    body = []
    for r in rows:
        base = f"{r['use_case']}/{r['center']}"
        bad = r["reconciled"] != "yes" or r["validation"] != "valid"
        cells = [
            _e(r["use_case"]),
            _e(r["center"]),
            f'<td class="n">{r["rows_in"]}',
            f'<td class="n">{r["bundles"]}',
            f'<td class="n">{_link(f"../rejects/{base}.tsv", r["rejected_total"])}',
            _e(r["reconciled"]),
            f'<td class="n">{_link(f"../qc/{base}/report.html", r["qc_score"])}',
            _link(f"../validation/{base}/issues.tsv", r["validation_line"]),
        ]
        if deposit:
            cells.append(_link(f"../ega/{base}.manifest.tsv", f"{r['encrypted_files']} files"))
        cells.append(_send_back(r, base))
        tds = "".join(c if c.startswith("<td") else f"<td>{c}" for c in cells)
        body.append(f"<tr{' class=bad' if bad else ''}>{tds}</tr>")
    body.append(
        f'<tr class="total"><td colspan="2">all centers<td class="n">{total_rows}<td class="n">{total_bundles}'
        f'<td class="n">{total_rejected}<td>{"yes" if not any(r["reconciled"] != "yes" for r in rows) else "NO"}'
        f"<td><td>{errors} error(s)" + ("<td>" if deposit else "") + "<td></tr>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>oncofhir run report</title>'
        f"<style>{CSS}</style></head><body>\n<h1>oncofhir run report</h1>\n"
        '<p class="sub">Every input row of every center ends up in a bundle or in the rejects, with its reason. '
        'Detail: <a href="../qc/index.html">data quality</a>, <a href="run_summary.tsv">run summary (TSV)</a>'
        + (', <a href="../ega/manifest.tsv">EGA manifest</a>' if deposit else "")
        + ".</p>\n<div class=cards>"
        + "".join(f"<div class=card><b>{_e(v)}</b>{_e(k)}</div>" for k, v in cards)
        + "</div>\n<table><thead><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table>\n"
        '<p class="note">Rows in red: counts do not reconcile or validation found errors. QC score: the paper\'s '
        "Table 2 weighting (0-100). Validation: structure, invariants, references, terminology and the data model"
        " (and the HL7 validator when enabled).</p>\n</body></html>\n"
    )
