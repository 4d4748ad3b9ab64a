"""Generate SQL-on-FHIR v2 ViewDefinitions from a compiled dictionary: a wide patient view and long views.

The wide view ``<use case>_patients`` has one row per bundle (patient pseudonym) and, per dictionary variable, the
columns below; it reads each slot's resource once (a nested ``select`` with ``forEachOrNull`` on the slot's
selector from oncofhir.views.bindings), so a missing resource gives NULLs, never a lost row.

==================  =====================================================================================
kind                columns
==================  =====================================================================================
coded               ``<var>`` (code), ``<var>_system``, ``<var>_display``, ``<var>_absent`` (+ ``_text``,
                    ``_component<i>`` when answers share a code or are coded by components only)
quantity            ``<var>`` (number, in the dictionary's unit), ``<var>_unit`` (UCUM code), ``<var>_absent``
unit (coded unit)   ``<var>`` (UCUM code), ``<var>_display``
period              ``<var>`` (end date of the anonymised period from 1970-01-01), ``<var>_absent``
status              ``<var>`` (the FHIR code or boolean it maps to)
==================  =====================================================================================

``<var>_absent`` is the data-absent-reason code (``unknown`` blank, ``error`` invalid, ``not-applicable``).
The long views (one row per resource) serve analysts who prefer a key-value layout: ``<uc>_observations``,
``<uc>_conditions``, ``<uc>_procedures``, ``<uc>_medications``, for the resource types the dictionary writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..dictionary.compiled import CompiledDictionary
from ..fhir.values import DAR_EXTENSION
from .bindings import Binding, quote, slot_selectors, wide_bindings
from .runner import CompiledView

PATIENT_KEY = "entry.resource.ofType(Patient).identifier.first().value"
BUNDLE_KEY = "getResourceKey()"
#: Column names every wide view starts with (not dictionary variables).
KEY_COLUMNS = ("patient_id", "bundle_id")


def _col(name: str, path: str, ctype: str | None, description: str | None = None) -> dict[str, Any]:
    """A column; ``ctype`` None leaves the type to the engine (the HL7 validator's runner 6.5.18 rejects a
    Period.end declared ``dateTime``: it files it as an integer column)."""
    col: dict[str, Any] = {"name": name, "path": path}
    if ctype is not None:
        col["type"] = ctype
    if description:
        col["description"] = description
    return col


def binding_columns(b: Binding, label: str) -> list[dict[str, Any]]:
    """The wide view's columns for one variable, with paths relative to its slot's resource."""
    v, e = b.variable, b.element
    if b.kind == "coded":
        cols = [
            _col(v, f"{e}.coding.first().code", "code", label),
            _col(f"{v}_system", f"{e}.coding.first().system", "uri"),
            _col(f"{v}_display", f"{e}.coding.first().display", "string"),
        ]
        cols += [
            _col(f"{v}_{suffix}", path, "string" if suffix == "text" else "code") for suffix, path in b.extra.items()
        ]
    elif b.kind == "quantity":
        unit = f" ({b.unit['code']})" if b.unit else ""
        cols = [_col(v, f"{e}.value", "decimal", label + unit), _col(f"{v}_unit", f"{e}.code", "code")]
        if b.source.get("bands"):  # privacy.generalise: the deposit copy holds a band (a Range) instead
            band = _range_path(e)
            about = f"{label}{unit}: lowest value of its {b.source['bands']}-unit band (generalised deposit copy)"
            cols += [
                _col(f"{v}_band_low", f"{band}.low.value", "decimal", about),
                _col(f"{v}_band_high", f"{band}.high.value", "decimal", about.replace("lowest", "highest")),
            ]
    elif b.kind == "unit":
        return [_col(v, f"{e}.code", "code", label), _col(f"{v}_display", f"{e}.unit", "string")]
    elif b.kind == "period":
        cols = [_col(v, f"{e}.end", None, f"{label} (end of the anonymised period from 1970-01-01)")]
    else:  # status
        return [_col(v, e, "boolean" if e.startswith("deceased") else "code", label)]
    if b.absent:
        cols.append(_col(f"{v}_absent", b.absent, "code"))
    return cols


def wide_view(dd: CompiledDictionary) -> dict[str, Any]:
    """The use case's wide patient view."""
    selectors = slot_selectors(dd)
    chosen = wide_bindings(dd)
    by_slot: dict[str, list[Binding]] = {}
    for name in dd.fields:
        if name in chosen:
            by_slot.setdefault(chosen[name].slot, []).append(chosen[name])
    selects: list[dict[str, Any]] = [
        {
            "column": [
                _col("patient_id", PATIENT_KEY, "string", "patient pseudonym (Patient.identifier)"),
                _col("bundle_id", BUNDLE_KEY, "string"),
            ]
        }
    ]
    for res in dd.resources:
        slot_bindings = by_slot.get(res["id"])
        if not slot_bindings:
            continue
        columns = [c for b in slot_bindings for c in binding_columns(b, dd.fields[b.variable].label)]
        selects.append({"forEachOrNull": selectors[res["id"]], "column": columns})
    return {
        "resourceType": "ViewDefinition",
        "name": f"{dd.use_case}_patients",
        "title": f"{dd.title}: one row per patient",
        "status": "active",
        "description": (
            f"Generated by oncofhir from the {dd.use_case} dictionary version {dd.version}: one row per bundle, one "
            "column group per dictionary variable (docs/tables.md)."
        ),
        "resource": "Bundle",
        "select": selects,
    }


def _cc(prefix: str, path: str) -> list[dict[str, Any]]:
    return [
        _col(f"{prefix}_system", f"{path}.coding.first().system", "uri"),
        _col(f"{prefix}_code", f"{path}.coding.first().code", "code"),
        _col(f"{prefix}_display", f"{path}.coding.first().display", "string"),
    ]


