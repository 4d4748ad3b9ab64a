"""FHIR Shorthand (FSH) for one use case, written from its compiled dictionary.

The compiled dictionary drives the bundles (src/oncofhir/fhir/builder.py); writing the profiles from the same
plans means the published model cannot drift from the data. Each slot of ``mapping.yaml`` becomes one profile
named ``<Usecase>_<slot>`` (``Uc1_hep_b``), so a reviewer finds a variable's profile by its name; every coded
element gets a ValueSet of exactly the slot's answer concepts, bound ``required``.

What the builder's missing-data rule produces (docs/dictionary-format.md, "Missing data") stays valid: a blank or
invalid Observation value is ``dataAbsentReason`` (the ``oncofhir-value`` invariant accepts either, so a minimal or
mandatory variable is "1.." with missing data explicit), any other element carries the data-absent-reason
extension instead of a coding.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..dictionary.compiled import CompiledDictionary, Field
from ..errors import DictionaryError
from .names import MAX_ID, fhir_id, fsh_name, profile_url

UCUM = "http://unitsofmeasure.org"
#: Status maps hold FHIR codes of these systems (the element's required base binding).
STATUS_SYSTEMS = {
    ("Patient", "gender"): "http://hl7.org/fhir/administrative-gender",
    ("Procedure", "status"): "http://hl7.org/fhir/event-status",
    ("MedicationAdministration", "status"): "http://terminology.hl7.org/CodeSystem/medication-admin-status",
}
#: Plan element -> FHIR element path the builder writes it to (coded CodeableConcepts).
CONCEPT_PATHS = {
    "category": "category",
    "code": "code",
    "bodySite": "bodySite",
    "method": "method",
    "interpretation": "interpretation",
    "clinicalStatus": "clinicalStatus",
    "verificationStatus": "verificationStatus",
    "medication": "medicationCodeableConcept",
}
#: Elements that repeat in FHIR (the builder writes one item): fixed with 1..1 when the plan fixes them.
_REPEATING = {"category", "bodySite", "interpretation"}
_PLAIN_CODE = re.compile(r"^[A-Za-z0-9._/-]+$")


@dataclass(slots=True)
class ValueSet:
    """A value set of exactly the concepts one slot element can carry."""

    name: str
    id: str
    title: str
    description: str
    concepts: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(slots=True)
class UseCaseFsh:
    """The FSH files of one use case (file name -> text) and the value sets, for the data-model page."""

    files: dict[str, str]
    valuesets: dict[str, ValueSet]


def quote(text: str) -> str:
    """A FSH string literal (one line: the dictionaries' labels may hold newlines)."""
    text = " ".join(str(text).split())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Writer:
    """Builds one use case's FSH; collects value sets as profiles bind them."""

    def __init__(self, dd: CompiledDictionary, base: str, identifier_system: str) -> None:
        self.dd = dd
        self.base = base.rstrip("/")
        self.identifier_system = identifier_system
        self.uc = dd.use_case
        self.UC = dd.use_case.upper()
        self.aliases = {spec["uri"]: alias for alias, spec in sorted(dd.systems.items())}
        self.valuesets: dict[str, ValueSet] = {}
        self.used_aliases: set[str] = set()

    # -- small pieces -----------------------------------------------------------------------------------------
    def system(self, uri: str) -> str:
        alias = self.aliases.get(uri)
        if alias is None:
            return uri
        self.used_aliases.add(alias)
        return f"${alias}"

    def code(self, system: str, code: str, display: str | None = None) -> str:
        c = code if _PLAIN_CODE.match(code) else quote(code)
        text = f"{self.system(system)}#{c}"
        return f"{text} {quote(display)}" if display else text

    def label(self, variable: str | None) -> str:
        f = self.dd.fields.get(variable or "")
        return f.label if f else ""

    def check_id(self, value: str) -> str:
        if len(value) > MAX_ID:
            raise DictionaryError(
                f"use case '{self.uc}': the IG id '{value}' is longer than FHIR's {MAX_ID} characters: "
                "shorten the slot id in mapping.yaml"
            )
        return value

    def valueset(self, slot: str, element: str, variable: str | None, concepts: list[tuple[str, str, str]]) -> str:
        """Register the value set of one slot element; returns its FSH name."""
        name = fsh_name(self.uc, slot, element[:1].upper() + element[1:])
        unique = list(dict.fromkeys(concepts))
        about = f"REDCap variable {variable} ({self.label(variable)})" if variable else f"slot {slot}"
        self.valuesets[name] = ValueSet(
            name,
            self.check_id(fhir_id(self.uc, slot, element)),
            f"{self.UC} {slot} {element}",
            f"The concepts {about} maps to in the {element} of slot {slot}.",
            unique,
        )
        return name

    # -- profiles -------------------------------------------------------------------------------------------------
    def profile(self, res: dict[str, Any]) -> list[str]:
        sid, rtype, el = res["id"], res["type"], res["elements"]
        name = fsh_name(self.uc, sid)
        primary = _primary(res)
        title = f"{self.UC} {sid}" + (f": {self.label(primary)}" if self.label(primary) else "")
        description = _describe(res, self.dd.fields.get(primary or ""))
        lines = [
            f"Profile: {name}",
            f"Parent: {rtype}",
            f"Id: {self.check_id(fhir_id(self.uc, sid))}",
            f"Title: {quote(title)}",
            f"Description: {quote(description)}",
        ]
        body: list[str] = []
        if rtype == "Patient":
            body += self.patient(sid, el)
        else:
            body += ["* subject 1..1", f"* subject only Reference({fsh_name(self.uc, 'patient')})"]
            if rtype == "Observation":
                body += self.observation(sid, el, res)
            elif rtype == "DiagnosticReport":
                status = el.get("status") or {"kind": "fixed", "code": "final"}
                body.append(f"* status = #{status['code']}")
                body.append("* result 1..*")
                targets = " or ".join(fsh_name(self.uc, s) for s in el.get("result", []))
                if targets:
                    body.append(f"* result only Reference({targets})")
            elif rtype == "MedicationAdministration":
                body += ["* effective[x] only Period"]
                body += self.status_binding(sid, rtype, el.get("status"))
                body += self.dosage(el.get("dosage") or {})
            elif rtype == "Procedure":
                body += self.status_binding(sid, rtype, el.get("status"))
                if "performed" in el:
                    body.append("* performed[x] only Period")
            elif rtype == "Condition":
                if "onsetAge" in el:  # a band (privacy.generalise) makes the deposit copy's age a Range
                    body.append("* onset[x] only Age" + (" or Range" if el["onsetAge"].get("bands") else ""))
                    body += self.quantity_unit("onsetAge", el["onsetAge"])
                for k, src in enumerate(el.get("evidence", []), start=1):
                    vs = self.valueset(sid, f"evidence{k}", src.get("variable"), list(_concepts(src)))
                    body += [f"* evidence.code.coding from {vs} (required)", "* evidence.code obeys oncofhir-coded"]
            for element, path in CONCEPT_PATHS.items():
                if element in el:
                    body += self.concept(sid, element, path, el[element])
        return [*lines, *body, ""]

    def patient(self, sid: str, el: dict[str, Any]) -> list[str]:
        out = [
            "* identifier 1..1",
            "* identifier.system 1..1",
            f"* identifier.system = {quote(self.identifier_system)}",
            "* identifier.value 1..1",
        ]
        if "gender" in el:
            out += self.status_binding(sid, "Patient", el["gender"], path="gender", element="gender")
        else:
            out.append("* gender 0..0")
        out.append("* deceased[x] only boolean" if "deceased" in el else "* deceased[x] 0..0")
        return out

    def observation(self, sid: str, el: dict[str, Any], res: dict[str, Any]) -> list[str]:
        out = ["* status = #final"]
        if "effective" in el:
            out.append("* effective[x] only Period")
        value = el.get("value")
        comps: dict[tuple[str, str], dict[str, Any]] = {}
        if value is not None:
            kind = value["kind"]
            if kind == "quantity":
                out.append("* value[x] only Quantity" + (" or Range" if value.get("bands") else ""))
                out += self.quantity_unit("valueQuantity", value)
            elif kind == "fixed":
                out += ["* value[x] only CodeableConcept", f"* valueCodeableConcept = {self._fixed(value)}"]
            else:
                concepts = list(_concepts(value))
                if concepts:
                    vs = self.valueset(sid, "value", value.get("variable"), concepts)
                    out += [
                        "* value[x] only CodeableConcept",
                        "* valueCodeableConcept.coding 1..*",
                        f"* valueCodeableConcept.coding from {vs} (required)",
                    ]
                for entry in (value.get("map") or {}).values():
                    for comp in (entry or {}).get("components") or []:
                        comps.setdefault(_key(comp["code"]), {"code": comp["code"], "values": []})["values"].append(
                            comp["value"]
                        )
            field_ = self.dd.fields.get(value.get("variable") or "")
            if field_ is not None and field_.level != "recommended" and _unconditional(field_):
                out.append("* obeys oncofhir-value")
        else:
            out.append("* value[x] 0..0")
        for comp in el.get("components", []):
            comps.setdefault(_key(comp["code"]), {"code": comp["code"], "values": []})["quantity"] = comp["value"]
        if comps:
            out += [
                "* component ^slicing.discriminator.type = #pattern",
                '* component ^slicing.discriminator.path = "code"',
                "* component ^slicing.rules = #closed",
                "* component ^slicing.description = " + quote("One component per finding, by code"),
            ]
            names = [_slice_name(c["code"]) for c in comps.values()]
            out.append("* component contains " + " and ".join(f"{n} 0..1" for n in names))
            for n, comp in zip(names, comps.values(), strict=True):
                c = comp["code"]
                out.append(f"* component[{n}].code = {self.code(c['system'], c['code'], c.get('display'))}")
                if "quantity" in comp:
                    banded = " or Range" if comp["quantity"].get("bands") else ""
                    out.append(f"* component[{n}].value[x] only Quantity{banded}")
                    out += self.quantity_unit(f"component[{n}].valueQuantity", comp["quantity"])
                else:
                    vs = self.valueset(sid, f"component_{n}", None, [_triple(v) for v in comp["values"]])
                    out += [
                        f"* component[{n}].value[x] only CodeableConcept",
                        f"* component[{n}].valueCodeableConcept.coding 1..*",
                        f"* component[{n}].valueCodeableConcept.coding from {vs} (required)",
                    ]
        return out

    def concept(self, sid: str, element: str, path: str, src: dict[str, Any]) -> list[str]:
        out = []
        if element in _REPEATING:
            out.append(f"* {path} 1..1")
        if src["kind"] == "fixed":
            out.append(f"* {path} = {self._fixed(src)}")
            return out
        concepts = list(_concepts(src))
        if concepts:
            # bound on the codings: a blank or invalid answer is a CodeableConcept with the data-absent-reason
            # extension and no coding, which a required binding on the CodeableConcept itself would reject
            vs = self.valueset(sid, element, src.get("variable"), concepts)
            out += [f"* {path}.coding from {vs} (required)", f"* {path} obeys oncofhir-coded"]
        return out

    def status_binding(
        self, sid: str, rtype: str, src: dict[str, Any] | None, path: str = "status", element: str = "status"
    ) -> list[str]:
        if src is None:
            return [f"* {path} = #unknown"] if path == "status" and rtype != "Patient" else []
        if src["kind"] == "fixed":
            return [f"* {path} = #{src['code']}"]
        codes = sorted({str(v) for v in src["map"].values() if v is not None})
        if path == "status" and "unknown" not in codes:
            codes.append("unknown")  # the builder's default for a hidden, blank or invalid status
        system = STATUS_SYSTEMS.get((rtype, element))
        if system is None:
            return []
        vs = self.valueset(sid, element, src.get("variable"), [(system, c, "") for c in codes])
        return [f"* {path} from {vs} (required)"]

    def quantity_unit(self, path: str, src: dict[str, Any]) -> list[str]:
        unit = src.get("unit") or {}
        if unit.get("kind") == "fixed":
            c = unit["coding"]
            code = c["code"] if _PLAIN_CODE.match(c["code"]) else quote(c["code"])
            return [f"* {path}.system = {quote(c['system'])}", f"* {path}.code = #{code}"]
        concepts = list(_concepts(unit))
        systems = {s for s, _, _ in concepts}
        out = [f"* {path}.system = {quote(systems.pop())}"] if len(systems) == 1 else []
        return out

    def dosage(self, spec: dict[str, Any]) -> list[str]:
        out: list[str] = []
        if not spec:
            return ["* dosage 0..0"]
        if "dose" in spec:
            out += self.quantity_unit("dosage.dose", spec["dose"])
        if "rate" in spec:
            out.append("* dosage.rate[x] only Ratio")
            out += self.quantity_unit("dosage.rateRatio.numerator", spec["rate"]["numerator"])
            out += self.quantity_unit("dosage.rateRatio.denominator", spec["rate"]["denominator"])
        return out

    def _fixed(self, src: dict[str, Any]) -> str:
        c = src["coding"]
        return self.code(c["system"], c["code"], c.get("display"))

    # -- files ---------------------------------------------------------------------------------------------------
    def bundle(self, required: set[str]) -> list[str]:
        dd = self.dd
        slots = [res["id"] for res in dd.resources]
        lines = [
            f"Profile: {fsh_name(self.uc, suffix='Bundle')}",
            "Parent: Bundle",
            f"Id: {self.check_id(fhir_id(self.uc))}",
            f"Title: {quote(f'{self.UC} {dd.title}: one patient')}",
            "Description: "
            + quote(
                f"One collection Bundle per patient of use case {self.uc} ({dd.title}), dictionary version "
                f"{dd.version}: exactly one Patient and at most one resource per slot of the data model."
            ),
            "* type = #collection",
            f"* meta.source = {quote(f'urn:oncofhir:dictionary:{self.uc}:{dd.version}')}",
            "* entry 1..*",
            "* entry.resource 1..1",
            # by the claimed profile, not by conformance: repeated slots (er, er_2) and a fixed code that a coded
            # slot can also carry accept the same resources, and a resource matching two slices is an error
            "* entry ^slicing.discriminator.type = #value",
            '* entry ^slicing.discriminator.path = "resource.meta.profile"',
            "* entry ^slicing.rules = #closed",
            "* entry ^slicing.description = " + quote("One entry per slot of the data model, by its claimed profile"),
            "* entry contains",
        ]
        for k, sid in enumerate(slots):
            card = "1..1" if sid in required else "0..1"
            lines.append(f"    {sid} {card}" + (" and" if k < len(slots) - 1 else ""))
        for sid in slots:
            lines.append(f"* entry[{sid}].resource only {fsh_name(self.uc, sid)}")
            lines.append(f"* entry[{sid}].resource.meta.profile = {quote(profile_url(self.base, self.uc, sid))}")
        return [*lines, ""]

    def valuesets_fsh(self) -> list[str]:
        out: list[str] = []
        for vs in self.valuesets.values():
            out += [
                f"ValueSet: {vs.name}",
                f"Id: {vs.id}",
                f"Title: {quote(vs.title)}",
                f"Description: {quote(vs.description)}",
            ]
            out += [f"* {self.code(s, c, d or None)}" for s, c, d in vs.concepts]
            out.append("")
        return out

    def codesystem(self) -> list[str]:
        name = fsh_name(self.uc, suffix="Answers")
        out = [
            f"CodeSystem: {name}",
            f"Id: {self.check_id(fhir_id(self.uc, 'answers'))}",
            f"Title: {quote(f'{self.UC} REDCap answer codes')}",
            "Description: "
            + quote(
                f"The answers of the coded REDCap variables of use case {self.uc} as exported (raw data): "
                "code '<variable>.<answer>', display the answer's label."
            ),
            "* ^caseSensitive = true",
        ]
        for f in self.dd.fields.values():
            for answer, text in f.choices.items():
                out.append(f"* #{_answer_code(f.name, answer)} {quote(text or answer)}")
        return [*out, ""]

    def conceptmap(self) -> list[str]:
        """REDCap answer -> standard concept: the mapping itself, published in standard form."""
        base = self.base
        name = fsh_name(self.uc, suffix="AnswerMap")
        cs_id = fhir_id(self.uc, "answers")
        source = f"{base}/CodeSystem/{cs_id}"
        groups: dict[str, dict[str, list[tuple[str, str, str]]]] = {}
        for res in self.dd.resources:
            for (variable, answer), targets in _answer_targets(res):
                f = self.dd.fields.get(variable)
                if f is None or answer not in f.choices:
                    continue
                for system, code, display, equivalence in targets:
                    items = groups.setdefault(system, {}).setdefault(_answer_code(variable, answer), [])
                    if (code, display, equivalence) not in items:
                        items.append((code, display, equivalence))
        out = [
            f"Instance: {name}",
            "InstanceOf: ConceptMap",
            "Usage: #definition",
            f"Title: {quote(f'{self.UC} REDCap answers to standard concepts')}",
            "* url = " + quote(f"{base}/ConceptMap/{cs_id}"),
            f"* name = {quote(name)}",
            "* status = #active",
            "* description = "
            + quote(
                f"How oncofhir codes each REDCap answer of use case {self.uc} in the FHIR bundles "
                "(answers that become missing data are not listed)."
            ),
            f"* sourceUri = {quote(source)}",
        ]
        answers = {
            _answer_code(f.name, a): f"{f.label}: {t}" for f in self.dd.fields.values() for a, t in f.choices.items()
        }
        for system in sorted(groups):
            out += ["* group[+].source = " + quote(source), "* group[=].target = " + quote(system)]
            for code, targets in groups[system].items():
                out.append(f"* group[=].element[+].code = #{code}")
                out.append(f"* group[=].element[=].display = {quote(answers.get(code, code))}")
                for tcode, tdisplay, equivalence in targets:
                    tc = tcode if _PLAIN_CODE.match(tcode) else quote(tcode)
                    out.append(f"* group[=].element[=].target[+].code = #{tc}")
                    if tdisplay:
                        out.append(f"* group[=].element[=].target[=].display = {quote(tdisplay)}")
                    out.append(f"* group[=].element[=].target[=].equivalence = #{equivalence}")
                    if equivalence != "equivalent":
                        out.append(
                            "* group[=].element[=].target[=].comment = "
                            + quote("one of the findings this answer stands for (Observation.component)")
                        )
        return [*out, ""]

    def aliases_fsh(self) -> list[str]:
        aliases = {alias: spec["uri"] for alias, spec in sorted(self.dd.systems.items()) if alias in self.used_aliases}
        return [f"Alias: ${a} = {uri}" for a, uri in aliases.items()] + [""]


def use_case_fsh(dd: CompiledDictionary, base: str, identifier_system: str, required: set[str]) -> UseCaseFsh:
    """The FSH files of one use case: aliases, profiles (one per slot, plus the Bundle), value sets, code system
    and concept map. ``required``: the slots the builder emits for every record (entries 1..1)."""
    w = _Writer(dd, base, identifier_system)
    profiles: list[str] = [
        f"// {dd.use_case}: {dd.title} (dictionary version {dd.version}). Generated by oncofhir ig.",
        "",
    ]
    for res in dd.resources:
        profiles += w.profile(res)
    profiles += w.bundle(required)
    terminology = [f"// {dd.use_case}: value sets, REDCap answer codes and their map. Generated by oncofhir ig.", ""]
    terminology += w.valuesets_fsh()
    terminology += w.codesystem()
    terminology += w.conceptmap()
    files = {
        f"{dd.use_case}-aliases.fsh": "\n".join(w.aliases_fsh()) + "\n",
        f"{dd.use_case}-profiles.fsh": "\n".join(profiles) + "\n",
        f"{dd.use_case}-terminology.fsh": "\n".join(terminology) + "\n",
    }
    return UseCaseFsh(files, w.valuesets)


#: Code systems the HL7 validator checks without a definition in a package (UCUM is built in).
NATIVE_SYSTEMS = frozenset({UCUM})
#: Code systems that get a fragment although a loaded package defines them without codes: offline, a required
#: binding on a Coding then reports "A definition for CodeSystem 'http://loinc.org' could not be found" (LOINC), or
#: only warns "Unable to validate code without using server" and lets an answer outside the value set pass
#: (SNOMED CT: tests/test_ig_corpus.py, answer_outside_value_set).
FRAGMENT_ANYWAY = frozenset({"http://loinc.org", "http://snomed.info/sct"})


def fragments_fsh(
    dicts: list[CompiledDictionary], valuesets: list[ValueSet], known_systems: frozenset[str] | set[str]
) -> str:
    """A ``fragment`` CodeSystem for each external code system the value sets use that the HL7 validator has no
    definition of (offline, ``-tx n/a``: ICD-O-3, NCIt, RxNorm, LOINC): without one, a required binding to a value
    set of its codes fails with "A definition for CodeSystem ... could not be found". The fragment holds the codes
    the dictionaries use (their ontology tables), as such a code system's ``content = #fragment`` says."""
    known = (set(known_systems) - FRAGMENT_ANYWAY) | NATIVE_SYSTEMS
    names = {spec["uri"]: (alias, spec) for dd in dicts for alias, spec in sorted(dd.systems.items())}
    codes: dict[str, dict[str, str]] = {}
    for vs in valuesets:
        for system, code, display in vs.concepts:
            if system not in known and system in names:
                codes.setdefault(system, {})[code] = display
    out = ["// Fragments of external code systems: the codes the dictionaries use. Generated by oncofhir ig.", ""]
    for system in sorted(codes):
        alias, spec = names[system]
        ident = re.sub(r"[^A-Za-z0-9]", "", alias)
        out += [
            f"CodeSystem: Fragment{ident[:1].upper()}{ident[1:]}",
            f"Id: fragment.{re.sub(r'[^A-Za-z0-9.-]', '-', alias)}",
            "Title: " + quote(f"{alias} ({system}): the codes oncofhir uses"),
            "Description: "
            + quote(
                f"The codes of {system} that the dictionaries use, so that the HL7 validator can check required "
                "bindings offline; not the code system's full content."
            ),
            f"* ^url = {quote(system)}",
        ]
        if spec.get("version"):
            out.append(f"* ^version = {quote(spec['version'])}")
        out += ["* ^content = #fragment", "* ^caseSensitive = true"]
        for code, display in sorted(codes[system].items()):
            c = code if _PLAIN_CODE.match(code) else quote(code)
            out.append(f"* #{c} {quote(display)}" if display else f"* #{c}")
        out.append("")
    return "\n".join(out) + "\n"


INVARIANTS_FSH = """// Shared by every use case. Generated by oncofhir ig.

Invariant: oncofhir-value
Description: "A minimal or mandatory variable has a value, says why not (dataAbsentReason), or has its findings"
Expression: "value.exists() or dataAbsentReason.exists() or component.exists()"
Severity: #error

Invariant: oncofhir-coded
Description: "A coded element has a coding from its value set, or says why not (data-absent-reason extension)"
Expression: "coding.exists() or extension('http://hl7.org/fhir/StructureDefinition/data-absent-reason').exists()"
Severity: #error
"""


# -- helpers -------------------------------------------------------------------------------------------------------
def _primary(res: dict[str, Any]) -> str | None:
    if res.get("primary"):
        return res["primary"]
    for element in ("value", "code", "medication"):
        src = res["elements"].get(element)
        if isinstance(src, dict) and src.get("variable"):
            return src["variable"]
    return None


def _describe(res: dict[str, Any], f: Field | None) -> str:
    parts = []
    if f is not None:
        parts.append(f"REDCap variable {f.name} ({f.label}), {f.level}")
    else:
        parts.append("Fixed for the use case")
    if res.get("when"):
        parts.append("present only when " + " and ".join(res["when"]))
    if res.get("if_blank") == "omit":
        parts.append("omitted when its variable is blank")
    if res.get("note"):
        parts.append(f"note: {res['note']}")
    return "; ".join(parts).rstrip(".") + "."


def _unconditional(f: Field) -> bool:
    return f.minimal is True or (f.minimal is False and f.mandatory is True)


def _concepts(src: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(system, code, display) of every coding a coded source can produce (entries that are missing data skipped)."""
    if src.get("kind") == "fixed":
        yield _triple(src["coding"])
        return
    for entry in (src.get("map") or {}).values():
        if isinstance(entry, dict) and entry.get("coding"):
            yield _triple(entry["coding"])
    if (src.get("group_rare") or {}).get("into"):  # the concept rare codes become in the deposit copy
        yield _triple(src["group_rare"]["into"])


def _triple(c: dict[str, Any]) -> tuple[str, str, str]:
    return c["system"], c["code"], c.get("display") or ""


def _key(c: dict[str, Any]) -> tuple[str, str]:
    return c["system"], c["code"]


def _slice_name(c: dict[str, Any]) -> str:
    return "c" + re.sub(r"[^A-Za-z0-9]", "_", c["code"])


def _answer_code(variable: str, answer: str) -> str:
    code = f"{variable}.{answer}"
    return code if _PLAIN_CODE.match(code) else quote(code)


def _answer_targets(res: dict[str, Any]) -> Iterator[tuple[tuple[str, str], list[tuple[str, str, str, str]]]]:
    """((variable, answer), [(system, code, display, equivalence)]) for every coded or status source of a slot."""
    rtype = res["type"]
    for element, src in res["elements"].items():
        for s in src if isinstance(src, list) else [src]:
            if not isinstance(s, dict) or not s.get("variable") or not isinstance(s.get("map"), dict):
                continue
            for answer, entry in s["map"].items():
                if s["kind"] == "status":
                    system = STATUS_SYSTEMS.get((rtype, element))
                    if system and isinstance(entry, str):
                        yield (s["variable"], answer), [(system, entry, "", "equivalent")]
                    continue
                if not isinstance(entry, dict):
                    continue
                targets = []
                if entry.get("coding"):
                    targets.append((*_triple(entry["coding"]), "equivalent"))
                for comp in entry.get("components") or []:
                    targets.append((*_triple(comp["value"]), "relatedto"))
                if targets:
                    yield (s["variable"], answer), targets


__all__ = ["INVARIANTS_FSH", "UseCaseFsh", "ValueSet", "quote", "use_case_fsh"]
