"""The run report's re-identification risk section: one table row per use case, its smallest classes below.

A block rendered from its own template (autoescaped, no page head), which the run report places among its
``sections``; it names quasi-identifier values of the smallest classes, which the local report needs to say what
to generalise (the report is never deposited).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..pages import fragment


def _v(value: object) -> object:
    """A value as the page shows it: nothing for a measure not taken (a use case not assessed)."""
    return "" if value is None else value


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


def privacy_section(paths: list[str | Path]) -> Markup:
    """The run report's block (``templates/privacy_section.html.j2``) from each use case's
    results/privacy/<use_case>.json (empty when there are none)."""
    if not paths:
        return Markup("")
    rows, details = [], []
    for path in paths:
        r = json.loads(Path(path).read_text(encoding="utf-8"))
        release = r["release"]
        after = r.get("after_generalisation") or {}
        meets = after.get("meets_k", r.get("meets_k"))
        status = "blocked" if release["blocked"] else ("meets k" if meets else "below k")
        if not r["assessed"]:
            status = "blocked (not assessed)" if release["blocked"] else "not assessed"
        rows.append(
            {
                "use_case": r["use_case"],
                "records": _v(r.get("records")),
                "quasi_identifiers": ", ".join(r.get("quasi_identifiers", [])),
                "k": _v(r.get("k")),
                "k_required": r["k_required"],
                "l": _v(r.get("l")),
                "records_below_k": _v(r.get("records_below_k")),
                "rules": "; ".join((r.get("generalisation") or {}).get("rules", [])) or "none",
                "k_after": _v(after.get("k")),
                "l_after": _v(after.get("l")),
                "below_after": _v(after.get("records_below_k")),
                "status": status,
                "bad": release["blocked"] or not meets,
                "suggestion": _suggestion(r),
            }
        )
        if r.get("smallest_classes"):
            details.append(
                {
                    "use_case": r["use_case"],
                    "quasi_identifiers": r["quasi_identifiers"],
                    "classes": r["smallest_classes"],
                }
            )
    return fragment("privacy_section.html.j2", rows=rows, details=details)
