"""The run report's re-identification risk section: one table row per use case, its smallest classes below.

A separate fragment (no page chrome) so the run report only places it; it names quasi-identifier values of the
smallest classes, which the local report needs to say what to generalise (the report is never deposited).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _suggestion(result: dict[str, Any]) -> str:
    """The narrowest band that reaches k, else the attribute whose suppression leaves the fewest records below k."""
    for option in result.get("generalisations", []):
        if option["reaches_k"]:
            return f"{', '.join(option['attributes'])} in {option['band']}-year/unit bands reaches k"
    without = result.get("without_attribute") or {}
    if not without:
        return ""
    best = min(without, key=lambda qi: (without[qi]["records_below_k"], qi))
    if without[best]["records_below_k"] >= result.get("records_below_k", 0):
        return "no single band or suppression reaches k: see the classes"
    return f"suppressing {best} leaves {without[best]['records_below_k']} record(s) below k"


def privacy_section(paths: list[str | Path]) -> str:
    """HTML for the run report from each use case's results/privacy/<use_case>.json ("" when there are none)."""
    if not paths:
        return ""
    rows, details = [], []
    for path in paths:
        r = json.loads(Path(path).read_text(encoding="utf-8"))
        uc, release = r["use_case"], r["release"]
        status = "blocked" if release["blocked"] else ("meets k" if r.get("meets_k") else "below k")
        if not r["assessed"]:
            status = "blocked (not assessed)" if release["blocked"] else "not assessed"
        bad = release["blocked"] or not r.get("meets_k", False)
        rows.append(
            f"<tr{' class=bad' if bad else ''}><td>{_e(uc)}<td class=n>{_e(r.get('records'))}"
            f"<td>{_e(', '.join(r.get('quasi_identifiers', [])))}<td class=n>{_e(r.get('k'))}"
            f"<td class=n>{_e(r['k_required'])}<td class=n>{_e(r.get('l'))}<td class=n>{_e(r.get('records_below_k'))}"
            f'<td>{_e(status)}<td>{_e(_suggestion(r))}<td><a href="../privacy/{_e(uc)}.tsv">classes</a></tr>'
        )
        small = r.get("smallest_classes") or []
        if small:
            qis = r["quasi_identifiers"]
            head = "".join(f"<th>{_e(q)}</th>" for q in qis) + "<th>records</th><th>suppress to reach k</th>"
            body = "".join(
                "<tr>"
                + "".join(f"<td>{_e(c['values'][q])}" for q in qis)
                + f"<td class=n>{c['records']}<td>{_e(', '.join(c['drivers']) or 'one attribute is not enough')}</tr>"
                for c in small
            )
            details.append(
                f"<details><summary>{_e(uc)}: the {len(small)} smallest classes below k</summary>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>"
            )
    return (
        '\n<h2 id="privacy">Re-identification risk</h2>\n<p class="note">Per use case over all its centers, on the '
        "quasi-identifiers its mapping.yaml declares: k-anonymity (smallest class), l-diversity of the sensitive "
        "variable, records in classes smaller than k, and what would reach k (docs/provenance.md). Local only: it "
        "names values of the smallest classes.</p>\n<table><thead><tr><th>use case</th><th>records</th>"
        "<th>quasi-identifiers</th><th>k</th><th>k required</th><th>l</th><th>records below k</th><th>decision</th>"
        "<th>what would reach k</th><th></th></tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>\n"
        + "\n".join(details)
        + "\n"
    )
