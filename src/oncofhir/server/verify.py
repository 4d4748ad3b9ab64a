"""Query the loaded cohort back by FHIR search and compare every count with what the bundles hold.

From the centers' load reports (:mod:`.load`), which count only what the server accepted: per resource type
(``<type>?_summary=count``), per use case and type (the same, narrowed to the use case's profiles with
``_profile``; only when the bundles claim profiles), and each clinical search (:mod:`.searches`), its expected
count summed over the centers that ran the same query. Every search is sent with ``Cache-Control: no-cache``. The
per-type totals assume the server holds this cohort only (a dedicated server or a fresh one, as in CI): on a
shared server they count more, and the report says which type differs.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from .client import FhirClient, ServerUnavailable

_Expected = tuple[Counter[str], dict[tuple[str, str], Counter[str]], dict[tuple[str, str], dict[str, Any]]]


def _expected(reports: Sequence[dict[str, Any]]) -> _Expected:
    """What the bundles hold: per type, per (use case, type) and profile, per clinical search (by its query)."""
    types: Counter[str] = Counter()
    use_cases: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)  # (use case, type) -> profile -> count
    searches: dict[tuple[str, str], dict[str, Any]] = {}
    for report in reports:
        types.update(report["resources"])
        for key, count in report["profiles"].items():
            rtype, profile = key.split(" ", 1)
            use_cases[(report["use_case"], rtype)][profile] += count
        for search in report["searches"]:
            query = _query(search["resource_type"], search["params"])
            entry = searches.setdefault(
                (search["resource_type"], query), {"label": search["label"], "params": search["params"], "expected": 0}
            )
            entry["expected"] += search["expected"]
    return types, use_cases, searches


def _query(resource_type: str, params: Sequence[Sequence[str]]) -> str:
    return resource_type + "?" + "&".join(f"{k}={v}" for k, v in params)


def _count(client: FhirClient, resource_type: str, params: Sequence[Sequence[str]]) -> tuple[int | None, str]:
    """The server's count, or None and why (an error answer, no total)."""
    response = client.count(resource_type, [(str(k), str(v)) for k, v in params])
    if not response.ok:
        issues = (response.body or {}).get("issue") or [{}]
        return None, f"HTTP {response.status}: {str(issues[0].get('diagnostics', ''))[:300]}"
    total = (response.body or {}).get("total")
    return (total, "") if isinstance(total, int) else (None, "no total in the answer")


def verify_server(client: FhirClient, reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every check (kind, label, query, expected, found, ok) and the verdict; a server that cannot be reached
    makes a failed verdict with its reason, never an exception."""
    start = time.monotonic()
    types, use_cases, searches = _expected(reports)
    checks: list[dict[str, Any]] = []
    error = None
    plan: list[tuple[str, str, str, list[list[str]], int]] = []
    for rtype in sorted(types):
        plan.append(("type", f"{rtype}", rtype, [], types[rtype]))
    for (use_case, rtype), profiles in sorted(use_cases.items()):
        narrowed = [["_profile", ",".join(sorted(profiles))]]
        plan.append(("use case", f"{use_case} {rtype}", rtype, narrowed, sum(profiles.values())))
    for (rtype, _query_text), entry in sorted(searches.items()):
        plan.append(("search", entry["label"], rtype, entry["params"], entry["expected"]))
    for kind, label, rtype, params, expected in plan:
        try:
            found, why = _count(client, rtype, params)
        except ServerUnavailable as exc:
            error = str(exc)
            break
        checks.append(
            {
                "kind": kind,
                "label": label,
                "query": _query(rtype, params),
                "expected": expected,
                "found": found,
                "ok": found == expected,
                **({"error": why} if why else {}),
            }
        )
    failed = [c for c in checks if not c["ok"]]
    passed = error is None and not failed and bool(checks)
    by_kind = Counter(c["kind"] for c in checks)
    if error:
        line = f"query check FAILED: {error}"
    elif not checks:
        line = "query check FAILED: nothing was loaded, nothing to count"
    elif failed:
        first = failed[0]
        line = (
            f"query check FAILED: {len(failed)}/{len(checks)} counts differ, first {first['query']}: "
            f"expected {first['expected']}, found {first['found']}"
        )
    else:
        line = (
            f"query check passed: {len(checks)} counts equal what the bundles hold ({by_kind['type']} resource types, "
            f"{by_kind['use case']} use case x type, {by_kind['search']} clinical searches)"
        )
    return {
        "server": client.base_url,
        "passed": passed,
        "line": line,
        "error": error,
        "centers": len(reports),
        "checks": checks,
        "seconds": round(time.monotonic() - start, 3),
    }
