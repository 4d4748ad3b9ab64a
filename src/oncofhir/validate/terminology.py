"""Layer 5, terminology: every coded value is one the project knows, spelled as the project spells it.

Each Coding's system must be one of ``resources/ontologies/systems.yaml``, its code a row of that system's table
with exactly that display; SNOMED CT identifiers carry a Verhoeff check digit and LOINC codes a mod-10 one (the
checks of :mod:`oncofhir.terminology`, also used by the dictionary linter), ICD-O-3 morphology codes have the form
``MMMM/B``. Quantities in UCUM must parse as UCUM (:mod:`~oncofhir.validate.ucum`) and be in the UCUM table with
their display as the unit text. The most specific finding is reported alone: a code with a wrong check digit is
not also reported as unknown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..ontology import Ontology
from ..terminology import CHECKS, icdo3_morphology_ok
from .issues import Issue, join
from .ucum import Ucum
from .walk import Node

LAYER = "terminology"
UCUM = "http://unitsofmeasure.org"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
_ANNOTATION = re.compile(r"\{([^}]*)\}")
QUANTITIES = {"Quantity", "Age", "Duration", "Count", "Distance"}
_Finding = tuple[str, str, str, str, str]  # severity, code, location below the node, message, rule


@dataclass(frozen=True, slots=True)
class System:
    """One code system as the terminology layer needs it."""

    alias: str
    uri: str
    codes: dict[str, str]
    check: Callable[[str], bool] | None
    check_rule: str


class Terminology:
    """Checks codings and quantities against the ontology tables."""

    def __init__(self, ontology: Ontology, ucum: Ucum) -> None:
        self.systems: dict[str, System] = {}
        for alias, cs in ontology.systems.items():
            check = CHECKS.get(cs.check_digit or "")
            rule = "check-digit"
            if cs.uri == ICDO3:
                check, rule = icdo3_morphology_ok, "code-format"
            self.systems[cs.uri] = System(alias, cs.uri, ontology.codes.get(alias, {}), check, rule)
        self.ucum = ucum
        self._coding = lru_cache(maxsize=65536)(self._coding_findings)
        self._quantity = lru_cache(maxsize=65536)(self._quantity_findings)

    @classmethod
    def load(cls, ontology_dir: str | Path, ucum: Ucum) -> Terminology:
        """From a ``resources/ontologies`` folder."""
        return cls(Ontology.load(ontology_dir), ucum)

    def known(self, system: str, code: str) -> bool:
        """True for a code this layer accepts (known system, valid format, in the table)."""
        if system == UCUM and not self.ucum.valid(code):
            return False
        cs = self.systems.get(system)
        return cs is not None and (cs.check is None or cs.check(code)) and code in cs.codes

    def check(self, nodes: Iterable[Node]) -> list[Issue]:
        """Issues of the codings and quantities among ``nodes``."""
        issues = []
        for node in nodes:
            value = node.value
            if not isinstance(value, dict) or node.extension_part:
                continue
            kind = node.type.split("/", 1)[0]
            if kind == "Coding":
                found = self._coding(_s(value.get("system")), _s(value.get("code")), _s(value.get("display")))
            elif kind in QUANTITIES and ("code" in value or "system" in value):
                found = self._quantity(_s(value.get("system")), _s(value.get("code")), _s(value.get("unit")))
            else:
                continue
            for severity, code, below, message, rule in found:
                issues.append(Issue(severity, code, join(node.location, below), message, rule, LAYER))
        return issues

    def _coding_findings(self, system: str | None, code: str | None, display: str | None) -> tuple[_Finding, ...]:
        if system is None:
            return (("error", "required", "system", "a coding needs a system", "coding-system"),)
        cs = self.systems.get(system)
        if cs is None:
            known = ", ".join(sorted(self.systems))
            return (
                (
                    "error",
                    "code-invalid",
                    "system",
                    f"unknown code system '{system}' (known: {known})",
                    "unknown-system",
                ),
            )
        if code is None:
            return (("error", "required", "code", f"a {cs.alias} coding needs a code", "coding-code"),)
        return self._code(cs, code, display, "display", "wrong-display")

    def _code(self, cs: System, code: str, display: str | None, field: str, display_rule: str) -> tuple[_Finding, ...]:
        if cs.check is not None and not cs.check(code):
            what = "check digit" if cs.check_rule == "check-digit" else "format"
            return (
                ("error", "code-invalid", "code", f"{cs.alias} code '{code}' has an invalid {what}", cs.check_rule),
            )
        expected = cs.codes.get(code)
        if expected is None:
            return (
                (
                    "error",
                    "code-invalid",
                    "code",
                    f"{cs.alias} code '{code}' is not in resources/ontologies/{cs.alias}.tsv",
                    "unknown-code",
                ),
            )
        if display is None:
            return (("warning", "required", field, f"{cs.alias} code '{code}' has no {field}", display_rule),)
        if display != expected:
            return (
                (
                    "error",
                    "code-invalid",
                    field,
                    f"{cs.alias} code '{code}' has {field} '{display}'; the ontology table says '{expected}'",
                    display_rule,
                ),
            )
        return ()

    def _quantity_findings(self, system: str | None, code: str | None, unit: str | None) -> tuple[_Finding, ...]:
        if system is None or code is None:
            return ()  # qty-3 and the profile layer cover a unit without system; no code means no unit to check
        if system == UCUM and not self.ucum.valid(code):
            return (("error", "code-invalid", "code", f"'{code}' is not a valid UCUM unit", "ucum-syntax"),)
        cs = self.systems.get(system)
        if cs is None:
            return (("error", "code-invalid", "system", f"unknown unit system '{system}'", "unknown-system"),)
        found = self._code(cs, code, unit, "unit", "unit-display")
        missing = [a for a in _ANNOTATION.findall(code) if unit is not None and a not in unit]
        if system == UCUM and missing and not found:
            found = (
                (
                    "warning",
                    "business-rule",
                    "unit",
                    f"UCUM annotations are ignored when comparing units: the unit text '{unit}' should carry "
                    f"{', '.join('{' + a + '}' for a in missing)} (the HL7 validator's best practice)",
                    "ucum-annotation",
                ),
            )
        return found


def _s(value: object) -> str | None:
    return value if isinstance(value, str) else None
