"""Where each dictionary variable lands in a bundle: one :class:`Binding` per (variable, resource slot, element).

The compiled dictionary's resource plans are the single source: the builder (oncofhir.fhir.builder) reads them to
write the bundles, this module reads them to find the values again. Each slot becomes a FHIRPath selector over the
Bundle that picks its resource by what is fixed about it (type, fixed code, category, method, body site, note);
slots that nothing fixed tells apart (e.g. uc7's five neoadjuvant agents) are picked by their position among the
look-alikes, which holds because the builder emits entries in plan order and such slots are chained (a later one is
emitted only after the earlier one). The round trip (oncofhir.views.roundtrip) proves it on every center's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..dictionary.compiled import CompiledDictionary
from ..fhir.values import DAR_EXTENSION

#: The kinds of binding, i.e. how a variable's value is written: a CodeableConcept from an answer map, a number
#: with a unit, the unit of a quantity from an answer map, an anonymised period, a FHIR code/boolean from a map.
KINDS = ("coded", "quantity", "unit", "period", "status")


@dataclass(slots=True)
class Binding:
    """One place a variable's value is written, with the FHIRPath (relative to the slot's resource) to read it."""

    variable: str
    slot: str
    resource_type: str
    kind: str
    element: str  # FHIRPath to the element holding the value, relative to the resource
    absent: str | None  # FHIRPath to the data-absent-reason code, relative to the resource
    source: dict[str, Any]  # the compiled source (map, unit, ...)
    primary: bool = False
    unit: dict[str, Any] | None = None  # quantity: the fixed unit coding
    extra: dict[str, str] = field(default_factory=dict)  # more columns: suffix -> FHIRPath (text, components)


def quote(text: str) -> str:
    """A FHIRPath string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def coding_test(coding: dict[str, Any]) -> str:
    """FHIRPath criteria true for a Coding with this system and code."""
    return f"system = {quote(coding['system'])} and code = {quote(coding['code'])}"


def _dar(element: str) -> str:
    return f"{element}.extension({quote(DAR_EXTENSION)}).value.ofType(code).first()"


# -- slot selectors ---------------------------------------------------------------------------------------------


def _features(res: dict[str, Any]) -> list[str]:
    """FHIRPath criteria true of every resource the slot can produce (its fixed elements and note)."""
    el = res["elements"]
    out = []
    for key, path in (("code", "code"), ("medication", "medication.ofType(CodeableConcept)"), ("category", "category"),
                      ("method", "method"), ("bodySite", "bodySite")):  # fmt: skip
        src = el.get(key)
        if isinstance(src, dict) and src.get("kind") == "fixed" and "coding" in src:
            out.append(f"{path}.coding.exists({coding_test(src['coding'])})")
    for comp in el.get("components", []):
        out.append(f"component.code.coding.exists({coding_test(comp['code'])})")
    if res.get("note"):
        out.append(f"note.exists(text = {quote(res['note'])})")
    return out


def slot_selectors(dd: CompiledDictionary) -> dict[str, str]:
    """slot id -> FHIRPath from the Bundle to the slot's resource (at most one per bundle).

    Each selector uses the fewest fixed features that set the slot apart from the other slots of its type (the
    first is answered from an index, each further one costs an evaluation per candidate), then excludes slots whose
    features include all of its own, then takes the position among slots that nothing fixed tells apart.
    """
    slots = [r for r in dd.resources if r["type"] != "DiagnosticReport"]
    feats = {r["id"]: _features(r) for r in slots}
    out: dict[str, str] = {}
    for res in slots:
        rid, rtype = res["id"], res["type"]
        if rtype == "Patient":
            out[rid] = "entry.resource.ofType(Patient)"
            continue
        others = [o for o in slots if o["type"] == rtype and o["id"] != rid]
        mine = set(feats[rid])
        crit: list[str] = feats[rid][:1]
        while True:  # greedily add the feature that rules out most of the slots still matching
            rivals = [set(feats[o["id"]]) for o in others if set(crit) <= set(feats[o["id"]])]
            gains = {f: sum(f not in r for r in rivals) for f in feats[rid] if f not in crit}
            if not rivals or not gains or max(gains.values()) == 0:
                break
            crit.append(max(gains, key=lambda f: gains[f]))
        twins: list[str] = []
        used = set(crit)
        for other in others:
            theirs = set(feats[other["id"]])
            if not used <= theirs:
                continue
            if theirs == mine:
                twins.append(other["id"])
            elif mine < theirs:  # the other slot matches all my criteria: exclude what only it has
                extra = [f for f in feats[other["id"]] if f not in mine]
                clause = f"({' and '.join(extra)}).not()"
                if clause not in crit:
                    crit.append(clause)
            else:  # it differs in a feature I have not used yet: use them all
                crit.extend(f for f in feats[rid] if f not in crit)
                used = set(feats[rid])
        base = f"entry.resource.ofType({rtype})"
        if crit:
            base += f".where({' and '.join(crit)})"
        if twins:
            group = [r["id"] for r in slots if r["type"] == rtype and set(feats[r["id"]]) == mine]
            base += f"[{group.index(rid)}]"
        out[rid] = base
    return out


# -- bindings ---------------------------------------------------------------------------------------------------

