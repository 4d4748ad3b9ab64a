"""Cross-use-case consistency: one meaning, one code.

The five use cases are pooled for AI, so a variable that two use cases share, with the same answers, must give the
same concepts for the same answers: otherwise "no" from one hospital and "no" from another land in the pooled data
as two different findings, and nothing downstream can tell. This check compares every variable name shared by two
or more compiled dictionaries whose choice labels are the same (same codes, same labels ignoring case and spaces),
answer by answer, over every coded source the variable feeds (value, code, bodySite, … and value-set maps). A use
case may code a shared variable its own way only by declaring it (``variables: {v: {own_coding: "reason"}}`` in
its mapping.yaml), so a difference is always a documented decision, never an accident.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .compiled import CompiledDictionary

#: An answer's meaning: its coding as ``alias:code`` and, for subtype-by-proxy answers, its component codings.
Meaning = tuple[str, ...]


def _coded_sources(node: Any) -> Iterator[dict[str, Any]]:
    """Every compiled ``coded`` source below ``node`` (resource elements, components, evidence, units)."""
    if isinstance(node, dict):
        if node.get("kind") == "coded" and isinstance(node.get("map"), dict):
            yield node
        for value in node.values():
            yield from _coded_sources(value)
    elif isinstance(node, list):
        for item in node:
            yield from _coded_sources(item)


def _ref(coding: dict[str, str] | None, aliases: dict[str, str]) -> str:
    if not coding:
        return "(no coding)"
    return f"{aliases.get(coding['system'], coding['system'])}:{coding['code']}"


def _meaning(answer: dict[str, Any] | None, aliases: dict[str, str]) -> Meaning:
    if answer is None:
        return ("(no coding)",)
    parts = [_ref(answer.get("coding"), aliases)]
    for comp in answer.get("components") or []:
        parts.append(f"{_ref(comp.get('code'), aliases)}={_ref(comp.get('value'), aliases)}")
    return tuple(parts)


def answer_meanings(dd: CompiledDictionary) -> dict[str, dict[str, set[Meaning]]]:
    """{variable: {choice code: meanings}} over every coded source of the dictionary."""
    aliases = {spec["uri"]: alias for alias, spec in dd.systems.items()}
    out: dict[str, dict[str, set[Meaning]]] = {}
    for source in _coded_sources([r["elements"] for r in dd.resources]):
        per_code = out.setdefault(source["variable"], {})
        for code, answer in source["map"].items():
            per_code.setdefault(code, set()).add(_meaning(answer, aliases))
    return out


def _label(label: str) -> str:
    return " ".join(label.casefold().split())


def _show(meanings: set[Meaning]) -> str:
    return " + ".join(sorted(", ".join(m) for m in meanings)) or "(not mapped)"


def inconsistent_codings(dictionaries: Iterable[CompiledDictionary]) -> list[str]:
    """One problem per (shared variable, answer) coded differently by use cases that do not declare ``own_coding``.

    Answers are compared where two or more use cases have a variable of that name with the same choice code and
    the same label (case and spacing aside): a use case whose choices are a superset (pM1d) or whose labels differ
    is still compared on the answers that agree. A problem names the variable, the answer, and each use case with
    the concepts it uses, the majority first: the use case listed last is usually the one to fix.
    """
    dds = sorted(dictionaries, key=lambda d: d.use_case)
    meanings = {dd.use_case: answer_meanings(dd) for dd in dds}
    answers: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    labels: dict[tuple[str, str, str], str] = {}
    for dd in dds:
        for name, field in dd.fields.items():
            if not field.choices or name not in meanings[dd.use_case] or field.own_coding:
                continue
            for code, label in field.choices.items():
                shown = _show(meanings[dd.use_case][name].get(code, set()))
                key = (name, code, _label(label))
                answers.setdefault(key, []).append((dd.use_case, shown))
                labels.setdefault(key, label)
    problems: list[str] = []
    for key, members in sorted(answers.items()):
        name, code, label = key[0], key[1], labels[key]
        by_meaning: dict[str, list[str]] = {}
        for use_case, shown in members:
            by_meaning.setdefault(shown, []).append(use_case)
        if len(by_meaning) < 2:
            continue
        ordered = sorted(by_meaning.items(), key=lambda kv: (-len(kv[1]), kv[1]))
        where = "; ".join(f"{', '.join(ucs)}: {shown}" for shown, ucs in ordered)
        problems.append(
            f"variable '{name}', answer {code} '{label}' is coded differently across use cases ({where}): "
            f"code it the same, or declare the exception in the differing use case's mapping.yaml as "
            f"variables: {{{name}: {{own_coding: <reason>}}}}"
        )
    return problems
