"""Clinical searches derived from a use case's dictionary, to check that the loaded codes are searchable.

From the compiled dictionary's resource slots: each Observation slot with a fixed code and a coded value gives one
search per answer (``Observation?code=<system>|<code>&value-concept=<system>|<code>``), each Condition slot with a
fixed code one search (``Condition?code=<system>|<code>``). The first :data:`PER_KIND` slots of each kind are taken,
in dictionary order, so the choice is the same on every run. A search is narrowed to the slot's profile
(``_profile``) when the bundles claim it (``fhir.claim_profiles``, the default), so each use case is counted on its
own even when two use cases share a code; without profiles it counts every use case, and the expected count is
then the sum over all of them.

The expected count comes from the bundles: :meth:`Search.matches` applies the same criteria to each resource.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..ig.names import fhir_id

#: Slots of each kind (coded Observation, coded Condition) turned into searches, per use case.
PER_KIND = 3
#: Codes a token search can carry as they are (a post-coordinated SNOMED expression such as ``a:b=c`` cannot).
_PLAIN_CODE = re.compile(r"^[A-Za-z0-9.\-]+$")


@dataclass(frozen=True)
class Search:
    """One clinical search of a use case: a resource type, a code and (Observations) a coded value."""

    use_case: str
    slot: str
    resource_type: str
    code: tuple[str, str]
    value: tuple[str, str] | None
    label: str

    @property
    def profile_suffix(self) -> str:
        """How the slot's profile URL ends (``/StructureDefinition/uc1.hep-b``), whatever the canonical base."""
        return f"/StructureDefinition/{fhir_id(self.use_case, self.slot)}"

    def params(self, profile: str | None) -> list[tuple[str, str]]:
        """The search parameters, narrowed to ``profile`` when the bundles claim one."""
        out = [("code", f"{self.code[0]}|{self.code[1]}")]
        if self.value is not None:
            out.append(("value-concept", f"{self.value[0]}|{self.value[1]}"))
        if profile:
            out.append(("_profile", profile))
        return out

    def matches(self, resource: dict[str, Any], profile: str | None) -> bool:
        """Whether ``resource`` is one the search finds (same type, code, value and, if given, profile)."""
        if resource.get("resourceType") != self.resource_type:
            return False
        if profile and profile not in (resource.get("meta") or {}).get("profile", ()):
            return False
        if not _has_coding(resource.get("code"), self.code):
            return False
        return self.value is None or _has_coding(resource.get("valueCodeableConcept"), self.value)


def _has_coding(concept: Any, wanted: tuple[str, str]) -> bool:
    if not isinstance(concept, dict):
        return False
    return any(isinstance(c, dict) and (c.get("system"), c.get("code")) == wanted for c in concept.get("coding") or ())


def _coding(element: Any) -> tuple[str, str] | None:
    """The (system, code) of a fixed or mapped coding element, when a token search can carry it."""
    coding = element.get("coding") if isinstance(element, dict) else None
    if not isinstance(coding, dict) or not coding.get("system") or not coding.get("code"):
        return None
    code = str(coding["code"])
    return (str(coding["system"]), code) if _PLAIN_CODE.match(code) else None


def clinical_searches(use_case: str, resources: Iterable[dict[str, Any]]) -> list[Search]:
    """The use case's clinical searches, from its compiled dictionary's resource slots (see the module's doc)."""
    observations: list[Search] = []
    conditions: list[Search] = []
    for slot in resources:
        elements = slot.get("elements") or {}
        code_element = elements.get("code") or {}
        if code_element.get("kind") != "fixed":
            continue
        code = _coding(code_element)
        if code is None:
            continue
        if slot.get("type") == "Observation" and len(observations) < PER_KIND * 10:
            value = elements.get("value") or {}
            if value.get("kind") != "coded" or not isinstance(value.get("map"), dict):
                continue
            answers = [a for a in (_coding(v) for v in value["map"].values()) if a is not None]
            if not answers or len({s.slot for s in observations}) >= PER_KIND:
                continue
            for answer in answers:
                label = f"{use_case} {slot['id']}: Observation code {code[1]}, value {answer[1]}"
                observations.append(Search(use_case, slot["id"], "Observation", code, answer, label))
        elif slot.get("type") == "Condition" and len(conditions) < PER_KIND:
            label = f"{use_case} {slot['id']}: Condition code {code[1]}"
            conditions.append(Search(use_case, slot["id"], "Condition", code, None, label))
    return observations + conditions
