"""The validation stage: validate a center's bundles, merge the HL7 validator's findings, write the report.

Writes into ``out_dir``: ``issues.json`` (one object per issue), ``issues.tsv`` (the same, for a spreadsheet) and
``summary.json`` (counts by severity, layer and rule, the bundles with errors, the HL7 validator's expected offline
messages, speed, and a one-line summary for the workflow report). With ``fail_on_error`` an error anywhere raises
:class:`~oncofhir.errors.OncofhirError` *after* the report is written, so the data manager can read why.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ..dictionary import load_compiled
from ..errors import InputDataError, OncofhirError
from ..io_utils import private_writer, write_private
from ..paths import DICTIONARIES, ONTOLOGIES
from ..tsv import cell
from . import hl7
from .engine import DEFAULT_ONTOLOGIES, ValidationContext, validate_bundle
from .issues import LAYERS, SEVERITIES, Issue

COLUMNS = ("record_id", "pseudonym", "source", "bundle", "layer", "rule", "severity", "code", "location", "message")


def read_bundles(paths: Iterable[str | Path]) -> Iterator[tuple[str, Any]]:
    """(source, parsed JSON) for every bundle in files (``.json`` or ``.ndjson``) and folders (their ``*.json``)."""
    for path in map(Path, paths):
        if not path.exists():
            raise InputDataError("no such file or folder", path=str(path))
        if path.is_dir():
            yield from read_bundles(sorted(path.glob("*.json")))
        elif path.suffix == ".ndjson":
            with path.open("rb") as handle:
                for n, line in enumerate(handle, start=1):
                    if line.strip():
                        yield f"{path.name}:{n}", _parse(line, f"{path}:{n}")
        else:
            yield path.name, _parse(path.read_bytes(), str(path))


def _parse(data: bytes, where: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _Unreadable(f"not JSON: {exc}", where)


class _Unreadable:
    """A file that is not JSON: reported as a fatal issue, never a crash."""

    def __init__(self, reason: str, where: str) -> None:
        self.reason = reason
        self.where = where


def validate_all(
    bundles: Iterable[tuple[str, Any]], context: ValidationContext
) -> Iterator[tuple[str, str, list[Issue]]]:
    """(source, bundle id, issues) per bundle."""
    for source, bundle in bundles:
        if isinstance(bundle, _Unreadable):
            yield source, "", [Issue("fatal", "structure", "", bundle.reason, "not-json", "structure")]
            continue
        bundle_id = bundle.get("id", "") if isinstance(bundle, dict) else ""
        yield source, bundle_id if isinstance(bundle_id, str) else "", validate_bundle(bundle, context)


def summarize(
    rows: Iterable[dict[str, Any]], bundles: int, bad: set[str], expected: Counter[str] | None = None
) -> dict[str, Any]:
    """Counts by severity, layer and rule (with each rule's layer and severities)."""
    tally = _Tally()
    for r in rows:
        tally.add(r)
    return tally.summary(bundles, bad, expected)


class _Tally:
    """The counts :func:`summarize` reports, added up one issue at a time (the stage never holds its issues)."""

    def __init__(self) -> None:
        self.issues = 0
        self.by_severity: Counter[str] = Counter()
        self.by_layer: dict[str, Counter[str]] = {}
        self.by_rule: dict[str, dict[str, Any]] = {}

    def add(self, r: dict[str, Any]) -> None:
        self.issues += 1
        self.by_severity[r["severity"]] += 1
        self.by_layer.setdefault(r["layer"], Counter())[r["severity"]] += 1
        entry = self.by_rule.setdefault(f"{r['layer']}/{r['rule']}", {"layer": r["layer"], "rule": r["rule"]})
        entry[r["severity"]] = entry.get(r["severity"], 0) + 1

    def summary(self, bundles: int, bad: set[str], expected: Counter[str] | None) -> dict[str, Any]:
        by_severity, by_layer = self.by_severity, self.by_layer
        errors = by_severity["error"] + by_severity["fatal"]
        return {
            "bundles": bundles,
            "bundles_with_errors": len(bad),
            "issues": self.issues,
            "errors": errors,
            "by_severity": {s: by_severity[s] for s in SEVERITIES},
            "by_layer": {layer: dict(by_layer[layer]) for layer in LAYERS if layer in by_layer},
            "by_rule": dict(sorted(self.by_rule.items())),
            "hl7_expected_offline": dict(sorted((expected or Counter()).items())),
            "valid": errors == 0,
        }


class _IssueFiles:
    """``issues.json`` and ``issues.tsv`` written one issue at a time, the same bytes as dumping the whole list
    (``orjson`` with two-space indent; :func:`_tsv`), so a center's validation holds no list of its issues: a
    warning per bundle is millions of issues for a large center."""

    def __init__(self, stack: contextlib.ExitStack, out: Path) -> None:
        self.json = stack.enter_context(private_writer(out / "issues.json"))
        self.tsv = stack.enter_context(private_writer(out / "issues.tsv"))
        self.tsv.write(_tsv_header())
        self.tally = _Tally()

    def add(self, row: dict[str, Any]) -> None:
        element = b"  " + orjson.dumps(row, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n  ")
        self.json.write((b",\n" if self.tally.issues else b"[\n") + element)
        self.tsv.write(_tsv_lines([row]))
        self.tally.add(row)

    def close(self) -> None:
        self.json.write(b"\n]\n" if self.tally.issues else b"[]\n")


def stage_validate(
    compiled_json: str | Path,
    bundles: str | Path,
    out_dir: str | Path,
    *,
    fail_on_error: bool,
    hl7_outcome: str | Path | None = None,
    ontologies: str | Path | None = DEFAULT_ONTOLOGIES,
    definitions: str | Path | None = None,
    center: str | None = None,
    index: str | Path | None = None,
) -> dict[str, Any]:
    """Validate a center's bundles (a folder of ``*.json`` or an NDJSON file) and write the report.

    ``index`` (the FHIR stage's ``<center>.index.tsv``) names each bundle's record id and pseudonym in the issues:
    the NDJSON the ``source`` column points into is deleted once encrypted, and a data manager acts on record ids.
    The report stays local (never deposited), like the index.
    """
    dd = load_compiled(compiled_json)
    who = read_index(index) if index is not None else {}
    context = ValidationContext.create(dd, ontologies=ontologies, definitions=definitions)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    center = center or out.name
    bad: set[str] = set()
    count = 0
    with contextlib.ExitStack() as stack:
        files = _IssueFiles(stack, out)
        start = time.perf_counter()
        for source, bundle_id, issues in validate_all(read_bundles([bundles]), context):
            count += 1
            for issue in issues:
                files.add(_row(source, bundle_id, issue, who))
                if issue.is_error:
                    bad.add(bundle_id or source)
        seconds = time.perf_counter() - start
        expected: Counter[str] = Counter()
        hl7_info: dict[str, Any] = {"ran": False}
        if hl7_outcome is not None:
            outcome = hl7.read(hl7_outcome)
            expected = outcome.expected
            hl7_info = {"ran": True, "files": outcome.files, "issues": len(outcome.issues)}
            ids: dict[str, str] = {}
            for path, issue in outcome.issues:
                if path not in ids:
                    ids[path] = _bundle_id(path)
                files.add(_row(Path(path).name, ids[path], issue, who))
                if issue.is_error:
                    bad.add(ids[path] or Path(path).name)
        files.close()
    summary = {
        "use_case": dd.use_case,
        "center": center,
        "dictionary_version": dd.version,
        "fhir": f"{context.defs.package}#{context.defs.version}",
        "suppressed_rules": sorted(context.suppressed),
        **files.tally.summary(count, bad, expected),
        "hl7_validator": hl7_info,
        "cache": dict(context.stats),
    }
    summary["line"] = summary_line(summary)
    # Timing goes to the returned dict (the job's log), not to summary.json: outputs must not change between
    # identical runs (reruns, and a SLURM run compared byte for byte with a local one).
    timing = {"seconds": round(seconds, 2), "bundles_per_second": round(count / seconds, 1) if seconds else None}
    write_private(out / "summary.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    if fail_on_error and not summary["valid"]:
        raise OncofhirError(
            f"validation of {dd.use_case}/{center} found {summary['errors']} error(s) in "
            f"{summary['bundles_with_errors']} of {count} bundle(s); report: {out}",
            details=_top_rules(summary),
        )
    return summary | timing


def summary_line(summary: dict[str, Any]) -> str:
    """One line per center for the workflow report."""
    sev = summary["by_severity"]
    hl7_part = " + HL7 validator" if summary.get("hl7_validator", {}).get("ran") else ""
    status = "valid" if summary["valid"] else f"INVALID ({summary['bundles_with_errors']} bundles with errors)"
    where = summary.get("where") or f"{summary['use_case']}/{summary['center']}"
    return (
        f"{where}: {summary['bundles']} bundles, {status}; "
        f"{sev['fatal'] + sev['error']} errors, {sev['warning']} warnings{hl7_part}"
    )


def format_text(summary: dict[str, Any], rows: list[dict[str, Any]], limit: int = 50) -> str:
    """A readable report for the command line: the summary, then the first ``limit`` issues."""
    lines = [summary_line(summary)]
    for key, rule in summary["by_rule"].items():
        counts = ", ".join(f"{rule[s]} {s}" for s in SEVERITIES if rule.get(s))
        lines.append(f"  {key}: {counts}")
    shown = [r for r in rows if r["severity"] in {"fatal", "error"}][:limit] or rows[:limit]
    if shown:
        lines.append("")
    for r in shown:
        where = f" {r['location']}" if r["location"] else ""  # a line that is not JSON has no location in it
        lines.append(f"{r['source']}: {r['severity']} [{r['layer']}/{r['rule']}]{where}: {r['message']}")
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more issue(s) (use --format json for all)")
    return "\n".join(lines)


def run_cli(
    use_case: str,
    paths: list[str],
    *,
    dictionaries: str | Path = DICTIONARIES,
    ontologies: str | Path = ONTOLOGIES,
    fmt: str = "text",
) -> tuple[int, str]:
    """``oncofhir validate``: (exit code, output). Exit 1 when any error is found."""
    from ..dictionary import compile_dictionary

    dd = compile_dictionary(Path(dictionaries) / use_case, ontologies)
    context = ValidationContext.create(dd, ontologies=ontologies)
    rows: list[dict[str, Any]] = []
    bad: set[str] = set()
    count = 0
    for source, bundle_id, issues in validate_all(read_bundles(paths), context):
        count += 1
        for issue in issues:
            rows.append(_row(source, bundle_id, issue))
            if issue.is_error:
                bad.add(bundle_id or source)
    where = f"{', '.join(map(str, paths))} ({use_case})"  # the files, never "<use case>/<absolute path>"
    summary = {"use_case": use_case, "center": "", "where": where, **summarize(rows, count, bad)}
    code = 0 if summary["valid"] else 1
    if fmt == "json":
        return code, orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode()
    return code, format_text(summary, rows)


def _bundle_id(path: str) -> str:
    """The Bundle.id of a file the HL7 validator reported on (so both sources count a bundle once)."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return ""
    found = data.get("id") if isinstance(data, dict) else None
    return found if isinstance(found, str) else ""


def read_index(path: str | Path) -> dict[str, tuple[str, str]]:
    """Bundle id -> (record id, pseudonym) from the FHIR stage's index (record_id, patient_key, file, bundle_id...).

    The index holds the record id as a spreadsheet-safe cell: unescaped here, so that issues.tsv, which neutralises
    its cells again, escapes it once (a neutralised id keeps its apostrophe: :func:`oncofhir.tsv.unescape`)."""
    from ..fhir.index import iter_index
    from ..tsv import unescape

    return {
        bundle_id: (unescape(record_id), key)
        for record_id, key, bundle_id in iter_index(path, "record_id", "patient_key", "bundle_id")
    }


def _row(source: str, bundle_id: str, issue: Issue, who: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    record_id, pseudonym = (who or {}).get(bundle_id, ("", ""))
    return {
        "record_id": record_id,
        "pseudonym": pseudonym,
        "source": source,
        "bundle": bundle_id,
        "layer": issue.layer,
        "rule": issue.rule,
        "severity": issue.severity,
        "code": issue.code,
        "location": issue.location,
        "message": issue.message,
    }


def _tsv(rows: list[dict[str, Any]]) -> bytes:
    """The issues as TSV: what :func:`oncofhir.tsv.to_bytes` writes for them, built from the same lines the stage
    streams (:func:`_tsv_lines`)."""
    return _tsv_header() + _tsv_lines(rows)


def _tsv_header() -> bytes:
    return ("\t".join(map(cell, COLUMNS)) + "\n").encode("utf-8")


def _tsv_lines(rows: list[dict[str, Any]]) -> bytes:
    """One line per issue, each cell escaped and spreadsheet-safe (:func:`oncofhir.tsv.cell`)."""
    return "".join("\t".join(cell(r[c]) for c in COLUMNS) + "\n" for r in rows).encode("utf-8")


def _top_rules(summary: dict[str, Any], n: int = 10) -> list[str]:
    errors = [
        (r.get("error", 0) + r.get("fatal", 0), key)
        for key, r in summary["by_rule"].items()
        if r.get("error") or r.get("fatal")
    ]
    return [f"{key}: {count} error(s)" for count, key in sorted(errors, reverse=True)[:n]]
