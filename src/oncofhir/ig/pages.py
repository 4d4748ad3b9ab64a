"""The human-readable data model: one page per use case, one row per REDCap variable (issue #14 item 5).

Generated from the compiled dictionary, like the profiles, so the page cannot drift from the bundles: for each
variable its label, REDCap type, requirement level (with its condition), and where it lands in FHIR (resource and
element of each slot it feeds, the slot's code, the answer -> concept map, the unit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..dictionary.compiled import CompiledDictionary, Field
from ..io_utils import write_text_atomic

#: Plan element -> FHIR element the builder writes it to, per resource type where it differs.
_PATHS = {
    "value": "value[x]",
    "medication": "medicationCodeableConcept",
    "effective": "effectivePeriod",
    "performed": "performedPeriod",
    "onsetAge": "onsetAge",
    "deceased": "deceasedBoolean",
    "evidence": "evidence.code",
    "components": "component.value[x]",
}
_TEMPLATES = Path(__file__).parent / "templates"


@dataclass(slots=True)
class Usage:
    """One place a variable lands in FHIR."""

    slot: str
    resource: str
    element: str
    code: str = ""
    answers: list[tuple[str, str, str]] = field(default_factory=list)  # (answer, label, concept)
    unit: str = ""


@dataclass(slots=True)
class Row:
    """One variable of the page."""

    variable: str
    label: str
    type: str
    level: str
    usages: list[Usage]


def concept_text(coding: dict[str, Any] | None) -> str:
    """``system|code display`` of a coding, as the page shows it."""
    if not coding:
        return "missing data (dataAbsentReason unknown)"
    return f"{coding['system']}|{coding['code']} {coding.get('display') or ''}".strip()


def level_text(f: Field) -> str:
    """The requirement level, with its condition where it has one."""
    for name in ("minimal", "mandatory"):
        value = getattr(f, name)
        if value is True:
            return name
        if isinstance(value, str) and value:
            return f"{name} if {value}"
    return "recommended"


def rows(dd: CompiledDictionary) -> list[Row]:
    """One row per variable of the dictionary, in dictionary order."""
    usages: dict[str, list[Usage]] = {name: [] for name in dd.fields}
    for res in dd.resources:
        code = res["elements"].get("code")
        code_text = concept_text(code["coding"]) if isinstance(code, dict) and code.get("kind") == "fixed" else ""
        for element, src in res["elements"].items():
            for s in _sources(src):
                variable = s.get("variable")
                if variable not in usages:
                    continue
                path = f"{res['type']}.{_PATHS.get(element, element)}"
                usages[variable].append(_usage(res, path, code_text, s, dd.fields[variable]))
        if (
            res.get("primary")
            and res["primary"] in usages
            and not any(u.slot == res["id"] for u in usages[res["primary"]])
        ):
            usages[res["primary"]].append(Usage(res["id"], res["type"], f"{res['type']} (its presence)", code_text))
        for text in res["when"]:
            for variable in re.findall(r"\[([A-Za-z0-9_]+)(?:\(|\])", text):
                if variable in usages and not any(u.slot == res["id"] for u in usages[variable]):
                    usages[variable].append(
                        Usage(res["id"], res["type"], f"{res['type']} (emitted when {text})", code_text)
                    )
    if dd.record_id in usages and not usages[dd.record_id]:
        usages[dd.record_id].append(Usage("patient", "Patient", "Patient.identifier.value (its pseudonym)"))
    return [
        Row(name, f.label, f.type + (f" ({f.validation})" if f.validation else ""), level_text(f), usages[name])
        for name, f in dd.fields.items()
    ]


def _sources(src: Any) -> list[dict[str, Any]]:
    """Every variable source inside a plan element (lists, dosage quantities, ratio parts, components)."""
    if isinstance(src, list):
        return [
            s
            for item in src
            if isinstance(item, dict)
            for s in _sources(item.get("value", item) if "code" in item else item)
        ]
    if not isinstance(src, dict):
        return []
    if "variable" in src:
        return [src]
    return [s for value in src.values() for s in _sources(value)]


def _usage(res: dict[str, Any], path: str, code: str, src: dict[str, Any], f: Field) -> Usage:
    u = Usage(res["id"], res["type"], path, code)
    if src.get("kind") == "quantity":
        unit = src.get("unit") or {}
        if unit.get("kind") == "fixed":
            u.unit = f"{unit['coding']['code']} ({unit['coding'].get('display', '')})"
        elif unit.get("variable"):
            u.unit = f"from variable {unit['variable']}"
    elif src.get("kind") == "period":
        u.unit = f"{src['unit']} (anonymised period from 1970-01-01)"
    for answer, entry in (src.get("map") or {}).items():
        label = f.choices.get(answer, "")
        if src.get("kind") == "status":
            u.answers.append((answer, label, str(entry).lower() if isinstance(entry, bool) else str(entry)))
        elif isinstance(entry, dict):
            parts = [concept_text(entry["coding"])] if entry.get("coding") else []
            parts += [
                f"component {concept_text(c['code'])} = {concept_text(c['value'])}"
                for c in entry.get("components") or []
            ]
            u.answers.append((answer, label, "; ".join(parts) or concept_text(None)))
        else:
            u.answers.append((answer, label, concept_text(None)))
    return u


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(["html"]),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _md(text: str) -> str:
    """A Markdown table cell: pipes escaped, one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def write_pages(dd: CompiledDictionary, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``<use_case>.md`` and ``<use_case>.html`` into ``out_dir``."""
    out = Path(out_dir)
    data = {"dd": dd, "rows": rows(dd)}
    env = _env()
    env.filters["md"] = _md
    md = out / f"{dd.use_case}.md"
    html = out / f"{dd.use_case}.html"
    write_text_atomic(md, env.get_template("data_model.md.j2").render(**data))
    write_text_atomic(html, env.get_template("data_model.html.j2").render(**data))
    return md, html
