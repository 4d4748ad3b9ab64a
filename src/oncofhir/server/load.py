"""Load one center's bundles into a FHIR server as transactions, and say what happened in a load report.

The center's NDJSON (one collection Bundle per patient and line) is read line by line; ``batch`` patients' bundles
go into one transaction (:mod:`.transaction`), at most ``in_flight`` transactions are on the wire at once, so the
memory is ``batch x in_flight`` bundles whatever the center's size. A transaction the server refuses (4xx) is sent
again one patient at a time, so that one bad bundle fails alone, with the server's OperationOutcome in the report.
A server that cannot be reached, refuses the credentials (401/403) or is not a FHIR base (404/405) stops the center
at once: every later transaction would fail the same way. Nothing here raises for a server's answer: the report
(and its one-line summary) says what was loaded and what was not, and the caller moves on to the next center.
"""

from __future__ import annotations

import concurrent.futures as cf
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .client import FhirClient, Response, ServerUnavailable
from .searches import Search
from .transaction import BadBundle, parse_bundle, transaction_entries

#: Answers that mean every request to this server will fail the same way: stop the center.
FATAL_STATUSES = {
    401: "refused the credentials",
    403: "forbids this",
    404: "is not a FHIR base URL",
    405: "is not a FHIR base URL",
}
#: HAPI's code for an update that found the stored resource identical (no new version).
_STORAGE_CODES = "https://hapifhir.io/fhir/CodeSystem/hapi-fhir-storage-response-code"
_VERSION = re.compile(r"/_history/([^/]+)$")
#: Issues of a refused transaction kept in the report (a server may list one per resource).
MAX_ISSUES = 20


@dataclass
class Part:
    """One patient's bundle: its line, id, transaction entries and what it holds."""

    line: int
    bundle_id: str
    entries: list[dict[str, Any]]
    resources: Counter[str]
    profiles: Counter[str]
    matches: Counter[int]


@dataclass
class Totals:
    """What the server accepted, summed over a center's transactions."""

    transactions_sent: int = 0
    transactions_accepted: int = 0
    bundles_sent: int = 0
    bundles_accepted: int = 0
    retries: int = 0
    split: int = 0
    resources: Counter[str] = field(default_factory=Counter)
    profiles: Counter[str] = field(default_factory=Counter)
    matches: Counter[int] = field(default_factory=Counter)
    outcome: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)


def _profile_of(resource: dict[str, Any], search: Search) -> str | None:
    for profile in (resource.get("meta") or {}).get("profile") or ():
        if isinstance(profile, str) and profile.endswith(search.profile_suffix):
            return profile
    return None


def _part(line: int, bundle: dict[str, Any], searches: Sequence[Search], seen: dict[int, str]) -> Part:
    resources: Counter[str] = Counter()
    profiles: Counter[str] = Counter()
    matches: Counter[int] = Counter()
    for entry in bundle["entry"]:
        resource = entry["resource"]
        resources[resource["resourceType"]] += 1
        for profile in (resource.get("meta") or {}).get("profile") or ():
            if isinstance(profile, str):
                profiles[f"{resource['resourceType']} {profile}"] += 1
        for number, search in enumerate(searches):
            if resource["resourceType"] != search.resource_type:
                continue
            profile = _profile_of(resource, search)
            if profile:
                seen.setdefault(number, profile)
            claims = bool((resource.get("meta") or {}).get("profile"))
            if (profile or not claims) and search.matches(resource, profile):
                matches[number] += 1
    return Part(line, str(bundle.get("id", "")), transaction_entries(bundle), resources, profiles, matches)


def _issues(body: dict[str, Any] | None) -> list[dict[str, str]]:
    """The OperationOutcome's issues (severity, code, diagnostics, where), at most :data:`MAX_ISSUES`."""
    if not body or body.get("resourceType") != "OperationOutcome":
        return []
    out = []
    for issue in (body.get("issue") or [])[:MAX_ISSUES]:
        out.append(
            {
                "severity": str(issue.get("severity", "")),
                "code": str(issue.get("code", "")),
                "diagnostics": str(issue.get("diagnostics", ""))[:1000],
                "expression": ", ".join(map(str, issue.get("expression") or issue.get("location") or [])),
            }
        )
    return out


