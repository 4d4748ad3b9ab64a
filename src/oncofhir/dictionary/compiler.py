"""Compile and lint a use case: REDCap dictionary + mapping.yaml + ontology tables -> CompiledDictionary.

All problems are collected and reported together (a data manager fixing a dictionary wants the whole list, not one
error per run), each naming the variable or resource slot and what is wrong. A dictionary that does not compile
stops the workflow before any export is read.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import DictionaryError
from ..logic import LogicSyntaxError, parse
from ..ontology import Ontology
from ..terminology import CHECKS, icdo3_morphology_ok
from . import schema_errors
from .compiled import CompiledDictionary, Field, Rule
from .generalise import check_and_mark
from .redcap import DATA_TYPES, RedcapField, read_redcap_dictionary

NUMERIC = {"integer", "number", "number_1dp", "number_2dp"}
STATUS_CODES = {
    "Procedure": {
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    },
    "MedicationAdministration": {
        "in-progress",
        "not-done",
        "on-hold",
        "completed",
        "entered-in-error",
        "stopped",
        "unknown",
    },
    "DiagnosticReport": {
        "registered",
        "partial",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "appended",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
}
GENDER_CODES = {"male", "female", "other", "unknown"}
PRIMARY_ORDER = {
    "Observation": ("value", "code"),
    "Condition": ("code",),
    "Procedure": ("code", "status"),
    "MedicationAdministration": ("medication",),
}
STRUCTURAL_KEYS = {"id", "type", "when", "if_blank", "primary", "note", "description"}


@lru_cache(maxsize=1)
def mapping_schema() -> dict[str, Any]:
    """The JSON schema of mapping.yaml, shipped inside the package."""
    text = importlib_resources.files("oncofhir.schemas").joinpath("mapping.schema.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Compiler:
    """Holds the inputs and the problem list while one use case compiles."""

    def __init__(self, fields: dict[str, RedcapField], ontology: Ontology) -> None:
        self.fields = fields
        self.ontology = ontology
        self.problems: list[str] = []
        self.used: set[str] = set()
        self.valuesets: dict[str, dict[str, Any]] = {}

    # -- primitives ---------------------------------------------------------------------------------------
    def concept(self, ref: str, where: str) -> dict[str, str] | None:
        try:
            concept = self.ontology.resolve(ref)
        except KeyError as exc:
            self.problems.append(f"{where}: {exc.args[0]}")
            return None
        check = self.ontology.systems[concept.alias].check_digit
        if check and not CHECKS[check](concept.code):
            self.problems.append(f"{where}: '{ref}' fails the {check} check digit / format of {concept.alias}")
        if concept.alias == "icdo3" and not icdo3_morphology_ok(concept.code):
            self.problems.append(f"{where}: '{ref}' is not an ICD-O-3 morphology code (MMMM/B)")
        return concept.coding()

    def logic(self, text: str, where: str, *, uses: bool = False) -> str | None:
        """Check a REDCap-logic expression. ``uses``: its variables count as used (a slot's ``when``: a variable
        that decides whether a resource exists is represented by that resource's presence, so its data is not lost).
        """
        try:
            expr = parse(text)
        except LogicSyntaxError as exc:
            self.problems.append(f"{where}: {exc}")
            return None
        for var in sorted(expr.variables):
            base = var.split("___", 1)[0]
            if base not in self.fields:
                self.problems.append(f'{where}: logic refers to unknown variable [{var}] in "{text}"')
            elif uses:
                self.used.add(base)
        return text

    def variable(self, name: Any, where: str, *, numeric: bool = False, coded: bool = False) -> RedcapField | None:
        field = self.fields.get(name) if isinstance(name, str) else None
        if field is None:
            self.problems.append(f"{where}: unknown variable '{name}'")
            return None
        self.used.add(field.name)
        if numeric and field.validation not in NUMERIC and field.type != "calc":
            self.problems.append(
                f"{where}: variable '{field.name}' is used as a number but its validation is "
                f"'{field.validation or field.type}' (expected integer or number)"
            )
        if coded and not field.choices:
            self.problems.append(f"{where}: variable '{field.name}' is mapped as coded but has no choices")
        return field

    def answer_map(self, raw: Any, field: RedcapField | None, where: str, *, status: set[str] | None = None) -> dict:
        if isinstance(raw, str) and status is None:
            if raw not in self.valuesets:
                self.problems.append(f"{where}: unknown value set '{raw}'")
                return {}
            compiled = self.valuesets[raw]
        elif isinstance(raw, dict):
            compiled = {}
            for code, entry in raw.items():
                code = str(code)
                if status is not None:
                    if entry is not None and entry not in status and not isinstance(entry, bool):
                        self.problems.append(f"{where}: '{entry}' is not one of {', '.join(sorted(status))}")
                    compiled[code] = entry
                else:
                    compiled[code] = self.answer(entry, f"{where}, answer '{code}'")
        else:
            self.problems.append(f"{where}: 'map' must be a value-set name or a mapping")
            return {}
        if field is not None and field.choices:
            missing = [c for c in field.choices if c not in compiled]
            extra = [c for c in compiled if c not in field.choices]
            for c in missing:
                self.problems.append(f"{where}: choice {c} ('{field.choices[c]}') of '{field.name}' is not mapped")
            for c in extra:
                self.problems.append(f"{where}: maps code {c}, which is not a choice of '{field.name}'")
        return compiled

    def answer(self, entry: Any, where: str) -> dict[str, Any] | None:
        if entry is None:
            return None
        if isinstance(entry, str):
            return {"coding": self.concept(entry, where)}
        out: dict[str, Any] = {"coding": self.concept(entry["value"], where) if entry.get("value") else None}
        if entry.get("components"):
            out["components"] = [
                {"code": self.concept(c["code"], where), "value": self.concept(c["value"], where)}
                for c in entry["components"]
            ]
        for key in ("note", "text"):
            if entry.get(key):
                out[key] = entry[key]
        return out

    # -- sources ---------------------------------------------------------------------------------------------
    def source(self, raw: Any, where: str) -> dict[str, Any] | None:
        if isinstance(raw, str):
            return {"kind": "fixed", "coding": self.concept(raw, where)}
        if not isinstance(raw, dict):
            self.problems.append(f"{where}: expected a concept or a source mapping")
            return None
        if "map" in raw:
            field = self.variable(raw["variable"], where, coded=True)
            return {"kind": "coded", "variable": raw["variable"], "map": self.answer_map(raw["map"], field, where)}
        if "unit" in raw:
            self.variable(raw["variable"], where, numeric=True)
            unit = raw["unit"]
            if isinstance(unit, str):
                unit_src = {"kind": "fixed", "coding": self.concept(unit, f"{where}, unit")}
            else:
                field = self.variable(unit["variable"], f"{where}, unit", coded=True)
                unit_src = {
                    "kind": "coded",
                    "variable": unit["variable"],
                    "map": self.answer_map(unit["map"], field, f"{where}, unit"),
                }
            return {"kind": "quantity", "variable": raw["variable"], "unit": unit_src}
        if "period" in raw:
            self.variable(raw["variable"], where, numeric=True)
            return {"kind": "period", "variable": raw["variable"], "unit": raw["period"]}
        self.problems.append(f"{where}: a source needs 'map', 'unit' or 'period'")
        return None

    def status(self, raw: Any, rtype: str, where: str, allowed: set[str]) -> dict[str, Any] | None:
        if isinstance(raw, str):
            if raw not in allowed:
                self.problems.append(f"{where}: '{raw}' is not one of {', '.join(sorted(allowed))}")
            return {"kind": "fixed", "code": raw}
        field = self.variable(raw["variable"], where, coded=True)
        return {
            "kind": "status",
            "variable": raw["variable"],
            "map": self.answer_map(raw["map"], field, where, status=allowed),
        }

    # -- resources -------------------------------------------------------------------------------------------
    def resource(self, spec: dict[str, Any]) -> dict[str, Any]:
        rid, rtype = spec["id"], spec["type"]
        where = f"resource '{rid}' ({rtype})"
        elements: dict[str, Any] = {}
        for key, raw in spec.items():
            if key in STRUCTURAL_KEYS:
                continue
            w = f"{where}, {key}"
            if key in {
                "code",
                "value",
                "method",
                "bodySite",
                "interpretation",
                "medication",
                "clinicalStatus",
                "verificationStatus",
            }:
                if rtype == "DiagnosticReport" and key == "code":
                    elements[key] = {"kind": "fixed", "coding": self.concept(raw, w)}
                else:
                    elements[key] = self.source(raw, w)
            elif key == "category":
                ref = raw if ":" in raw else f"observation-category:{raw}"
                elements[key] = {"kind": "fixed", "coding": self.concept(ref, w)}
            elif key in {"onsetAge"} or key in {"effective", "performed"}:
                elements[key] = self.source(raw, w)
            elif key == "evidence":
                elements[key] = [self.source(item, f"{w}[{i}]") for i, item in enumerate(raw)]
            elif key == "components":
                elements[key] = [
                    {"code": self.concept(c["code"], f"{w}[{i}]"), "value": self.source(c["value"], f"{w}[{i}]")}
                    for i, c in enumerate(raw)
                ]
            elif key == "status":
                elements[key] = self.status(raw, rtype, w, STATUS_CODES[rtype])
            elif key == "gender":
                elements[key] = self.status(raw, rtype, w, GENDER_CODES)
            elif key == "deceased":
                field = self.variable(raw["variable"], w, coded=True)
                elements[key] = {
                    "kind": "status",
                    "variable": raw["variable"],
                    "map": self.answer_map(raw["map"], field, w, status=set()),
                }
            elif key == "dosage":
                dosage: dict[str, Any] = {}
                if "dose" in raw:
                    dosage["dose"] = self.source(raw["dose"], f"{w}.dose")
                if "rate" in raw:
                    dosage["rate"] = {
                        "numerator": self.source(raw["rate"]["numerator"], f"{w}.rate.numerator"),
                        "denominator": self.source(raw["rate"]["denominator"], f"{w}.rate.denominator"),
                    }
                elements[key] = dosage
            elif key == "result":
                elements[key] = list(raw)
            else:  # the schema makes this unreachable; keep the message for hand-edited compiled files
                self.problems.append(f"{w}: unsupported element")
        primary = spec.get("primary")
        if primary is not None:
            self.variable(primary, f"{where}, primary")
        else:
            for key in PRIMARY_ORDER.get(rtype, ()):
                src = elements.get(key)
                if isinstance(src, dict) and src.get("variable"):
                    primary = src["variable"]
                    break
        when: list[str] = []
        if spec.get("when") and self.logic(spec["when"], f"{where}, when", uses=True):
            when.append(spec["when"])
        if primary and primary in self.fields and self.fields[primary].branching:
            when.append(self.fields[primary].branching)
        if rtype == "DiagnosticReport" and spec.get("if_blank"):
            self.problems.append(f"{where}: if_blank has no meaning for a DiagnosticReport")
        return {
            "id": rid,
            "type": rtype,
            "primary": primary,
            "when": when,
            "if_blank": spec.get("if_blank", "absent"),
            "note": spec.get("note"),
            "elements": elements,
        }


def compile_dictionary(directory: str | Path, ontology_dir: str | Path) -> CompiledDictionary:
    """Compile ``directory`` (holding redcap_dictionary.csv and mapping.yaml); raise DictionaryError listing
    every problem found."""
    import jsonschema

    directory = Path(directory)
    redcap_path, mapping_path = directory / "redcap_dictionary.csv", directory / "mapping.yaml"
    for p in (redcap_path, mapping_path):
        if not p.exists():
            raise DictionaryError("missing file (a use case needs redcap_dictionary.csv and mapping.yaml)", path=str(p))
    fields_list = read_redcap_dictionary(redcap_path)
    fields = {f.name: f for f in fields_list}
    ontology = Ontology.load(ontology_dir)
    try:
        mapping = yaml.safe_load(mapping_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DictionaryError(f"invalid YAML: {exc}", path=str(mapping_path)) from None
    validator = jsonschema.Draft202012Validator(mapping_schema())
    schema_errors = sorted(validator.iter_errors(mapping), key=lambda e: list(e.absolute_path))
    if schema_errors:
        raise DictionaryError(
            "mapping does not follow docs/dictionary-format.md",
            path=str(mapping_path),
            details=_schema_details(mapping, schema_errors),
        )

    comp = _Compiler(fields, ontology)
    problems = comp.problems
    if mapping["use_case"] != directory.name:
        problems.append(f"use_case '{mapping['use_case']}' differs from the folder name '{directory.name}'")
    record_id = fields_list[0].name
    comp.used.add(record_id)
    for f in fields_list:
        if f.branching:
            comp.logic(f.branching, f"redcap_dictionary.csv row {f.row}, variable '{f.name}', branching logic")
    for name, level in (mapping.get("variables") or {}).items():
        if name not in fields:
            problems.append(f"variables: '{name}' is not in the REDCap dictionary")
            continue
        for key in ("minimal", "mandatory"):
            if isinstance(level.get(key), str):
                comp.logic(level[key], f"variable '{name}', {key} condition")
    for f in fields_list:
        if f.type == "calc":
            where = f"redcap_dictionary.csv row {f.row}, variable '{f.name}', calculation"
            if not f.calculation.strip():
                problems.append(f"{where}: a calc field needs a calculation")
            else:
                comp.logic(f.calculation, where)
    compiled_rules = _rules(comp, mapping.get("rules") or [], fields_list)
    for name, vs in (mapping.get("valuesets") or {}).items():
        comp.valuesets[name] = {str(k): comp.answer(v, f"value set '{name}', answer '{k}'") for k, v in vs.items()}

    compiled_resources = []
    seen_ids: set[str] = set()
    for spec in mapping["resources"]:
        if spec["id"] in seen_ids:
            problems.append(f"resource '{spec['id']}': duplicate slot id")
        seen_ids.add(spec["id"])
        compiled_resources.append(comp.resource(spec))
    patients = [r for r in compiled_resources if r["type"] == "Patient"]
    if len(patients) != 1:
        problems.append(f"exactly one Patient resource (id: patient) is required, found {len(patients)}")
    by_id = {r["id"]: r for r in compiled_resources}
    for r in compiled_resources:
        for slot in r["elements"].get("result", []):
            if slot not in by_id or by_id[slot]["type"] != "Observation":
                problems.append(
                    f"resource '{r['id']}' ({r['type']}), result: '{slot}' is not an Observation slot of this mapping"
                )
    problems += _privacy_problems(mapping.get("privacy") or {}, fields)
    problems += _duplicates_problems(mapping.get("duplicates") or {}, fields, record_id)
    problems += check_and_mark(mapping.get("privacy") or {}, compiled_resources, fields, comp.concept)
    data_fields = {f.name for f in fields_list if f.type in DATA_TYPES and f.type != "calc"}
    for name in sorted(data_fields - comp.used):
        problems.append(f"variable '{name}' feeds no resource: its data would be lost")
    if problems:
        raise DictionaryError(f"use case '{directory.name}' does not compile", path=str(directory), details=problems)

    levels = mapping.get("variables") or {}
    compiled_fields = {
        f.name: Field(
            name=f.name,
            form=f.form,
            type=f.type,
            label=f.label,
            choices=dict(f.choices),
            validation=f.validation,
            min=f.min,
            max=f.max,
            branching=f.branching,
            minimal=levels.get(f.name, {}).get("minimal", False),
            mandatory=levels.get(f.name, {}).get("mandatory", False),
            max_length=levels.get(f.name, {}).get("max_length") or f.max_length,
            default=f.default,
            own_coding=levels.get(f.name, {}).get("own_coding"),
            calculation=f.calculation,
        )
        for f in fields_list
    }
    forms = list(dict.fromkeys(f.form for f in fields_list))
    used_aliases = sorted({a for a in ontology.systems})
    return CompiledDictionary(
        use_case=mapping["use_case"],
        title=mapping["title"],
        version=mapping["version"],
        record_id=record_id,
        forms=forms,
        fields=compiled_fields,
        resources=compiled_resources,
        valuesets=comp.valuesets,
        systems={a: {"uri": ontology.systems[a].uri, "version": ontology.systems[a].version} for a in used_aliases},
        sources={
            "redcap_dictionary.csv": _sha256(redcap_path),
            "mapping.yaml": _sha256(mapping_path),
        },
        privacy=mapping.get("privacy") or {},
        duplicates=mapping.get("duplicates") or {},
        rules=compiled_rules,
    )


def _rules(comp: _Compiler, specs: list[dict[str, Any]], fields_list: list[RedcapField]) -> list[Rule]:
    """Lint and compile the mapping's ``rules`` (docs/dictionary-format.md#rules). Every problem names the rule:
    a duplicate id, a syntax error (with its position), an unknown variable, a computed rule without a variable."""
    order = {f.name: k for k, f in enumerate(fields_list)}
    out: list[Rule] = []
    seen: set[str] = set()
    for spec in specs:
        rid = spec["id"]
        where = f"rule '{rid}'"
        if rid in seen:
            comp.problems.append(f"{where}: duplicate rule id")
        if rid in comp.fields:
            comp.problems.append(f"{where}: the id is also a variable's name (qc.thresholds names either); rename it")
        seen.add(rid)
        kind = spec.get("type", "condition")
        names: set[str] = set()
        ok = True
        for key in ("assert", "when"):
            text = spec.get(key)
            if text is None:
                continue
            if comp.logic(text, f"{where}, {key}") is None:
                ok = False
                continue
            names |= {v.split("___", 1)[0] for v in parse(text).variables}
        variable = spec.get("variable", "")
        if kind == "computed":
            if spec["category"] != "computational":
                comp.problems.append(f"{where}: a computed rule is computational, not {spec['category']}")
            if not variable:
                comp.problems.append(f"{where}: a computed rule names the variable it recomputes ('variable')")
            elif variable not in comp.fields:
                comp.problems.append(f"{where}: unknown variable '{variable}'")
            else:
                names.add(variable)
        elif variable:
            comp.problems.append(f"{where}: 'variable' is only for computed rules")
        if not ok:
            continue
        known = sorted((n for n in names if n in order), key=order.__getitem__)
        if variable in known:  # a computed rule's own variable first: it is what the failure is about
            known.remove(variable)
            known.insert(0, variable)
        out.append(
            Rule(
                id=rid,
                category=spec["category"],
                assert_=spec["assert"],
                message=spec["message"],
                when=spec.get("when", ""),
                weight=spec.get("weight", 1),
                type=kind,
                variable=variable,
                if_blank=spec.get("if_blank", "skip"),
                variables=known,
            )
        )
    return out


def _privacy_problems(privacy: dict[str, Any], fields: dict[str, RedcapField]) -> list[str]:
    """The privacy attributes must be one-column variables (a checkbox is many columns) or ``center``."""
    problems = []
    names = [("quasi_identifiers", n) for n in privacy.get("quasi_identifiers", [])]
    names += [("sensitive", privacy["sensitive"])] if "sensitive" in privacy else []
    for key, name in names:
        if name == "center" and key == "quasi_identifiers":
            if "center" in fields:
                problems.append(
                    "privacy: 'center' names the record's center, but the dictionary has a variable so named"
                )
        elif name not in fields:
            problems.append(f"privacy, {key}: '{name}' is not in the REDCap dictionary")
        elif fields[name].type in ("checkbox", "descriptive"):
            problems.append(f"privacy, {key}: '{name}' is a {fields[name].type} field, not one value per record")
    return problems


def _duplicates_problems(spec: dict[str, Any], fields: dict[str, RedcapField], record_id: str) -> list[str]:
    """Duplicate keys must be one-value data variables other than the record id (which ingest already keeps
    unique), and ``min_filled`` at most the number of keys."""
    problems = []
    keys = spec.get("keys", [])
    for name in keys:
        if name not in fields:
            problems.append(f"duplicates, keys: '{name}' is not in the REDCap dictionary")
        elif name == record_id:
            problems.append(f"duplicates, keys: '{name}' is the record id (ingest already rejects repeated ids)")
        elif fields[name].type in ("checkbox", "descriptive", "calc"):
            problems.append(f"duplicates, keys: '{name}' is a {fields[name].type} field, not one value per record")
    if spec.get("min_filled", 0) > len(keys):
        problems.append(f"duplicates, min_filled: {spec['min_filled']} is more than the {len(keys)} keys")
    return problems


def _schema_details(mapping: Any, errors: list[Any]) -> list[str]:
    """One line per mistake: where (path, slot id and type), the key or value, and what is allowed there."""
    leaves = [leaf for err in errors for leaf in schema_errors.leaf_errors(err)]
    details: list[str] = []
    for leaf in leaves:
        if schema_errors.suppressed(leaf, leaves):
            continue
        path = list(leaf.absolute_path)
        if leaf.validator == "enum" and "propertyNames" in leaf.relative_schema_path:
            path.append(leaf.instance)
        loc = "/".join(str(p) for p in path) or "(top level)"
        if isinstance(mapping, dict) and len(path) > 1 and path[0] == "resources" and isinstance(path[1], int):
            spec = mapping["resources"][path[1]] if path[1] < len(mapping["resources"]) else {}
            if isinstance(spec, dict):
                loc += f" (resource '{spec.get('id', '?')}', {spec.get('type', '?')})"
        line = f"{loc}: {schema_errors.message(leaf)}"
        if line not in details:
            details.append(line)
    return details[:50]
