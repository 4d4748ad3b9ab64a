"""The QC pages a person opens in a browser: one per center, one combining every center and use case.

Self-contained on purpose (inline CSS and SVG, one small inline script that filters the failure list, no CDN): the
pages hold patient-level drill-down, are read on machines without network access, and must not fetch anything.
The pages are Jinja2 templates (:mod:`oncofhir.pages`, autoescaped); the SVG charts are built here, every value
from data, dictionaries or configuration through :func:`html.escape`, so a value such as ``<script>`` is text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import numpy as np
from markupsafe import Markup

from ..pages import render, stream
from .assess import CenterQC, ChunkQC, labelled
from .model import FAIL, TYPES
from .scoring import pct, weight_text

LABEL_CHARS = 26  # chart labels longer than this are cut (the tables carry the full names)
NO_CHECKS_TEXT = {
    "renormalise": "a type with no applicable check is left out of the score (weights renormalised)",
    "full_credit": "a type with no applicable check counts as fully passed",
}
EXCLUDED_PREVIEW = 200


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


def bar_chart(items: Sequence[tuple[str, float | None, str]], title: str) -> Markup:
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
    return Markup("".join(out))  # noqa: S704 (every value in it went through _e)


def histogram(counts: Sequence[int], edges: Sequence[int], title: str) -> Markup:
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
    return Markup("".join(out))  # noqa: S704 (every value in it went through _e)


def center_page(qc: CenterQC, failure_html: Iterable[str], summary: dict[str, Any] | None = None) -> Iterator[str]:
    """The report of one center, in pieces to write as they come: hidden-value conflicts to send back first, Table 2
    with its chart, score distribution, groups, checks, gate, and every failure (filterable), coded values with
    their labels.

    ``failure_html`` is every failure's table row (:func:`failure_rows` of each chunk, in order), typically read back
    from a temporary file, so the page's longest part never sits in memory whole. ``summary`` is ``qc.summary()``
    when the caller already has it.
    """
    summary = summary or qc.summary()
    total = qc.table.total
    gate = qc.gate
    items: list[tuple[str, float | None, str]] = []
    for r in qc.table.rows:
        rate = _rate(r.fail, r.passed)
        note = f"{pct(rate)} pass, weight {weight_text(r.weight)}" if rate is not None else "no checks"
        items.append((r.type, rate, note))
    items.append(("score", total.score, pct(total.score)))
    hist = summary["record_scores"]["histogram"]
    groups = summary["groups"]
    failing = sorted(
        (c for c in qc.per_check if c["fail"]), key=lambda c: (not c["above_threshold"], -c["fail"], c["id"])
    )
    conflicts = [
        (row, rid, "; ".join(f"{v}: {qc.labelled(v, x)}" for v, x in values)) for row, rid, values in qc.conflicts
    ]
    return stream(
        "qc_center.html.j2",
        title=f"Data quality: {qc.use_case} / {qc.center}",
        dictionaries={qc.use_case: qc.dictionary_version},
        nav=[("../../index.html", "all centers (QC index)"), ("../../../report/index.html", "run report")],
        checks=len(qc.checks),
        no_checks_text=NO_CHECKS_TEXT[qc.no_checks],
        card_items=[
            ("records", qc.n_records),
            ("score", pct(total.score)),
            ("failed checks", summary["failures"]),
            ("hidden-value conflicts", summary["hidden_conflicts"]["values"]),
            ("passed the gate", gate.passed),
            ("excluded from FHIR", gate.excluded),
        ],
        conflicts=conflicts,
        score_rows=[
            (r.dimension, r.type, r.fail, r.passed, r.total, weight_text(r.weight), pct(r.score))
            for r in [*qc.table.rows, total]
        ],
        chart=bar_chart(items, f"Pass rate per check type, {qc.use_case} / {qc.center}"),
        unscored=[
            (u["dimension"], u["type"], u["fail"], u["pass"], u["total"], TYPES[u["type"]].description)
            for u in summary["unscored"]
        ],
        histogram=histogram(hist["counts"], hist["edges"], "Number of records per score band (%)"),
        no_score=hist["no_score"],
        groups=[(g["dag"] or "(none)", g["records"], g["excluded"], pct(g["score"])) for g in groups]
        if len(groups) > 1 or (groups and groups[0]["dag"])
        else [],
        failing=[
            (
                ("▲ " if c["above_threshold"] else "") + c["id"],
                c["dimension"],
                c["fail"],
                c["pass"],
                c["not_applicable"],
                pct(c["fail_rate"]),
                "" if c["threshold"] is None else f"{c['threshold']:g}%",
                c["message"],
            )
            for c in failing
        ],
        above_threshold=len(summary["above_threshold"]),
        gate_min=f"{gate.min_record_score:g}",
        gate_types=", ".join(f"{k} ≥ {v:g}" for k, v in gate.min_type_scores.items()) or "none",
        excluded_count=gate.excluded,
        excluded=qc.excluded_preview[:EXCLUDED_PREVIEW],
        failure_count=summary["failures"],
        failure_rows=(Markup(part) for part in failure_html),  # noqa: S704 (made by failure_rows: escaped)
    )


def failure_rows(chunk: ChunkQC, labels: dict[str, dict[str, str]]) -> str:
    """Every failed check of a chunk as escaped table rows (row, record, variable, check, labelled value), record by
    record; ``labels`` is variable -> code -> label.

    Built here rather than in the template: a 20,000-record center has ~100,000 failures, and joining strings made
    once per record, check and distinct value is ~50 times faster than a template loop over every cell.
    """
    result = chunk.result
    records, which = np.nonzero((result.status == FAIL).T)
    heads = [
        f'<tr><td class="n">{row}</td><td>{_e(rid)}</td>'
        for row, rid in zip(chunk.row_numbers, chunk.record_ids, strict=True)
    ]
    middles = [f"<td>{_e(c.variable)}</td><td>{_e(c.id)}</td><td>" for c in result.checks]
    # Each distinct value is labelled and escaped once, and only if some failure shows it.
    codes: dict[str, list[int]] = {}
    for k in set(which.tolist()):
        var = result.checks[k].variable
        if result.checks[k].variables:
            continue
        if var not in codes:
            codes[var] = result.columns[var].codes.tolist()
    shown: dict[tuple[str, int], str] = {}
    rows = []
    for r, k in zip(records.tolist(), which.tolist(), strict=True):
        if result.checks[k].variables:  # a rule or calculation: every variable it names, labelled
            rows.append(heads[r] + middles[k] + _e(result.shown(k, r, labels)) + "</td></tr>\n")
            continue
        var = result.checks[k].variable
        key = (var, codes[var][r])
        text = shown.get(key)
        if text is None:
            text = shown[key] = _e(labelled(labels, var, result.columns[var].uniques[key[1]]))
        rows.append(heads[r] + middles[k] + text + "</td></tr>\n")
    return "".join(rows)


def _rate(fail: int, passed: int) -> float | None:
    return 100.0 * passed / (fail + passed) if fail + passed else None


def index_page(
    centers: Sequence[dict[str, Any]],
    use_cases: Sequence[dict[str, Any]],
    min_score: float = 80.0,
    pools: Sequence[dict[str, Any]] = (),
) -> str:
    """The combined page: pooled score per use case, then every center with a link to its report; a center below
    ``min_score`` is flagged; then each use case's pool checks (``pools``: :func:`oncofhir.qc.pool_html.pool_sections`).

    ``centers`` are qc.json summaries with an added ``link``; ``use_cases`` are pooled rows with ``use_case``,
    ``centers``, ``records``, ``excluded`` and a ``table`` (:class:`~oncofhir.qc.scoring.ScoreTable`).
    """
    items: list[tuple[str, float | None, str]] = []
    for u in use_cases:
        note = f"{pct(u['table'].total.score)}, {u['records']} records, all centers"
        items.append((f"{u['use_case']}", u["table"].total.score, note))
        for c in centers:
            if c["use_case"] == u["use_case"]:
                note = f"{pct(c['total']['score'])}, {c['records']} records"
                items.append((f"{c['use_case']} / {c['center']}", c["total"]["score"], note))
    types = sorted({r.type for u in use_cases for r in u["table"].rows}, key=list(TYPES).index)
    use_case_rows = []
    for u in use_cases:
        by_type = {r.type: r for r in u["table"].rows}
        rates = [pct(_rate(by_type[t].fail, by_type[t].passed)) if t in by_type else "" for t in types]
        use_case_rows.append(
            (u["use_case"], u["centers"], u["records"], u["excluded"], *rates, pct(u["table"].total.score))
        )
    rows = []
    for c in centers:
        by_type = {r["type"]: r for r in c["table"]}
        rates = [pct(_rate(by_type[t]["fail"], by_type[t]["pass"])) if t in by_type else "" for t in types]
        score = c["total"]["score"]
        rows.append(
            {
                "use_case": c["use_case"],
                "center": c["center"],
                "href": quote(c["link"]),
                "numbers": [c["records"], c["failures"], c["gate"]["excluded"], *rates],
                "score": pct(score),
                "low": score is not None and round(score, 2) < min_score,
            }
        )
    return render(
        "qc_index.html.j2",
        title="Data quality: all use cases and centers",
        dictionaries={c["use_case"]: c["dictionary_version"] for c in centers},
        nav=[("../report/index.html", "run report")],
        centers=rows,
        use_case_rows=use_case_rows,
        use_case_head=["Use case", "Centers", "Records", "Excluded", *(f"{t} pass" for t in types), "Score"],
        center_head=[
            "Use case",
            "Center",
            "Records",
            "Failed checks",
            "Excluded",
            *(f"{t} pass" for t in types),
            "Score",
        ],
        chart=bar_chart(items, "Score per use case and center"),
        min_score=f"{min_score:g}",
        pools=pools,
    )
