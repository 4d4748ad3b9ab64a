"""Generalisation of the deposit copy: the plan from the pooled counts, its effect on k and l, and its application to
a bundle on its way into the encrypted file.

Why here and in this shape: rare codes are rare over the whole deposit, so the plan is made once per use case by
the privacy stage from every center's counts (``plan`` in results/privacy/<use_case>.json); each center's
encryption applies that plan to the bundles it reads from the NDJSON, in memory, so the generalised FHIR exists
only encrypted (no second plaintext on disk) while the local pseudonym index, reports and tables keep the exact
values. Generalised resources carry ``meta.security`` ABSTRED (HL7 v3 ObservationValue: "a more abstract version
of the content, e.g., replacing exact value of an age or date field with a range"); a band becomes a FHIR Range
(``Condition.onsetRange``, ``Observation.valueRange``), a grouped code the rule's concept.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import NAMESPACE
from ..dictionary.compiled import CompiledDictionary, load_compiled
from ..dictionary.generalise import uses
from ..errors import InputDataError
from ..fhir.values import DAR_SYSTEM
from .risk import band

Key = tuple[str, ...]
SECURITY = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "ABSTRED",
    "display": "abstracted",
}
#: Counters kept per rule and center: values in = generalised + unchanged (blank or invalid values are not values).
ROUND_TRIP = ("values", "generalised", "unchanged")


def rules(dd: CompiledDictionary) -> list[dict[str, Any]]:
    """The compiled rules of mapping.yaml ``privacy.generalise`` (none: an empty list)."""
    return list((dd.privacy or {}).get("generalise") or [])


def describe(rule: dict[str, Any]) -> str:
    """One line for reports and the crate, without data: ``onsetage in 5-unit bands``."""
    if "bands" in rule:
        return f"{rule['variable']} in {rule['bands']}-unit bands"
    into = rule.get("into_coding") or {}
    return (
        f"{rule['variable']}: codes held by fewer than {rule['group_rare_below']} deposited records grouped into "
        f"{rule['into']} ({into.get('display', '')})"
    )


def band_bounds(number: float, width: int) -> tuple[int, int]:
    """Inclusive bounds of an integer's band: 62, 5 -> (60, 64)."""
    low = int(number // width) * width
    return low, low + width - 1


def make_plan(dd: CompiledDictionary, counts: Counter[Key], qis: list[str]) -> list[dict[str, Any]]:
    """Each rule with what it does to this deposit: the REDCap codes a grouping rule groups (rare over every
    center's deposited records; a blank is not a code)."""
    plan = []
    for rule in rules(dd):
        entry = dict(rule)
        if "group_rare_below" in rule:
            position = qis.index(rule["variable"])
            held: Counter[str] = Counter()
            for key, n in counts.items():
                held[key[position]] += n
            entry["rare_codes"] = sorted(c for c, n in held.items() if c != "" and n < rule["group_rare_below"])
        plan.append(entry)
    return plan


#: The counts-table value a grouped code becomes (a label, never a REDCap code).
GROUPED = "(grouped)"


def key_transform(plan: list[dict[str, Any]], qis: list[str]) -> Callable[[Key], Key]:
    """Maps a counts key (qi values..., [sensitive]) to its generalised key."""
    steps: dict[int, Callable[[str], str]] = {}
    for rule in plan:
        i = qis.index(rule["variable"])
        if "bands" in rule:
            steps[i] = lambda v, w=rule["bands"]: band(v, w)  # the label the what-if bands use
        else:
            rare = frozenset(rule["rare_codes"])
            steps[i] = lambda v, r=rare: GROUPED if v in r else v

    def transform(key: Key) -> Key:
        return tuple(steps[i](v) if i in steps else v for i, v in enumerate(key))

    return transform


def load_plan(dictionary: str | Path, privacy_json: str | Path) -> tuple[CompiledDictionary, list[dict[str, Any]]]:
    """The compiled dictionary and the generalisation plan of the use case's privacy report (empty: no rule); the
    plan must be the dictionary's rules (a report from before a rule changed is refused)."""
    dd = load_compiled(dictionary)
    try:
        report = json.loads(Path(privacy_json).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputDataError(
            f"cannot read the privacy report: {exc}; rerun the privacy stage", path=str(privacy_json)
        ) from None
    if not isinstance(report, dict) or report.get("use_case") != dd.use_case:
        raise InputDataError(f"not the privacy report of use case {dd.use_case}", path=str(privacy_json))
    plan = (report.get("generalisation") or {}).get("plan") or []
    if [{k: v for k, v in r.items() if k != "rare_codes"} for r in plan] != rules(dd):
        raise InputDataError(
            "the privacy report's generalisation plan differs from the dictionary's rules: rerun the privacy stage",
            path=str(privacy_json),
        )
    return dd, plan


class BundleGeneraliser:
    """Applies a use case's plan to its bundles, counting per rule what it changed (counts only)."""

    def __init__(self, dd: CompiledDictionary, plan: list[dict[str, Any]]) -> None:
        self.use_case = dd.use_case
        self.plan = [dict(rule) for rule in plan]
        self.counts = {rule["variable"]: dict.fromkeys(ROUND_TRIP, 0) for rule in plan}
        # slot -> [(rule index, plan element, source, component code or None)]
        self.targets: dict[str, list[tuple[int, str, dict[str, Any], tuple[str, str] | None]]] = {}
        slots = {res["id"]: res for res in dd.resources}
        for r, rule in enumerate(self.plan):
            rare_codings: set[tuple[str, str]] = set()
            for slot, _rtype, element, src in uses(dd.resources, rule["variable"]):
                component = None
                if element == "components":  # a component is found in the bundle by its code
                    spec = next(c for c in slots[slot]["elements"]["components"] if c["value"] is src)
                    component = (spec["code"]["system"], spec["code"]["code"])
                self.targets.setdefault(slot, []).append((r, element, src, component))
                if "rare_codes" in rule:
                    for code in rule["rare_codes"]:
                        coding = ((src.get("map") or {}).get(code) or {}).get("coding")
                        if coding:
                            rare_codings.add((coding["system"], coding["code"]))
            rule["_rare"] = rare_codings

    @property
    def active(self) -> bool:
        return bool(self.plan)

    def apply(self, bundle: dict[str, Any]) -> bool:
        """Generalise ``bundle`` in place; True when anything changed."""
        entries = bundle.get("entry") or []
        patient = next((e["resource"] for e in entries if e.get("resource", {}).get("resourceType") == "Patient"), None)
        identifiers = (patient or {}).get("identifier") or [{}]
        key = identifiers[0].get("value") if isinstance(identifiers[0], dict) else None
        if not key:  # never deposit exact values silently: without the key no resource can be matched to its slot
            raise InputDataError(
                "a bundle without Patient.identifier: its resources cannot be matched to the model to generalise; "
                "rerun the FHIR stage"
            )
        # the builder's deterministic resource ids (oncofhir.fhir.builder.resource_uuid, whose module the deposit
        # stages do not import): the slot of each resource, found from the Patient's identifier
        ids = {str(uuid.uuid5(NAMESPACE, f"{self.use_case}/{key}/{slot}")): slot for slot in self.targets}
        changed = False
        for entry in entries:
            res = entry.get("resource") or {}
            slot = ids.get(res.get("id"))
            if slot is None:
                continue
            touched = False
            for r, element, src, component in self.targets[slot]:
                touched |= self._element(res, element, src, self.plan[r], component)
            if touched:
                meta = res.setdefault("meta", {})
                security = meta.setdefault("security", [])
                if SECURITY not in security:
                    security.append(dict(SECURITY))
                changed = True
        return changed

    def _count(self, rule: dict[str, Any], generalised: bool) -> bool:
        c = self.counts[rule["variable"]]
        c["values"] += 1
        c["generalised" if generalised else "unchanged"] += 1
        return generalised

    def _element(
        self,
        res: dict[str, Any],
        element: str,
        src: dict[str, Any],
        rule: dict[str, Any],
        component: tuple[str, str] | None,
    ) -> bool:
        if "bands" in rule:
            if element == "onsetAge":
                return self._band(res, "onsetAge", "onsetRange", rule)
            if element == "value":
                return self._band(res, "valueQuantity", "valueRange", rule)
            touched = False
            for comp in res.get("component") or []:
                codes = {(c.get("system"), c.get("code")) for c in (comp.get("code") or {}).get("coding") or []}
                if component in codes:
                    touched |= self._band(comp, "valueQuantity", "valueRange", rule)
            return touched
        touched = False
        notes = {e.get("note") for e in (src.get("map") or {}).values() if e and e.get("note")}
        for json_key in _CONCEPT_KEYS.get(element, (element,)):
            if json_key in res:
                touched |= self._group(res[json_key], rule, notes, res)
        return touched

    def _band(
        self,
        holder: dict[str, Any],
        key: str,
        target: str,
        rule: dict[str, Any],
    ) -> bool:
        quantity = holder.get(key)
        if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), int | float):
            return False  # absent (a data-absent-reason): nothing to generalise
        low, high = band_bounds(quantity["value"], rule["bands"])
        bound = {k: v for k, v in quantity.items() if k in ("unit", "system", "code")}
        del holder[key]
        holder[target] = {"low": {"value": low, **bound}, "high": {"value": high, **bound}}
        return self._count(rule, True)

    def _group(self, node: Any, rule: dict[str, Any], notes: set[str], res: dict[str, Any]) -> bool:
        if isinstance(node, list):
            touched = False
            for item in node:
                touched |= self._group(item, rule, notes, res)
            return touched
        if not isinstance(node, dict):
            return False
        if "coding" not in node:
            touched = False
            for value in node.values():  # evidence: [{"code": [CodeableConcept]}]
                if isinstance(value, list | dict):
                    touched |= self._group(value, rule, notes, res)
            return touched
        codings = [(c.get("system"), c.get("code")) for c in node["coding"]]
        if not codings or codings[0][0] == DAR_SYSTEM:
            return False
        if not any(c in rule["_rare"] for c in codings):
            return self._count(rule, False)
        node.clear()
        node["coding"] = [dict(rule["into_coding"])]
        if notes and res.get("note"):  # an answer's own note would name the grouped answer
            kept = [n for n in res["note"] if n.get("text") not in notes]
            if kept:
                res["note"] = kept
            else:
                del res["note"]
        return self._count(rule, True)


#: Plan element -> the JSON properties holding its CodeableConcept(s) (as the builder writes them).
_CONCEPT_KEYS = {
    "medication": ("medicationCodeableConcept",),
    "value": ("valueCodeableConcept",),
}
