"""The QC pages a person opens in a browser: one per center, one combining every center and use case.

Self-contained on purpose (inline CSS and SVG, no JavaScript, no CDN): the pages hold patient-level drill-down,
are read on machines without network access, and must not fetch anything. Every value that comes from data,
dictionaries or configuration passes through :func:`html.escape`, so a value such as ``<script>`` is shown as text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from .assess import CenterQC
from .model import TYPES
from .scoring import pct, weight_text

FAILURE_PREVIEW = 200
LABEL_CHARS = 26  # chart labels longer than this are cut (the tables carry the full names)
NO_CHECKS_TEXT = {
    "renormalise": "a type with no applicable check is left out of the score (weights renormalised)",
    "full_credit": "a type with no applicable check counts as fully passed",
}
EXCLUDED_PREVIEW = 200

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;
color:#1d2733;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #d5dbe3}
.sub{color:#5b6775;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d5dbe3;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef2f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;background:#f6f8fa}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #d5dbe3;border-radius:6px;padding:.6em 1em}
.card b{display:block;font-size:1.4em}.note{color:#5b6775;font-size:.9em}
code{background:#f3f5f7;padding:0 .2em}
"""


def _e(value: object) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def _colour(value: float) -> str:
    if value >= 90:
        return "#2e7d4f"
    if value >= 70:
        return "#c98a12"
    return "#b23b3b"


