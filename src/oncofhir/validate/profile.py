"""Layer 6, profile: each bundle holds what its use case's data dictionary says it must, and nothing else.

The compiled dictionary is the profile. Resource ids are UUIDv5 of ``<use case>/<record id>/<slot>``
(docs/dictionary-format.md), so every resource is traced to the slot that made it from the Patient's record id.
Then: one Patient; no resource outside the model; each slot at most once and of its type; every slot that the
dictionary emits unconditionally (no ``when``, no branching on what it reads, not ``if_blank: omit``) present;
each element one the slot produces, each coding one of the slot's concepts (or data-absent-reason), statuses from
the slot's maps; subjects point to the Patient, report results to the slots the report lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .. import NAMESPACE
from ..dictionary.compiled import CompiledDictionary
from ..fhir.builder import resource_uuid
from ..fhir.values import DAR_SYSTEM
from ..ig.names import fhir_id
from .issues import Issue, join

LAYER = "profile"
#: Plan element -> the JSON properties the builder writes for it.
ELEMENT_KEYS = {
    "code": ("code",),
    "category": ("category",),
    "bodySite": ("bodySite",),
    "method": ("method",),
    "interpretation": ("interpretation",),
    "clinicalStatus": ("clinicalStatus",),
    "verificationStatus": ("verificationStatus",),
    "medication": ("medicationCodeableConcept",),
    "value": ("valueCodeableConcept", "valueQuantity", "valueRange", "dataAbsentReason", "component", "note"),
    "components": ("component",),
    "onsetAge": ("onsetAge", "onsetRange"),
    "evidence": ("evidence",),
    "dosage": ("dosage",),
    "effective": ("effectivePeriod",),
    "performed": ("performedPeriod",),
    "gender": ("gender",),
    "deceased": ("deceasedBoolean",),
    "status": ("status",),
    "result": ("result",),
}
#: Properties every resource of a type has, whatever the plan (resource id and type, subject, fixed parts).
BASE_KEYS = {
    "Patient": {"resourceType", "id", "meta", "identifier"},
    "Observation": {"resourceType", "id", "meta", "status", "code", "subject", "note", "dataAbsentReason"},
    "Condition": {"resourceType", "id", "meta", "code", "subject", "note"},
    "Procedure": {"resourceType", "id", "meta", "status", "code", "subject", "note"},
    "MedicationAdministration": {"resourceType", "id", "meta", "status", "subject", "effectivePeriod", "note"},
    "DiagnosticReport": {"resourceType", "id", "meta", "status", "code", "subject", "result", "conclusion"},
}
#: Elements the builder reads without catching "not applicable": a hidden variable there drops the resource.
_UNCONDITIONAL = {"code", "value", "medication"}


class Profile:
    """One use case's data model, compiled for checking bundles."""

    def __init__(
        self,
        dd: CompiledDictionary,
        *,
        known_code: Callable[[str, str], bool] | None = None,
        known_element: Callable[[str, str], bool] | None = None,
    ) -> None:
        """``known_code`` / ``known_element``: what the terminology and structure layers accept. A code or element
        they reject is theirs to report; the profile reports only real codes and elements the model does not use,
        so that one defect gives one finding."""
        self.dd = dd
        self.known_code = known_code or (lambda system, code: True)
        self.known_element = known_element or (lambda rtype, name: True)
        self.slots = {res["id"]: res for res in dd.resources}
        self.required = [sid for sid, res in self.slots.items() if _required(res, dd)]
        self.source = f"urn:oncofhir:dictionary:{dd.use_case}:{dd.version}"
        self._allowed = {sid: _allowed(res) for sid, res in self.slots.items()}
        self._keys = {sid: _keys(res) for sid, res in self.slots.items()}
        self._cache: dict[tuple[str, bytes], tuple[Issue, ...]] = {}

    def check(self, bundle: dict[str, Any], keys: list[bytes | None]) -> list[Issue]:
        """Issues of one bundle; ``keys[i]`` is the cache key of entry i's resource (None: not cacheable)."""
        issues: list[Issue] = []
        uc = self.dd.use_case
        if bundle.get("type") != "collection":
            issues.append(
                _issue(
                    "Bundle.type", f"an oncofhir bundle is a 'collection', not '{bundle.get('type')}'", "model-bundle"
                )
            )
        source = (bundle.get("meta") or {}).get("source") if isinstance(bundle.get("meta"), dict) else None
        if source != self.source:
            issues.append(
                _issue(
                    "Bundle.meta.source",
                    f"meta.source is '{source}'; this dictionary is '{self.source}'",
                    "model-bundle",
                )
            )
        claimed = (bundle.get("meta") or {}).get("profile") if isinstance(bundle.get("meta"), dict) else None
        own = f"/StructureDefinition/{fhir_id(uc)}"
        for k, url in enumerate(claimed or []):
            if not (isinstance(url, str) and url.endswith(own)):
                issues.append(
                    _issue(
                        f"Bundle.meta.profile[{k}]",
                        f"the bundle claims profile '{url}'; its profile is <canonical>{own}",
                        "model-profile",
                    )
                )
        entries = [e if isinstance(e, dict) else {} for e in bundle.get("entry") or []]
        resources = [e.get("resource") if isinstance(e.get("resource"), dict) else {} for e in entries]
        patients = [i for i, r in enumerate(resources) if r.get("resourceType") == "Patient"]
        if len(patients) != 1:
            issues.append(
                _issue("Bundle.entry", f"a bundle holds exactly one Patient; found {len(patients)}", "model-patient")
            )
            return issues
        p = patients[0]
        record_id = _record_id(resources[p])
        if record_id is None:
            issues.append(
                _issue(f"Bundle.entry[{p}].resource.identifier", "the Patient has no identifier value", "model-patient")
            )
            return issues
        if bundle.get("id") != resource_uuid(uc, record_id):
            issues.append(
                _issue("Bundle.id", f"Bundle.id is not the deterministic id of record '{record_id}'", "model-bundle")
            )
        slot_of = slot_uuids(uc, record_id, self.slots)
        subject = {"reference": entries[p].get("fullUrl")}
        found: dict[str, int] = {}
        slots = self.slots
        for i, res in enumerate(resources):
            sid = slot_of.get(res.get("id"))  # type: ignore[arg-type]
            slot = slots.get(sid)  # type: ignore[arg-type]
            rtype = res.get("resourceType")
            if slot is None or rtype != slot["type"] or sid in found:
                issues.append(self._misplaced(i, res, sid, found, record_id))
                continue
            found[sid] = i  # type: ignore[index]
            content = self._content(sid, res, keys[i] if i < len(keys) else None)  # type: ignore[arg-type]
            if content:
                issues += [iss.at(f"Bundle.entry[{i}].resource") for iss in content]
            if rtype != "Patient" and res.get("subject") != subject and not _reference(res.get("subject")):
                # a subject that points elsewhere is the references layer's (unresolved or wrong target type)
                issues.append(
                    _issue(
                        f"Bundle.entry[{i}].resource.subject",
                        f"slot '{sid}' has no subject reference: it must point to the bundle's Patient",
                        "model-subject",
                    )
                )
        for i, res in enumerate(resources):
            sid = slot_of.get(res.get("id"))
            if sid is not None and res.get("resourceType") == "DiagnosticReport":
                issues += self._results(i, sid, res, entries, slot_of)
        for sid in self.required:
            if sid not in found:
                slot = self.slots[sid]
                issues.append(
                    _issue(
                        "Bundle.entry",
                        f"the {uc} data model emits slot '{sid}' ({slot['type']}) for every record; it is missing",
                        "model-required",
                    )
                )
        return issues

    def _misplaced(self, i: int, res: dict[str, Any], sid: str | None, found: dict[str, int], record_id: str) -> Issue:
        loc = f"Bundle.entry[{i}].resource"
        if sid is None:
            return _issue(
                loc,
                f"{res.get('resourceType')} '{res.get('id')}' is not a resource of the {self.dd.use_case} data model "
                f"(its id is none of the slot ids of record '{record_id}')",
                "model-slot",
            )
        slot = self.slots[sid]
        if res.get("resourceType") != slot["type"]:
            return _issue(loc, f"slot '{sid}' is a {slot['type']}, not a {res.get('resourceType')}", "model-type")
        return _issue(loc, f"slot '{sid}' appears twice (also entry {found[sid]})", "model-duplicate")

    def _content(self, sid: str, res: dict[str, Any], key: bytes | None) -> tuple[Issue, ...]:
        memo = (sid, key) if key is not None else None
        if memo is not None and memo in self._cache:
            return self._cache[memo]
        issues: list[Issue] = []
        slot = self.slots[sid]
        allowed_keys = self._keys[sid]
        if "meta" in res:
            issues += self._claims(sid, res["meta"])
        for name in res:
            if name not in allowed_keys and self.known_element(slot["type"], name):
                issues.append(_issue(name, f"slot '{sid}' ({slot['type']}) never has '{name}'", "model-element"))
        for element, src in slot["elements"].items():
            for json_key in ELEMENT_KEYS.get(element, ()):
                allowed = self._allowed[sid].get(json_key, frozenset())
                if json_key not in res or json_key in {"note", "dataAbsentReason"}:
                    continue
                if isinstance(src, dict) and src.get("kind") == "status":
                    issues += _status(sid, json_key, res[json_key], src)
                    continue
                if element == "status" and isinstance(src, dict) and src.get("kind") == "fixed":
                    if res[json_key] != src.get("code"):
                        issues.append(_issue(json_key, f"slot '{sid}' has status '{src.get('code')}'", "model-status"))
                    continue
                if element == "result":
                    continue
                for loc, system, code in _found_codings(res[json_key], json_key):
                    if (system, code) not in allowed and system != DAR_SYSTEM and self.known_code(system, code):
                        issues.append(
                            _issue(
                                loc,
                                f"{system}|{code} is not a concept slot '{sid}' maps to in its {element}",
                                "model-code",
                            )
                        )
        if "dataAbsentReason" in res:
            for loc, system, _code in _found_codings(res["dataAbsentReason"], "dataAbsentReason"):
                if system != DAR_SYSTEM:
                    issues.append(_issue(loc, f"dataAbsentReason must use {DAR_SYSTEM}", "model-code"))
        out = tuple(issues)
        if memo is not None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[memo] = out
        return out

    def _claims(self, sid: str, meta: Any) -> list[Issue]:
        """A claimed profile (``meta.profile``) must be the slot's own generated profile (docs/ig.md)."""
        claimed = meta.get("profile") if isinstance(meta, dict) else None
        own = "/StructureDefinition/" + fhir_id(self.dd.use_case, sid)
        return [
            _issue(
                f"meta.profile[{k}]",
                f"slot '{sid}' claims profile '{url}'; its profile is <canonical>{own}",
                "model-profile",
            )
            for k, url in enumerate(claimed or [])
            if not (isinstance(url, str) and url.endswith(own))
        ]

    def _results(
        self, i: int, sid: str, res: dict[str, Any], entries: list[dict[str, Any]], slot_of: dict[str, str]
    ) -> list[Issue]:
        allowed = set(self.slots[sid]["elements"].get("result", []))
        by_url = {e.get("fullUrl"): e.get("resource", {}) for e in entries}
        issues = []
        for j, ref in enumerate(res.get("result") or []):
            target = by_url.get(ref.get("reference")) if isinstance(ref, dict) else None
            target_slot = slot_of.get(target.get("id")) if isinstance(target, dict) else None
            if target_slot is not None and target_slot not in allowed:  # unresolved: the references layer's
                issues.append(
                    _issue(
                        f"Bundle.entry[{i}].resource.result[{j}]",
                        f"report '{sid}' lists results of slots {', '.join(sorted(allowed))}; "
                        "this reference is not one of them",
                        "model-result",
                    )
                )
        return issues