def _classify(entry: dict[str, Any]) -> tuple[str, str]:
    """(created | updated | unchanged, version) of one transaction-response entry."""
    response = entry.get("response") or {}
    status = str(response.get("status", ""))
    match = _VERSION.search(str(response.get("location", "")))
    version = match.group(1) if match else str(response.get("etag", "")).strip('W/"') or "?"
    codes = {
        c.get("code")
        for issue in (response.get("outcome") or {}).get("issue") or []
        for c in (issue.get("details") or {}).get("coding") or []
        if c.get("system") == _STORAGE_CODES
    }
    if status.startswith("201"):
        return "created", version
    if "SUCCESSFUL_UPDATE_NO_CHANGE" in codes:
        return "unchanged", version
    return "updated", version


class _Fatal(Exception):
    """Every further request to this server would fail the same way (unreachable, credentials, wrong base)."""


def _post(client: FhirClient, parts: list[Part]) -> list[tuple[list[Part], Response]]:
    """Send ``parts`` as one transaction; when the server refuses it (4xx), each part again on its own."""
    body = {"resourceType": "Bundle", "type": "transaction", "entry": [e for p in parts for e in p.entries]}
    try:
        response = client.transaction(orjson.dumps(body))
    except ServerUnavailable as exc:
        raise _Fatal(str(exc)) from None
    if response.status in FATAL_STATUSES:
        raise _Fatal(f"{client.base_url}: HTTP {response.status}: the server {FATAL_STATUSES[response.status]}")
    if response.ok or len(parts) == 1 or response.status >= 500:
        return [(parts, response)]
    results: list[tuple[list[Part], Response]] = [([], response)]  # the refused transaction: counted, then split
    for part in parts:
        results.extend(_post(client, [part]))
    return results


def _chunks(
    lines: Iterator[tuple[int, bytes]],
    batch: int,
    searches: Sequence[Search],
    seen: dict[int, str],
    bad: list[dict[str, Any]],
) -> Iterator[list[Part]]:
    chunk: list[Part] = []
    for number, line in lines:
        try:
            chunk.append(_part(number, parse_bundle(line), searches, seen))
        except BadBundle as exc:
            bad.append({"lines": [number], "bundle_ids": [], "status": None, "error": str(exc), "issues": []})
            continue
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _record(totals: Totals, parts: list[Part], response: Response) -> None:
    bundles = len(parts)
    totals.transactions_sent += 1
    totals.bundles_sent += bundles
    totals.retries += response.retries
    if not parts:  # refused as a whole, sent again one patient at a time (the parts are recorded then)
        totals.split += 1
        return
    if not response.ok:
        totals.failures.append(
            {
                "lines": [p.line for p in parts],
                "bundle_ids": [p.bundle_id for p in parts],
                "status": response.status,
                "error": f"HTTP {response.status}" + (": the server failed" if response.status >= 500 else ": refused"),
                "issues": _issues(response.body),
            }
        )
        return
    totals.transactions_accepted += 1
    totals.bundles_accepted += bundles
    for part in parts:
        totals.resources.update(part.resources)
        totals.profiles.update(part.profiles)
        totals.matches.update(part.matches)
    for entry in (response.body or {}).get("entry") or []:
        kind, version = _classify(entry)
        totals.outcome[kind] += 1
        totals.versions[version] += 1