def _svg_open(width: int, height: int, title: str) -> str:
    """An inline SVG root with an accessible title (screen readers and tooltips)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="system-ui, sans-serif" role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>'
    )


def bar_chart(items: Sequence[tuple[str, float | None, str]], title: str) -> str:
    """Horizontal bars (0-100 %) as inline SVG; ``items`` are (label, percent or None, note)."""
    row, label_w, bar_w, note_w = 26, 190, 380, 230
    width, height = label_w + bar_w + note_w, row * len(items) + 8
    out = [_svg_open(width, height, title)]
    for k, (label, value, note) in enumerate(items):
        y = 4 + k * row
        label = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
        out.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="13">{_e(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="18" fill="#eef2f6"/>'
        )
        if value is not None:
            w = max(0.0, min(100.0, value)) / 100 * bar_w
            out.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="18" fill="{_colour(value)}"/>')
        out.append(f'<text x="{label_w + bar_w + 8}" y="{y + 16}" font-size="12">{_e(note)}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(counts: Sequence[int], edges: Sequence[int], title: str) -> str:
    """Vertical bars of how many records score in each 10-point bin, as inline SVG."""
    col, plot_h, base = 46, 140, 170
    width, height = col * len(counts) + 20, base + 24
    top = max(counts) if counts and max(counts) else 1
    out = [_svg_open(width, height, title)]
    for k, c in enumerate(counts):
        h = plot_h * c / top
        x = 10 + k * col
        out.append(
            f'<rect x="{x + 4}" y="{base - h:.1f}" width="{col - 8}" height="{h:.1f}" fill="#3d6fa8"/>'
            f'<text x="{x + col / 2}" y="{base - h - 4:.1f}" text-anchor="middle" font-size="11">{c}</text>'
            f'<text x="{x + col / 2}" y="{base + 16}" text-anchor="middle" font-size="11">'
            f"{edges[k]}–{edges[k + 1]}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = "".join(f'<td class="n">{_e(v)}</td>' if i in numeric else f"<td>{_e(v)}</td>" for i, v in enumerate(r))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def _score_table(rows: Sequence[Any], total: Any) -> str:
    header = ["Dimension", "Type", "Fail", "Pass", "Total", "Weight", "Score"]
    body = [
        "".join(
            [
                f"<td>{_e(r.dimension)}</td><td>{_e(r.type)}</td>",
                *(f'<td class="n">{_e(v)}</td>' for v in (r.fail, r.passed, r.total, weight_text(r.weight))),
                f'<td class="n">{_e(pct(r.score))}</td>',
            ]
        )
        for r in rows
    ]
    t = total
    body.append(
        f'<td colspan="2">Total</td><td class="n">{t.fail}</td><td class="n">{t.passed}</td>'
        f'<td class="n">{t.total}</td>'
        f'<td class="n">{_e(weight_text(t.weight))}</td><td class="n">{_e(pct(t.score))}</td>'
    )
    rows_html = "".join(f"<tr>{b}</tr>" for b in body[:-1]) + f'<tr class="total">{body[-1]}</tr>'
    head = "".join(f"<th>{h}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table>"


def _rate(fail: int, passed: int) -> float | None:
    return 100.0 * passed / (fail + passed) if fail + passed else None


def center_page(qc: CenterQC, summary: dict[str, Any] | None = None) -> str:
    """The report of one center: Table 2 with its chart, score distribution, groups, checks, gate, drill-down.

    ``summary`` is ``qc.summary()`` when the caller already has it.
    """
    summary = summary or qc.summary()
    title = f"Data quality: {qc.use_case} / {qc.center}"
    total = qc.table.total
    gate = qc.gate
    parts = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">Dictionary {_e(qc.use_case)} version {_e(qc.dictionary_version)}; '
        f"{len(qc.checks)} checks; {_e(NO_CHECKS_TEXT[qc.no_checks])}.</p>",
        '<div class="cards">',
        f'<div class="card">records<b>{qc.n_records}</b></div>',
        f'<div class="card">score<b>{_e(pct(total.score))}</b></div>',
        f'<div class="card">failed checks<b>{summary["failures"]}</b></div>',
        f'<div class="card">passed the gate<b>{gate.passed}</b></div>',
        f'<div class="card">excluded from FHIR<b>{gate.excluded}</b></div>',
        "</div>",
        "<h2>Scores (Table 2)</h2>",
        _score_table(qc.table.rows, total),
        '<p class="note">Score = 100 × Σ weight × pass rate / Σ weight over the types that count; each row shows its '
        "share. Bars: pass rate of each type.</p>",
    ]
    items: list[tuple[str, float | None, str]] = []
    for r in qc.table.rows:
        rate = _rate(r.fail, r.passed)
        note = f"{pct(rate)} pass, weight {weight_text(r.weight)}" if rate is not None else "no checks"
        items.append((r.type, rate, note))
    items.append(("score", total.score, pct(total.score)))
    parts.append(bar_chart(items, f"Pass rate per check type, {qc.use_case} / {qc.center}"))
    if qc.unscored_types:
        parts.append("<h2>Flags (reported, not scored)</h2>")
        parts.append(
            _table(
                ["Dimension", "Type", "Fail", "Pass", "Total", "What it means"],
                [
                    (u["dimension"], u["type"], u["fail"], u["pass"], u["total"], TYPES[u["type"]].description)
                    for u in summary["unscored"]
                ],
                {2, 3, 4},
            )
        )
    hist = summary["record_scores"]["histogram"]
    parts.append("<h2>Record scores</h2>")
    parts.append(histogram(hist["counts"], hist["edges"], "Number of records per score band (%)"))
    if hist["no_score"]:
        parts.append(f'<p class="note">{hist["no_score"]} record(s) had no applicable check.</p>')
    groups = summary["groups"]
    if len(groups) > 1 or (groups and groups[0]["dag"]):
        parts.append("<h2>Data access groups</h2>")
        parts.append(
            _table(
                ["Group", "Records", "Excluded", "Score"],
                [(g["dag"] or "(none)", g["records"], g["excluded"], pct(g["score"])) for g in groups],
                {1, 2, 3},
            )
        )
    failing = sorted((c for c in qc.per_check if c["fail"]), key=lambda c: (-c["fail"], c["id"]))
    parts.append("<h2>Checks that failed</h2>")
    if failing:
        parts.append(
            _table(
                ["Check", "Dimension", "Fail", "Pass", "Not applicable", "Message"],
                [(c["id"], c["dimension"], c["fail"], c["pass"], c["not_applicable"], c["message"]) for c in failing],
                {2, 3, 4},
            )
        )
    else:
        parts.append("<p>No check failed.</p>")
    parts.append("<h2>Quality gate</h2>")
    minimums = ", ".join(f"{k} ≥ {v:g}" for k, v in gate.min_type_scores.items()) or "none"
    parts.append(
        f"<p>Records go on to FHIR when their score is at least {gate.min_record_score:g} and every type minimum "
        f"is met (type minimums: {_e(minimums)}). {gate.excluded} excluded; full list in <code>gate.tsv</code>.</p>"
    )
    excluded = qc.excluded_preview[:EXCLUDED_PREVIEW]
    if excluded:
        parts.append(_table(["Row", "Record", "Score", "Reason"], excluded, {0, 2}))
    rows = qc.failures_preview[:FAILURE_PREVIEW]
    parts.append("<h2>Failures, record by record</h2>")
    parts.append(
        f'<p class="note">The first {len(rows)} of {summary["failures"]} failed checks; all of them are in '
        "<code>failures.tsv</code>, the file to send back to the hospital.</p>"
    )
    if rows:
        parts.append(_table(["Row", "Record", "Variable", "Check", "Type", "Dimension", "Value", "Message"], rows, {0}))
    return _page(title, "".join(parts))


def index_page(centers: Sequence[dict[str, Any]], use_cases: Sequence[dict[str, Any]]) -> str:
    """The combined page: pooled score per use case, then every center with a link to its report.

    ``centers`` are qc.json summaries with an added ``link``; ``use_cases`` are pooled rows with ``use_case``,
    ``centers``, ``records``, ``excluded`` and a ``table`` (:class:`~oncofhir.qc.scoring.ScoreTable`).
    """
    title = "Data quality: all use cases and centers"
    parts = [f"<h1>{_e(title)}</h1>", f'<p class="sub">{len(centers)} centers, {len(use_cases)} use cases.</p>']
    items: list[tuple[str, float | None, str]] = []
    for u in use_cases:
        note = f"{pct(u['table'].total.score)}, {u['records']} records, all centers"
        items.append((f"{u['use_case']}", u["table"].total.score, note))
        for c in centers:
            if c["use_case"] == u["use_case"]:
                note = f"{pct(c['total']['score'])}, {c['records']} records"
                items.append((f"{c['use_case']} / {c['center']}", c["total"]["score"], note))
    parts.append(bar_chart(items, "Score per use case and center"))
    types = sorted({r.type for u in use_cases for r in u["table"].rows}, key=list(TYPES).index)
    parts.append("<h2>Per use case (all centers pooled)</h2>")
    rows = []
    for u in use_cases:
        by_type = {r.type: r for r in u["table"].rows}
        rates = [pct(_rate(by_type[t].fail, by_type[t].passed)) if t in by_type else "" for t in types]
        rows.append((u["use_case"], u["centers"], u["records"], u["excluded"], *rates, pct(u["table"].total.score)))
    numeric = set(range(1, 5 + len(types)))
    parts.append(
        _table(["Use case", "Centers", "Records", "Excluded", *(f"{t} pass" for t in types), "Score"], rows, numeric)
    )
    parts.append("<h2>Per center</h2>")
    head = ["Use case", "Center", "Records", "Failed checks", "Excluded", *(f"{t} pass" for t in types), "Score"]
    body = []
    for c in centers:
        by_type = {r["type"]: r for r in c["table"]}
        rates = [pct(_rate(by_type[t]["fail"], by_type[t]["pass"])) if t in by_type else "" for t in types]
        cells = [
            f"<td>{_e(c['use_case'])}</td>",
            f'<td><a href="{_e(quote(c["link"]))}">{_e(c["center"])}</a></td>',
            *(f'<td class="n">{_e(v)}</td>' for v in (c["records"], c["failures"], c["gate"]["excluded"], *rates)),
            f'<td class="n">{_e(pct(c["total"]["score"]))}</td>',
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    head_html = "".join(f"<th>{_e(h)}</th>" for h in head)
    parts.append(f"<table><thead><tr>{head_html}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    parts.append(
        '<p class="note">Pass rates are pass / (pass + fail) over the checks that applied. The use-case score pools '
        "the centers' counts and applies the same weights (docs/qc.md).</p>"
    )
    return _page(title, "".join(parts))
