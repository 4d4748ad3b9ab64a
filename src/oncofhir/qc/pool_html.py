"""The pool checks on the QC index: per use case, a drift heat map (centers × variables), each cell one click from
the center's distribution next to the other centers', and per center the outlier and duplicate counts.

No script: a cell links to its panel's anchor and CSS ``:target`` shows that panel (pages work offline, and the
one-file report embeds the page as it is). Bars are HTML (widths in percent), every text autoescaped by the
template; only colours and widths are computed here, from numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_ID = re.compile(r"[^A-Za-z0-9_-]")


def anchor(*parts: object) -> str:
    """An HTML id from names (use case, center, variable): only [A-Za-z0-9_-], so it is safe in href and id."""
    return "d-" + "-".join(_ID.sub("_", str(p)) for p in parts)


def heat_colour(value: float | None, threshold: float, flag: bool) -> str:
    """White (no difference) to pale red at the threshold; a flagged cell is full red; no data is grey."""
    if value is None:
        return "#e6e6e6"
    if flag:
        return "#b23b3b"
    share = max(0.0, min(1.0, value / threshold)) if threshold > 0 else 0.0
    g = round(255 - share * (255 - 170))
    return f"#ff{g:02x}{g:02x}"


def _pct(n: int, total: int) -> float:
    return round(100.0 * n / total, 1) if total else 0.0


def pool_section(pool: Mapping[str, Any], links: Mapping[str, str]) -> dict[str, Any]:
    """The template context of one use case's pool checks; ``links`` maps center -> its QC page (relative)."""
    uc = pool["use_case"]
    centers = pool["centers"]
    per = pool["per_center"]
    variables = pool["variables"]
    heat_rows = []
    panels = []
    for center in centers:
        cells = []
        for v in variables:
            c = v["cells"].get(center)
            if c is None:
                cells.append(
                    {"colour": "#e6e6e6", "href": "", "title": f"{center} / {v['name']}: no values", "mark": ""}
                )
                continue
            ident = anchor(uc, center, v["name"])
            value = c["value"]
            stat = "JS" if v["kind"] == "code" else "KS D"
            title = (
                f"{center} / {v['name']}: {stat} {value if value is not None else 'n/a'}, p {c['p_value']}, "
                f"n {c['n']} vs {c['n_other']}" + (" — drift" if c["flag"] else "")
            )
            cells.append(
                {
                    "colour": heat_colour(value, v["threshold"], c["flag"]),
                    "href": "#" + ident,
                    "title": title,
                    "mark": "!" if c["flag"] else "",
                }
            )
            n, m = sum(c["center_counts"]), sum(c["other_counts"])
            panels.append(
                {
                    "id": ident,
                    "title": f"{uc} / {center} / {v['label']} ({v['name']})",
                    "summary": f"{stat} {value if value is not None else 'n/a'} (threshold {v['threshold']:g}), "
                    f"p {c['p_value']}, {n} values here vs {m} in the other centers" + (": drift" if c["flag"] else ""),
                    "rows": [
                        (cat, _pct(a, n), _pct(b, m), a, b)
                        for cat, a, b in zip(v["categories"], c["center_counts"], c["other_counts"], strict=True)
                    ],
                }
            )
        heat_rows.append({"center": center, "href": links.get(center, ""), "cells": cells})
    counts = []
    for center in centers:
        p = per[center]
        counts.append(
            [
                center,
                p["records"],
                p["outlier"][0],
                p["duplicate"][0],
                p["duplicate_pairs"]["within"],
                p["duplicate_pairs"]["across"],
                f"{p['drift'][0]} / {sum(p['drift'])}",
            ]
        )
    settings = pool["settings"]
    return {
        "use_case": uc,
        "variables": [v["name"] for v in variables],
        "labels": [v["label"] for v in variables],
        "rows": heat_rows,
        "panels": panels,
        "counts": counts,
        "dup_keys": ", ".join(pool.get("keys", [])) or "none declared",
        "settings": (
            f"outlier: robust z > {settings['max_robust_z']:g}, rare code share < {settings['rare_share']:g}; drift: "
            f"JS ≥ {settings['categorical']:g} (codes), KS D ≥ {settings['numeric']:g} (numbers), p < "
            f"{settings['alpha']:g}, n ≥ {settings['min_n']} on both sides"
        ),
    }


def pool_sections(pools: Sequence[Mapping[str, Any]], links: Mapping[tuple[str, str], str]) -> list[dict[str, Any]]:
    """Every use case's section, in use-case order; ``links`` maps (use case, center) -> its QC page."""
    out = []
    for pool in sorted(pools, key=lambda p: p["use_case"]):
        uc = pool["use_case"]
        out.append(pool_section(pool, {c: href for (u, c), href in links.items() if u == uc}))
    return out
