"""Layer 2, cardinality and bindings: required elements present, repetitions within bounds, one choice type,
and codes from the value sets that core FHIR binds with strength *required*.

Everything here comes from the StructureDefinition snapshots (vendored, derived by resources/fhir/fetch.py). Value
sets are pre-expanded from the core package; the two that cannot be enumerated offline (MIME types, currencies) are
not checked, as the HL7 validator does without a terminology server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .definitions import Definitions
from .issues import Issue, join
from .walk import Node

LAYER = "cardinality"
_CODED = {"code", "Coding", "CodeableConcept"}


def check(defs: Definitions, nodes: Iterable[Node]) -> list[Issue]:
    """Cardinality, choice and required-binding issues of the walked nodes (locations relative to the walk)."""
    issues: list[Issue] = []
    for node in nodes:
        if isinstance(node.value, dict) and node.owner is not None and not node.extension_part:
            issues += _elements(node)
        el = node.element
        if el is not None and el.binding and node.type.split("/", 1)[0] in _CODED and not node.extension_part:
            issues += _binding(defs, node, el.binding)
        if node.type == "Extension" and isinstance(node.value, dict):
            issues += _extension(defs, node)
    return issues


def _elements(node: Node) -> list[Issue]:
    issues = []
    value = node.value
    owner = node.owner
    assert owner is not None
    present: dict[str, list[str]] = {}  # element path -> JSON properties carrying it (`_x` counts as present)
    for key in value:
        found = owner.children.get((node.path, key[1:] if key.startswith("_") else key))
        if found is not None:
            present.setdefault(found[0].path, []).append(key)
    for el in owner.below.get(node.path, ()):
        keys = present.get(el.path, ())
        if not keys:
            if el.min >= 1:
                name = el.name.replace("[x]", "")
                issues.append(
                    Issue(
                        "error",
                        "required",
                        join(node.location, name),
                        f"required element '{el.name}' ({el.owner}.{el.path}, {el.min}..{el.max}) is missing",
                        "cardinality-min",
                        LAYER,
                    )
                )
            continue
        if el.is_choice:
            names = {k.lstrip("_") for k in keys}
            if len(names) > 1:
                issues.append(
                    Issue(
                        "error",
                        "structure",
                        join(node.location, sorted(names)[1]),
                        f"'{el.name}' takes one type; found {', '.join(sorted(names))}",
                        "cardinality-choice",
                        LAYER,
                    )
                )
        if el.max == "0":
            issues.append(
                Issue(
                    "error",
                    "structure",
                    join(node.location, el.name),
                    f"'{el.name}' is not allowed here ({el.owner}.{el.path} has max 0)",
                    "cardinality-max",
                    LAYER,
                )
            )
        elif el.max not in {"1", "*"}:
            items = value.get(el.name)
            if isinstance(items, list) and len(items) > int(el.max):
                issues.append(
                    Issue(
                        "error",
                        "structure",
                        join(node.location, el.name),
                        f"'{el.name}' repeats {len(items)} times; at most {el.max} allowed",
                        "cardinality-max",
                        LAYER,
                    )
                )
    return issues


def _in(codes: dict[str, frozenset[str]], system: Any, code: Any) -> bool:
    return isinstance(code, str) and code in codes.get(system, frozenset()) if system is not None else False


def _binding(defs: Definitions, node: Node, url: str) -> list[Issue]:
    codes = defs.codes.get(url)
    if codes is None:  # not enumerable offline
        return []
    kind = node.type.split("/", 1)[0]
    value = node.value
    if kind == "code":
        if any(isinstance(value, str) and value in c for c in codes.values()):
            return []
        allowed = sorted({c for cs in codes.values() for c in cs})
        return [_invalid(node, url, f"'{value}' is not in {url} (allowed: {', '.join(allowed)})")]
    if kind == "Coding":
        if isinstance(value, dict) and _in(codes, value.get("system"), value.get("code")):
            return []
        return [_invalid(node, url, f"{_coding(value)} is not in the required value set {url}")]
    codings = value.get("coding") if isinstance(value, dict) else None
    if not codings:
        return [
            _invalid(
                node,
                url,
                f"no code provided, and a code is required from {url} (an element that is only a data-absent-reason"
                " extension cannot satisfy a required binding: leave the element out)",
            )
        ]
    issues = []
    matched = False
    for i, coding in enumerate(codings):
        if not isinstance(coding, dict):
            continue
        system = coding.get("system")
        if _in(codes, system, coding.get("code")):
            matched = True
        elif system in codes:
            issues.append(
                _invalid(node, url, f"{_coding(coding)} is not in the required value set {url}", f"coding[{i}].code")
            )
    if not matched and not issues:
        issues.append(_invalid(node, url, f"none of the codings is from the required value set {url}"))
    return issues


def _invalid(node: Node, url: str, message: str, below: str = "") -> Issue:
    loc = join(node.location, below) if below else node.location
    return Issue("error", "code-invalid", loc, message, "required-binding", LAYER)


def _coding(value: Any) -> str:
    if not isinstance(value, dict):
        return repr(value)
    return f"{value.get('system', '(no system)')}|{value.get('code', '(no code)')}"


def _extension(defs: Definitions, node: Node) -> list[Issue]:
    url = node.value.get("url")
    spec = defs.extensions.get(url) if isinstance(url, str) else None
    if spec is None:
        if isinstance(url, str):
            return [
                Issue(  # an error, as in the HL7 validator: an unknown extension may change the meaning
                    "error",
                    "not-supported",
                    node.location,
                    f"extension '{url}' is not one oncofhir knows (known: {', '.join(sorted(defs.extensions))})",
                    "extension-unknown",
                    LAYER,
                )
            ]
        return []
    issues = []
    values = [k for k in node.value if k.startswith("value")]
    allowed = {"value" + t.split("/", 1)[0][0].upper() + t.split("/", 1)[0][1:] for t in spec.get("types", [])}
    for key in values:
        if key not in allowed:
            issues.append(
                Issue(
                    "error",
                    "structure",
                    join(node.location, key),
                    f"extension {url} takes {', '.join(sorted(allowed))}, not {key}",
                    "extension-type",
                    LAYER,
                )
            )
    binding = spec.get("binding")
    codes = defs.codes.get(binding) if binding else None
    if codes is not None:
        for key in values:
            code = node.value[key]
            if key in allowed and isinstance(code, str) and not any(code in c for c in codes.values()):
                issues.append(
                    Issue(
                        "error",
                        "code-invalid",
                        join(node.location, key),
                        f"'{code}' is not in {binding}",
                        "required-binding",
                        LAYER,
                    )
                )
    return issues