def _issue(location: str, message: str, rule: str) -> Issue:
    return Issue("error", "business-rule", location, message, rule, LAYER)


def _reference(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("reference"), str)


def _record_id(patient: dict[str, Any]) -> str | None:
    for ident in patient.get("identifier") or []:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            return ident["value"]
    return None


def _status(sid: str, key: str, value: Any, src: dict[str, Any]) -> list[Issue]:
    allowed = {v for v in src.get("map", {}).values() if v is not None}
    if key in {"status"}:
        allowed.add("unknown")  # the builder's default for a hidden, blank or invalid status
    if value not in allowed:
        shown = ", ".join(sorted(str(v) for v in allowed))
        return [_issue(key, f"slot '{sid}' has {key} in ({shown}), not '{value}'", "model-status")]
    return []


def _allowed(res: dict[str, Any]) -> dict[str, frozenset[tuple[str, str]]]:
    """JSON property -> every (system, code) the slot's plan can put there (several plan elements may share one)."""
    out: dict[str, set[tuple[str, str]]] = {}
    for element, src in res["elements"].items():
        for json_key in ELEMENT_KEYS.get(element, ()):
            out.setdefault(json_key, set()).update(_codings(src))
    return {k: frozenset(v) for k, v in out.items()}


def _codings(node: Any) -> Iterator[tuple[str, str]]:
    """Every (system, code) a plan element can produce (fixed, mapped, components, units)."""
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and isinstance(node.get("code"), str):
            yield node["system"], node["code"]
        for value in node.values():
            yield from _codings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _codings(item)