_CC_PATHS = {
    "code": "code",
    "value": "value.ofType(CodeableConcept)",
    "medication": "medication.ofType(CodeableConcept)",
    "bodySite": "bodySite.first()",
    "clinicalStatus": "clinicalStatus",
    "verificationStatus": "verificationStatus",
    "interpretation": "interpretation.first()",
    "method": "method",
    "category": "category.first()",
}
_QTY_PATHS = {"value": "value.ofType(Quantity)", "onsetAge": "onset.ofType(Age)"}
_PERIOD_PATHS = {"effective": "effective.ofType(Period)", "performed": "performed.ofType(Period)"}
_STATUS_PATHS = {"gender": "gender", "deceased": "deceased.ofType(boolean)", "status": "status"}


def _coded_extra(element: str, src: dict[str, Any]) -> dict[str, str]:
    """Columns a coded answer needs beyond its coding: text (answers sharing a code) and components-only answers."""
    extra = {}
    entries = [e for e in src["map"].values() if isinstance(e, dict)]
    if any(e.get("text") for e in entries):
        extra["text"] = f"{element}.text"
    # answers coded only by components (uc7's subtypes: ER, PR, HER2, Ki-67 status): one column per component code
    for (system, code), suffix in component_columns(src).items():
        comp = f"component.where(code.coding.exists({coding_test({'system': system, 'code': code})}))"
        extra[suffix] = f"{comp}.value.ofType(CodeableConcept).coding.first().code"
    return extra


def component_columns(src: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(system, code) of each component code -> its column suffix (``component<i>``), as :func:`_coded_extra`."""
    codes: dict[tuple[str, str], str] = {}
    for e in (e for e in src["map"].values() if isinstance(e, dict)):
        if e.get("components") and e.get("coding") is None:
            for comp in e["components"]:
                key = (comp["code"]["system"], comp["code"]["code"])
                codes.setdefault(key, f"component{len(codes) + 1}")
    return codes


def _source_bindings(res: dict[str, Any]) -> list[Binding]:
    """Every variable a slot reads, with where it lands."""
    rid, rtype, el = res["id"], res["type"], res["elements"]
    out: list[Binding] = []

    def add(src: dict[str, Any], kind: str, element: str, absent: str | None, **kw: Any) -> None:
        out.append(
            Binding(
                src["variable"], rid, rtype, kind, element, absent, src, res.get("primary") == src["variable"], **kw
            )
        )

    def quantity(src: dict[str, Any], element: str, absent: str | None) -> None:
        unit = src["unit"]
        add(src, "quantity", element, absent, unit=unit.get("coding") if unit["kind"] == "fixed" else None)
        if unit["kind"] != "fixed":
            add(unit, "unit", element, None)

    for key, src in el.items():
        if isinstance(src, dict) and src.get("kind") == "fixed":
            continue
        if key in _STATUS_PATHS and isinstance(src, dict) and src.get("kind") == "status":
            add(src, "status", _STATUS_PATHS[key], None)
        elif key in _CC_PATHS and isinstance(src, dict) and src.get("kind") == "coded":
            element = _CC_PATHS[key]
            absent = "dataAbsentReason.coding.first().code" if key == "value" else _dar(element)
            add(src, "coded", element, absent, extra=_coded_extra(element, src))
        elif key in _QTY_PATHS and isinstance(src, dict) and src.get("kind") == "quantity":
            element = _QTY_PATHS[key]
            quantity(src, element, "dataAbsentReason.coding.first().code" if key == "value" else _dar(element))
        elif key in _PERIOD_PATHS and isinstance(src, dict) and src.get("kind") == "period":
            add(src, "period", _PERIOD_PATHS[key], _dar(_PERIOD_PATHS[key]))
        elif key == "evidence":
            for i, item in enumerate(src):
                if item.get("kind") == "coded":
                    element = f"evidence[{i}].code.first()"
                    add(item, "coded", element, _dar(element), extra=_coded_extra(element, item))
        elif key == "components":
            for comp in src:
                value = comp["value"]
                sel = f"component.where(code.coding.exists({coding_test(comp['code'])}))"
                absent = f"{sel}.dataAbsentReason.coding.first().code"
                if value.get("kind") == "quantity":
                    quantity(value, f"{sel}.value.ofType(Quantity)", absent)
                elif value.get("kind") == "coded":
                    element = f"{sel}.value.ofType(CodeableConcept)"
                    add(value, "coded", element, absent, extra=_coded_extra(element, value))
        elif key == "dosage":
            if "dose" in src and src["dose"].get("kind") == "quantity":
                quantity(src["dose"], "dosage.dose", _dar("dosage.dose"))
            rate = src.get("rate") or {}
            for part in ("numerator", "denominator"):
                if rate.get(part, {}).get("kind") == "quantity":
                    element = f"dosage.rate.ofType(Ratio).{part}"
                    quantity(rate[part], element, _dar(element))
    return out


def bindings(dd: CompiledDictionary) -> list[Binding]:
    """Every binding of every slot, in plan order."""
    return [b for res in dd.resources if res["type"] != "DiagnosticReport" for b in _source_bindings(res)]


def wide_bindings(dd: CompiledDictionary) -> dict[str, Binding]:
    """variable -> the binding the wide view reads it from (dictionary order).

    A variable written in several places (e.g. laterality as the body site of every biopsy finding) is read from
    the slot it is the primary variable of, else from the first value-carrying binding in plan order.
    """
    rank = {"coded": 0, "quantity": 0, "period": 1, "unit": 1, "status": 2}
    found: dict[str, list[Binding]] = {}
    for b in bindings(dd):
        found.setdefault(b.variable, []).append(b)
    out = {}
    for name in dd.fields:
        cands = found.get(name)
        if cands:
            out[name] = min(cands, key=lambda b: (not b.primary, rank[b.kind], cands.index(b)))
    return out
