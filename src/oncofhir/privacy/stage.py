"""The privacy stage of one use case (its report and release decision) and the release check before encryption.

The decision stays with the data manager (``privacy.action``): ``report`` only measures; ``block`` makes the
encryption of a use case below k refuse to run, with the reason, while the other use cases go on. The JSON and TSV
name quasi-identifier values of small classes: they are local, owner-only files, never deposited. Logs get counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..dictionary.compiled import load_compiled
from ..errors import ConfigError, InputDataError
from ..io_utils import write_private
from ..tsv import write_tsv
from .counts import Key, attributes, read_counts
from .generalise import describe, key_transform, make_plan
from .risk import assess, classes


def _project(counts: Counter[Key], transform: Any) -> Counter[Key]:
    """The counts with every key generalised (classes merge)."""
    out: Counter[Key] = Counter()
    for key, n in counts.items():
        out[transform(key)] += n
    return out


ACTIONS = ("report", "block")
NUMERIC = {"integer", "number", "number_1dp", "number_2dp"}  # as the compiler's numeric validations


def _decision(result: dict[str, Any], use_case: str, action: str) -> dict[str, Any]:
    """Whether the use case may be encrypted, and the message saying why not."""
    k = result["k_required"]
    # what the receiver gets decides: the measures after generalisation when the use case generalises
    measured = {**result, **result.get("after_generalisation", {})}
    after = " after generalisation" if "after_generalisation" in result else ""
    if not result["assessed"]:
        problem = f"use case {use_case}: no quasi_identifiers declared under privacy in its mapping.yaml"
    elif not measured["meets_k"]:
        problem = (
            f"use case {use_case}: k-anonymity{after} is {measured['k']}, below privacy.k = {k}: "
            f"{measured['records_below_k']} of {measured['records']} record(s) are in "
            f"{measured['classes_below_k']} class(es) smaller than {k} over {', '.join(result['quasi_identifiers'])}"
        )
    else:
        problem = ""
    blocked = bool(problem) and action == "block"
    message = problem
    if blocked:  # the message is shown after this report's own path (check_release), wherever `results` lies
        fix = (
            "declare privacy: {quasi_identifiers: [...]} in its mapping.yaml, docs/dictionary-format.md"
            if not result["assessed"]
            else "this report lists what would reach k"
        )
        message += f"; privacy.action is block, so it is not encrypted ({fix}; or set privacy.action: report)"
    return {"action": action, "blocked": blocked, "message": message}


def stage_privacy(
    dictionary: str | Path, counts: list[str | Path], json_out: str | Path, tsv_out: str | Path, k: int, action: str
) -> str:
    """Sum the centers' counts, measure the risk, write the report (JSON, TSV of every class); one log line."""
    if action not in ACTIONS or k < 1:
        raise ConfigError(f"privacy: action must be one of {', '.join(ACTIONS)} and k at least 1")
    dd = load_compiled(dictionary)
    qis, sensitive = attributes(dd)
    total: Counter[Key] = Counter()
    for path in counts:
        total.update(read_counts(path, qis, sensitive))
    if qis:
        numeric = {qi for qi in qis if qi in dd.fields and dd.fields[qi].validation in NUMERIC}
        result = {"use_case": dd.use_case, "assessed": True, **assess(total, qis, sensitive, k, numeric)}
        plan = make_plan(dd, total, qis)
        result["generalisation"] = {"rules": [describe(rule) for rule in plan], "plan": plan}
        if plan:
            after = assess(_project(total, key_transform(plan, qis)), qis, sensitive, k, set())
            result["after_generalisation"] = {
                name: after[name]
                for name in ("records", "classes", "k", "l", "records_below_k", "classes_below_k", "meets_k")
            }
            result["after_generalisation"]["smallest_classes"] = after["smallest_classes"]
    else:
        result = {"use_case": dd.use_case, "assessed": False, "k_required": k, "records": sum(total.values())}
    result["release"] = _decision(result, dd.use_case, action)
    write_private(json_out, (json.dumps(result, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    # opened in a spreadsheet: through the shared writer (formula neutralisation), owner-only
    write_tsv(tsv_out, [*qis, "records", "sensitive_values", "below_k"], _classes_rows(total, qis, sensitive, k))
    if not qis:
        return f"{dd.use_case}: not assessed (no quasi-identifiers declared)"
    after = result.get("after_generalisation")
    return (
        f"{dd.use_case}: {result['records']} records, {result['classes']} classes, k={result['k']}, l={result['l']}, "
        f"{result['records_below_k']} record(s) below k={k}"
        + (
            f"; after generalisation {after['classes']} classes, k={after['k']}, l={after['l']}, "
            f"{after['records_below_k']} record(s) below k"
            if after
            else ""
        )
        + (", BLOCKED" if result["release"]["blocked"] else "")
    )


def _classes_rows(total: Counter[Key], qis: list[str], sensitive: str | None, k: int) -> Iterator[list[object]]:
    """Every equivalence class, smallest first: its values, size, distinct sensitive values, below k or not."""
    width = len(qis)
    sizes = classes(total, width)
    distinct: Counter[Key] = Counter(key[:width] for key in total) if sensitive else Counter()
    for key, n in sorted(sizes.items(), key=lambda item: (item[1], item[0])):
        # without quasi-identifiers the one row counts the records; nothing was measured against k
        below = ("yes" if n < k else "no") if width else ""
        yield [*key, n, distinct[key] if sensitive else "", below]


def check_release(privacy_json: str | Path) -> str:
    """Raise (exit 4, the message) if the use case's privacy decision blocks its encryption; else a log line."""
    try:
        decision = json.loads(Path(privacy_json).read_text(encoding="utf-8"))["release"]
    except (OSError, ValueError, KeyError, TypeError) as exc:  # missing, not JSON, or not a privacy report
        raise InputDataError(
            f"cannot read the privacy decision ({type(exc).__name__}: {exc}); rerun the privacy stage",
            path=str(privacy_json),
        ) from None
    if decision["blocked"]:
        raise InputDataError(decision["message"], path=str(privacy_json))
    return decision["message"] or "privacy: release allowed"