_DAR = f"extension({quote(DAR_EXTENSION)}).value.ofType(code).first()"

#: Long views: resource type -> (view suffix, columns relative to the resource).
LONG_VIEWS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "Observation": (
        "observations",
        [
            _col("resource_id", "getResourceKey()", "string"),
            *_cc("code", "code"),
            *_cc("method", "method"),
            *_cc("body_site", "bodySite"),
            *_cc("value", "value.ofType(CodeableConcept)"),
            _col("value_quantity", "value.ofType(Quantity).value", "decimal"),
            _col("value_unit", "value.ofType(Quantity).code", "code"),
            _col("effective_end", "effective.ofType(Period).end", None),
            _col("absent", "dataAbsentReason.coding.first().code", "code"),
        ],
    ),
    "Condition": (
        "conditions",
        [
            _col("resource_id", "getResourceKey()", "string"),
            *_cc("code", "code"),
            *_cc("body_site", "bodySite.first()"),
            _col("clinical_status", "clinicalStatus.coding.first().code", "code"),
            _col("verification_status", "verificationStatus.coding.first().code", "code"),
            _col("onset_age", "onset.ofType(Age).value", "decimal"),
            _col("onset_age_absent", f"onset.ofType(Age).{_DAR}", "code"),
            _col("code_absent", f"code.{_DAR}", "code"),
        ],
    ),
    "Procedure": (
        "procedures",
        [
            _col("resource_id", "getResourceKey()", "string"),
            _col("status", "status", "code"),
            *_cc("code", "code"),
            *_cc("body_site", "bodySite.first()"),
            _col("performed_end", "performed.ofType(Period).end", None),
        ],
    ),
    "MedicationAdministration": (
        "medications",
        [
            _col("resource_id", "getResourceKey()", "string"),
            _col("status", "status", "code"),
            *_cc("medication", "medication.ofType(CodeableConcept)"),
            _col("medication_text", "medication.ofType(CodeableConcept).text", "string"),
            _col("effective_end", "effective.ofType(Period).end", None),
            _col("dose", "dosage.dose.value", "decimal"),
            _col("dose_unit", "dosage.dose.code", "code"),
            _col("rate_numerator", "dosage.rate.ofType(Ratio).numerator.value", "decimal"),
            _col("rate_numerator_unit", "dosage.rate.ofType(Ratio).numerator.code", "code"),
            _col("rate_denominator", "dosage.rate.ofType(Ratio).denominator.value", "decimal"),
            _col("rate_denominator_unit", "dosage.rate.ofType(Ratio).denominator.code", "code"),
        ],
    ),
}


def _range_path(element: str) -> str:
    """The path of a banded quantity's Range in a generalised deposit copy: ``onset.ofType(Age)`` ->
    ``onset.ofType(Range)``."""
    for typed in (".ofType(Age)", ".ofType(Quantity)"):
        if element.endswith(typed):
            return element[: -len(typed)] + ".ofType(Range)"
    raise ValueError(f"no Range in place of {element}")  # the compiler bands only these (dictionary/generalise.py)


#: Long-view columns of a type whose quantities a generalisation rule bands (the deposit copy's Ranges).
RANGE_COLUMNS = {
    "Observation": [
        _col("value_range_low", "value.ofType(Range).low.value", "decimal"),
        _col("value_range_high", "value.ofType(Range).high.value", "decimal"),
    ],
    "Condition": [
        _col("onset_range_low", "onset.ofType(Range).low.value", "decimal"),
        _col("onset_range_high", "onset.ofType(Range).high.value", "decimal"),
    ],
}


def _banded_types(dd: CompiledDictionary) -> set[str]:
    """Resource types with a top-level quantity a generalisation rule bands (mapping.yaml privacy.generalise)."""
    return {
        r["type"]
        for r in dd.resources
        for key in ("value", "onsetAge")
        if isinstance(r["elements"].get(key), dict) and r["elements"][key].get("bands")
    }


def long_views(dd: CompiledDictionary) -> list[dict[str, Any]]:
    """One long view per resource type the dictionary writes (of those in :data:`LONG_VIEWS`); a type whose
    quantities are banded for the deposit also gets the Range's bounds (:data:`RANGE_COLUMNS`)."""
    types = {r["type"] for r in dd.resources}
    banded = _banded_types(dd)
    views = []
    for rtype, (suffix, columns) in LONG_VIEWS.items():
        if rtype not in types:
            continue
        if rtype in banded:
            columns = [*columns, *RANGE_COLUMNS[rtype]]
        views.append(
            {
                "resourceType": "ViewDefinition",
                "name": f"{dd.use_case}_{suffix}",
                "title": f"{dd.title}: one row per {rtype}",
                "status": "active",
                "resource": "Bundle",
                "select": [
                    {
                        "column": [
                            _col("patient_id", PATIENT_KEY, "string"),
                            _col("bundle_id", BUNDLE_KEY, "string"),
                        ]
                    },
                    {"forEach": f"entry.resource.ofType({rtype})", "column": columns},
                ],
            }
        )
    return views


def views_for(dd: CompiledDictionary) -> list[dict[str, Any]]:
    """Every view of a use case, each checked by the runner's validation (compiled once here)."""
    views = [wide_view(dd), *long_views(dd)]
    for view in views:
        CompiledView(view)
    return views


def write_views(dd: CompiledDictionary, out_dir: str | Path) -> list[Path]:
    """Write ``<name>.json`` per view into ``out_dir``; returns the paths (wide view first)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for view in views_for(dd):
        path = out / f"{view['name']}.json"
        path.write_text(json.dumps(view, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