def load_center(
    ndjson: str | Path,
    use_case: str,
    center: str,
    client: FhirClient,
    searches: Sequence[Search] = (),
    *,
    batch: int = 20,
    in_flight: int = 2,
) -> dict[str, Any]:
    """Load one center's NDJSON into the server; the load report (see docs/fhir-server.md#the-load-report)."""
    path = Path(ndjson)
    start = time.monotonic()
    totals = Totals()
    seen: dict[int, str] = {}
    bad: list[dict[str, Any]] = []
    fatal = None
    try:
        bundles = _count_lines(path)
        chunks = _chunks(_lines(path), batch, searches, seen, bad)
        with cf.ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="fhir-load") as pool:
            pending: set[cf.Future[list[tuple[list[Part], Response]]]] = set()
            for chunk in chunks:
                pending.add(pool.submit(_post, client, chunk))
                if len(pending) >= in_flight:
                    done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    fatal = _collect(done, totals) or fatal
                    if fatal:
                        break
            done, _ = cf.wait(pending)
            fatal = _collect(done, totals) or fatal
    except OSError as exc:
        bundles = 0
        fatal = f"cannot read {path}: {exc.strerror}"
    seconds = time.monotonic() - start
    return _report(
        path, use_case, center, client, searches, seen, totals, bad, fatal, bundles, seconds, batch, in_flight
    )


def _collect(done: set[cf.Future[list[tuple[list[Part], Response]]]], totals: Totals) -> str | None:
    fatal = None
    for future in done:
        try:
            for parts, response in future.result():
                _record(totals, parts, response)
        except _Fatal as exc:
            fatal = str(exc)
    return fatal


def _report(
    path: Path,
    use_case: str,
    center: str,
    client: FhirClient,
    searches: Sequence[Search],
    seen: dict[int, str],
    totals: Totals,
    bad: list[dict[str, Any]],
    fatal: str | None,
    bundles: int,
    seconds: float,
    batch: int,
    in_flight: int,
) -> dict[str, Any]:
    failures = bad + totals.failures
    accepted = sum(totals.resources.values())
    if fatal is None and not failures and totals.bundles_accepted == bundles:
        status = "loaded"
    elif totals.bundles_accepted:
        status = "partial"
    else:
        status = "failed"
    rate = accepted / seconds if seconds > 0 else 0.0
    name = f"{use_case}/{center}"
    if status == "loaded":
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(totals.outcome.items())) or "none"
        line = (
            f"{name}: loaded {bundles}/{bundles} bundles, {accepted} resources ({kinds}) in {seconds:.1f} s, "
            f"{rate:.0f} resources/s"
        )
    else:
        why = fatal or f"{len(failures)} transaction(s) refused, first: {_first_reason(failures)}"
        line = f"{name}: FAILED ({status}): {totals.bundles_accepted}/{bundles} bundles loaded; {why}"
    return {
        "use_case": use_case,
        "center": center,
        "server": client.base_url,
        "ndjson": path.name,
        "status": status,
        "line": line,
        "error": fatal,
        "bundles": bundles,
        "batch": batch,
        "in_flight": in_flight,
        "transactions_sent": totals.transactions_sent,
        "transactions_accepted": totals.transactions_accepted,
        "bundles_sent": totals.bundles_sent,
        "bundles_accepted": totals.bundles_accepted,
        "retries": totals.retries,
        "split": totals.split,
        "resources": dict(sorted(totals.resources.items())),
        "resources_accepted": accepted,
        "outcome": {k: totals.outcome.get(k, 0) for k in ("created", "updated", "unchanged")},
        "versions": dict(sorted(totals.versions.items())),
        "profiles": dict(sorted(totals.profiles.items())),
        "searches": [
            {
                "label": s.label,
                "use_case": s.use_case,
                "resource_type": s.resource_type,
                "params": s.params(seen.get(i)),
                "expected": totals.matches.get(i, 0),
            }
            for i, s in enumerate(searches)
        ],
        "failures": failures,
        "seconds": round(seconds, 3),
        "resources_per_second": round(rate, 1),
    }


def _first_reason(failures: list[dict[str, Any]]) -> str:
    first = failures[0]
    issue = next((i for i in first["issues"] if i["severity"] in ("fatal", "error")), None)
    where = f"line {first['lines'][0]}" if first["lines"] else ""
    text = issue["diagnostics"] if issue else first["error"]
    return f"{where}: {text}" if where else text