def _found_codings(node: Any, loc: str) -> Iterator[tuple[str, str, str]]:
    """Every coding or coded quantity inside a resource element, with its location."""
    if isinstance(node, dict):
        if "system" in node and "code" in node:
            yield join(loc, "code"), str(node["system"]), str(node["code"])
        for key, value in node.items():
            if key != "extension":
                yield from _found_codings(value, join(loc, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _found_codings(item, f"{loc}[{i}]")


#: JSON properties only a generalised deposit copy has: a band (privacy.generalise ``bands``) turns a quantity into
#: a Range (oncofhir.privacy.generalise).
_BANDED = {"valueRange", "onsetRange"}


def _keys(res: dict[str, Any]) -> frozenset[str]:
    keys = set(BASE_KEYS.get(res["type"], {"resourceType", "id"}))
    for element, src in res["elements"].items():
        banded = isinstance(src, dict) and bool(src.get("bands"))
        keys.update(k for k in ELEMENT_KEYS.get(element, (element,)) if banded or k not in _BANDED)
    if res["type"] == "MedicationAdministration":
        keys.add("dosage")
    return frozenset(keys)


def _required(res: dict[str, Any], dd: CompiledDictionary) -> bool:
    """Whether the builder emits this slot for every record (docs/dictionary-format.md, "Resources")."""
    if res["type"] == "Patient":
        return True
    if res["when"] or res.get("if_blank") == "omit" or res["type"] == "DiagnosticReport":
        return False
    for element in _UNCONDITIONAL:
        src = res["elements"].get(element)
        variable = src.get("variable") if isinstance(src, dict) else None
        field = dd.fields.get(variable) if variable else None
        if field is not None and field.branching:
            return False
    return True


def slot_uuids(use_case: str, record_id: str, slots: Iterable[str]) -> dict[str, str]:
    """``{uuid: slot}`` for one record: the builder's UUIDv5 ids, hashing the record's prefix once."""
    base = hashlib.sha1(NAMESPACE.bytes + f"{use_case}/{record_id}".encode())  # noqa: S324 (UUIDv5 is SHA-1)
    out = {}
    for slot in slots:
        h = base.copy()
        h.update(f"/{slot}".encode())
        d = bytearray(h.digest()[:16])
        d[6] = (d[6] & 0x0F) | 0x50  # version 5
        d[8] = (d[8] & 0x3F) | 0x80  # RFC 4122 variant
        x = d.hex()
        out[f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"] = slot
    return out
