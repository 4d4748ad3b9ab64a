"""The run report's FHIR server section: one row per center's load, then the query check's counts.

A block rendered from its own template (``templates/server_section.html.j2``), placed among the run report's
sections when ``fhir_server.enabled``: what each center's load sent and the server accepted (created, updated,
unchanged), what the server refused and why (its OperationOutcome), and every count by FHIR search against what
the bundles hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..pages import fragment


def _load(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def server_section(load_reports: list[str | Path], verify_report: str | Path | None) -> Markup:
    """The block from the centers' load reports and the query check (empty when there are none)."""
    if not load_reports:
        return Markup("")
    centers = []
    for path in load_reports:
        r = _load(path)
        refused = [
            {
                "lines": ", ".join(map(str, f["lines"][:10])) + (" ..." if len(f["lines"]) > 10 else ""),
                "error": f["error"],
                "issues": "; ".join(i["diagnostics"] for i in f["issues"][:3]),
            }
            for f in r["failures"]
        ]
        centers.append({**r, "refused": refused, "bad": r["status"] != "loaded"})
    verify = _load(verify_report) if verify_report else None
    checks = verify["checks"] if verify else []
    return fragment(
        "server_section.html.j2",
        server=centers[0]["server"],
        centers=centers,
        verify=verify,
        checks=checks,
        totals={
            "bundles": sum(c["bundles_accepted"] for c in centers),
            "resources": sum(c["resources_accepted"] for c in centers),
            "seconds": round(sum(c["seconds"] for c in centers), 1),
        },
    )
