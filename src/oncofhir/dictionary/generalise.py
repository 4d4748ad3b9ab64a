"""Generalisation rules of mapping.yaml ``privacy.generalise``: checked and compiled with the dictionary.

Why at compile time: a rule that cannot be applied to every FHIR element its variable feeds would leave the exact
value in the deposit while the privacy report counts it as generalised. So the compiler finds every use of the
variable in the resource plans and refuses (naming the rule) any it cannot generalise: a band needs an integer
variable that feeds only quantities a FHIR Range can replace (``Condition.onsetAge`` -> ``onsetRange``,
``Observation.valueQuantity`` and a component's -> ``valueRange``); grouping needs a coded variable that feeds only
CodeableConcepts, one concept per code, and decides no resource's presence. Compiling also marks the sources
(``bands`` on a quantity, ``group_rare`` with the target coding on a coded source), so the IG profiles and the
validator's model accept the generalised form without a second description of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..logic import parse

#: Resource types and plan elements whose quantity a Range can replace (base R4B choice types).
BANDABLE = {("Condition", "onsetAge"), ("Observation", "value"), ("Observation", "components")}


def rule_name(index: int, rule: dict[str, Any]) -> str:
    """How messages name a rule: its position (1-based) and variable."""
    return f"privacy, generalise rule {index + 1} ({rule.get('variable')})"


def uses(resources: list[dict[str, Any]], variable: str) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(slot, resource type, plan element, source) of every source reading ``variable``, nested ones included
    (evidence lists, components, dosage parts, a quantity's unit variable)."""
    for res in resources:
        for element, src in res["elements"].items():
            for found in _sources(src):
                if found.get("variable") == variable:
                    yield res["id"], res["type"], element, found


def _sources(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "kind" in node:
            yield node
        for value in node.values():
            yield from _sources(value)
    elif isinstance(node, list):
        for item in node:
            yield from _sources(item)


def check_and_mark(
    privacy: dict[str, Any],
    resources: list[dict[str, Any]],
    fields: dict[str, Any],
    concept: Any,
) -> list[str]:
    """Problems of ``privacy['generalise']`` (each naming its rule); when there are none, every rule gets its
    resolved target (``into_coding``) and the sources it acts on are marked. ``concept`` resolves a concept
    reference (the compiler's, which records its own problem for an unknown one and returns None)."""
    rules = privacy.get("generalise") or []
    problems: list[str] = []
    qis = set(privacy.get("quasi_identifiers", []))
    seen: set[str] = set()
    marks: list[tuple[dict[str, Any], str, Any]] = []
    for i, rule in enumerate(rules):
        name, variable = rule_name(i, rule), rule["variable"]
        if variable in seen:
            problems.append(f"{name}: a second rule for '{variable}' (one rule per variable)")
            continue
        seen.add(variable)
        if variable == "center":
            problems.append(f"{name}: 'center' cannot be generalised (it names the deposit's files)")
            continue
        field = fields.get(variable)
        if field is None:
            problems.append(f"{name}: unknown variable '{variable}' (not in the REDCap dictionary)")
            continue
        if variable not in qis:
            problems.append(
                f"{name}: '{variable}' is not a quasi-identifier: list it in privacy.quasi_identifiers, so that "
                "the report measures what the rule changes"
            )
            continue
        found = list(uses(resources, variable))
        if not found:
            problems.append(f"{name}: '{variable}' feeds no resource")
            continue
        if "bands" in rule:
            problems += _check_bands(name, variable, field, found)
            marks += [(src, "bands", rule["bands"]) for _, _, _, src in found]
        else:
            coding = concept(rule["into"], name + ", into")
            problems += _check_grouping(name, variable, found, resources)
            rule["into_coding"] = coding
            group = {"below": rule["group_rare_below"], "into": coding}
            marks += [(src, "group_rare", group) for _, _, _, src in found]
    if not problems:
        for src, key, value in marks:
            src[key] = value
    return problems


def _check_bands(name: str, variable: str, field: Any, found: list[tuple[str, str, str, dict[str, Any]]]) -> list[str]:
    if field.validation != "integer":
        what = field.validation or field.type
        return [f"{name}: bands need an integer variable, '{variable}' is '{what}' (a Range's bounds are inclusive)"]
    return [
        f"{name}: '{variable}' feeds {rtype} '{slot}' {element} as a {src['kind']}, which a band (FHIR Range) cannot "
        "replace: only Condition.onsetAge and Observation values or components"
        for slot, rtype, element, src in found
        if src["kind"] != "quantity" or (rtype, element) not in BANDABLE
    ]


def _check_grouping(
    name: str, variable: str, found: list[tuple[str, str, str, dict[str, Any]]], resources: list[dict[str, Any]]
) -> list[str]:
    problems = []
    for slot, rtype, element, src in found:
        if src["kind"] != "coded":
            problems.append(
                f"{name}: '{variable}' feeds {rtype} '{slot}' {element} as a {src['kind']} (a FHIR code or a "
                "quantity's unit), which cannot take the grouped concept: only CodeableConcepts can"
            )
            continue
        targets: dict[tuple[str, str], str] = {}
        for code, entry in (src.get("map") or {}).items():
            if entry and entry.get("components"):
                problems.append(f"{name}: answer '{code}' in {rtype} '{slot}' {element} adds components")
            coding = (entry or {}).get("coding")
            if coding:
                key = (coding["system"], coding["code"])
                if key in targets:
                    problems.append(
                        f"{name}: answers '{targets[key]}' and '{code}' map to the same concept in '{slot}' "
                        f"{element}: grouping by code needs one concept per code"
                    )
                targets[key] = code
    for res in resources:
        if any(_tests_a_code(text, variable) for text in res.get("when") or []):
            problems.append(
                f"{name}: '{variable}' decides whether resource '{res['id']}' exists (its when), which a grouped "
                "code would still reveal"
            )
    return problems


def _tests_a_code(text: str, variable: str) -> bool:
    """Whether REDCap logic compares ``variable`` with a value (``[histopat] = '2'``): a resource present only for
    some codes reveals them. Testing for a blank (``[histopat] <> ""``) reveals nothing a grouped code hides."""
    if variable not in {v.split("___", 1)[0] for v in parse(text).variables}:
        return False
    name = re.escape(variable)
    value = r"""(?:'[^']+'|"[^"]+"|-?[0-9.]+)"""
    operator = r"(?:=|<>|!=|<=|>=|<|>)"
    return bool(
        re.search(rf"\[{name}(?:___[^\]]*)?\]\s*{operator}\s*{value}", text)
        or re.search(rf"{value}\s*{operator}\s*\[{name}(?:___[^\]]*)?\]", text)
    )
