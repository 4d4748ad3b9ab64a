"""Layer 1, structure: is this R4B JSON at all? Unknown elements, JSON types, primitive formats, real dates.

The official R4B JSON schema (vendored, reduced to our types) is checked with jsonschema-rs (a few microseconds a
resource). Two schema keywords are left to the cardinality layer, which derives them from the StructureDefinitions:
``required`` (the schema only lists complex elements) and ``enum`` (required bindings, reported there with the value
set). What a regular expression cannot say is checked natively: calendar validity of dates ("Dates SHALL be valid
dates") and that arrays are never empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from functools import cached_property
from typing import Any

from .definitions import Definitions
from .issues import Issue, join
from .walk import Node

LAYER = "structure"
_IGNORED_KINDS = {"Required", "Enum"}
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_DATE_TYPES = {"date", "dateTime", "instant"}
_INTEGERS = {"integer": -(2**31), "unsignedInt": 0, "positiveInt": 1}


class Structure:
    """Compiled schema validators, one per resource type (plus the Bundle without its entries' resources)."""

    def __init__(self, defs: Definitions) -> None:
        self.defs = defs

    @cached_property
    def _validators(self) -> dict[str, Any]:
        import jsonschema_rs

        schema = self.defs.schema
        definitions = strict_definitions(schema["definitions"], self.defs.resources)
        return {
            name: jsonschema_rs.validator_for(
                {"$schema": schema["$schema"], "$ref": f"#/definitions/{name}", "definitions": definitions}
            )
            for name in self.defs.resources
        }

    def check_schema(self, resource: dict[str, Any]) -> list[Issue]:
        """The JSON-schema issues of one resource (locations relative to it)."""
        rtype = resource.get("resourceType")
        validator = self._validators.get(rtype) if isinstance(rtype, str) else None
        if validator is None:
            known = ", ".join(self.defs.resources)
            return [
                Issue(
                    "error",
                    "structure",
                    "",
                    f"resourceType '{rtype}' is not one oncofhir validates (vendored definitions: {known})",
                    "unsupported-resource-type",
                    LAYER,
                )
            ]
        return self._schema(validator, resource) + _unchecked_contained(resource, self.defs.resources)

    def check_resource(self, resource: dict[str, Any], nodes: Iterable[Node]) -> list[Issue]:
        """Schema and native issues of a whole resource (``nodes``: its walk)."""
        return self.check_schema(resource) + _empty_arrays(resource, "") + native(nodes)

    def check_bundle(self, shell: dict[str, Any]) -> list[Issue]:
        """Issues of the Bundle itself (its entries' resources removed; they are checked one by one)."""
        return self._schema(self._validators["Bundle"], shell) + _empty_arrays(shell, "")

    @staticmethod
    def _schema(validator: Any, instance: dict[str, Any]) -> list[Issue]:
        if validator.is_valid(instance):
            return []
        issues = []
        for err in validator.iter_errors(instance):
            kind = type(err.kind).__name__
            if kind in _IGNORED_KINDS:
                continue
            loc = fhirpath(err.instance_path)
            if kind == "AdditionalProperties":
                for name in err.kind.unexpected:
                    issues.append(
                        Issue(
                            "error",
                            "structure",
                            join(loc, name),
                            f"unknown element '{name}': not defined in R4B here",
                            "unknown-element",
                            LAYER,
                        )
                    )
            elif kind == "Type":
                last = err.instance_path[-1] if err.instance_path else ""
                text = _message(err.message)
                if isinstance(last, str) and last.startswith("_"):  # a primitive's id/extensions: always an object
                    shown = _shown(err.instance)
                    text = f"'{last}' must be an object (the id and extensions of '{last[1:]}'), not {shown}"
                issues.append(Issue("error", "structure", loc, text, "wrong-type", LAYER))
            elif kind == "Pattern":
                issues.append(
                    Issue(
                        "error", "value", loc, f"{_shown(err.instance)} is not a valid value", "invalid-format", LAYER
                    )
                )
            else:
                issues.append(Issue("error", "structure", loc, _message(err.message), f"schema-{kind}", LAYER))
        return issues


def strict_definitions(definitions: dict[str, Any], ours: Iterable[str]) -> dict[str, Any]:
    """The vendored schema's definitions, with two corrections.

    1. The official schema gives complex types (``Element``, ``CodeableConcept``, …) ``properties`` but no
       ``"type": "object"``, so a JSON string where an object belongs passes: ``"_status": "unknown"`` (a
       primitive's extension written as a string) would be valid. Every definition with properties is an object.
    2. ``ResourceList`` is narrowed to the types oncofhir emits (the vendored subset), so a contained resource of
       any other type (a Medication referenced as ``#med``) failed as "not valid under any of the schemas": valid
       FHIR. Any other resource type is accepted as an object with a ``resourceType``; its content is not checked
       here (a warning says so; the HL7 validator stage checks it).
    """
    out = {
        name: ({**spec, "type": "object"} if "properties" in spec and "type" not in spec else spec)
        for name, spec in definitions.items()
    }
    listed = out.get("ResourceList")
    if isinstance(listed, dict) and "oneOf" in listed:
        other = {
            "type": "object",
            "required": ["resourceType"],
            "properties": {"resourceType": {"type": "string", "not": {"enum": list(ours)}}},
        }
        out["ResourceList"] = {"oneOf": [*listed["oneOf"], other]}
    return out


def _unchecked_contained(resource: dict[str, Any], ours: tuple[str, ...]) -> list[Issue]:
    contained = resource.get("contained")
    if not isinstance(contained, list):
        return []
    return [
        Issue(
            "warning",
            "informational",
            f"contained[{i}]",
            f"contained {item['resourceType']} is not a type oncofhir emits: only its resourceType is checked here "
            "(the HL7 validator stage checks the rest)",
            "contained-unchecked",
            LAYER,
        )
        for i, item in enumerate(contained)
        if isinstance(item, dict) and isinstance(item.get("resourceType"), str) and item["resourceType"] not in ours
    ]


def fhirpath(parts: Iterable[str | int]) -> str:
    """A JSON pointer's parts as a FHIRPath location: ``['code', 'coding', 0]`` -> ``code.coding[0]``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out = join(out, p[1:] if p.startswith("_") else p)
    return out


def _message(text: str) -> str:
    return text if len(text) < 300 else text[:297] + "..."


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _empty_arrays(value: Any, loc: str) -> list[Issue]:
    """FHIR JSON never has empty arrays (an absent element is left out), at any depth."""
    issues: list[Issue] = []
    if isinstance(value, dict):
        for key, child in value.items():
            name = key[1:] if key.startswith("_") else key
            if isinstance(child, list):
                if not child:
                    issues.append(
                        Issue(
                            "error",
                            "structure",
                            join(loc, name),
                            f"'{key}' is an empty array: leave an absent element out",
                            "empty-array",
                            LAYER,
                        )
                    )
                for i, item in enumerate(child):
                    if isinstance(item, dict):
                        issues += _empty_arrays(item, f"{join(loc, name)}[{i}]")
            elif isinstance(child, dict):
                issues += _empty_arrays(child, join(loc, name))
    return issues


def member_arrays(key: str, value: Any, location: str = "") -> list[Issue]:
    """Empty arrays in one property (the engine checks a resource property by property)."""
    return _empty_arrays({key: value}, location)


def native(nodes: Iterable[Node]) -> list[Issue]:
    """What the schema's regular expressions cannot say: real calendar dates, integer kinds and ranges."""
    issues = []
    for node in nodes:
        value = node.value
        if node.type in _INTEGERS and isinstance(value, (int, float)) and not isinstance(value, bool):
            issues += _integer(node)
        if node.type in _DATE_TYPES and isinstance(value, str):
            m = _DATE.match(node.value)
            if m is None:
                continue
            try:
                date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                issues.append(
                    Issue(
                        "error", "value", node.location, f"'{node.value}' is not a calendar date", "invalid-date", LAYER
                    )
                )
    return issues


def _integer(node: Node) -> list[Issue]:
    value = node.value
    if isinstance(value, float) and not value.is_integer():
        return [Issue("error", "structure", node.location, f"{value} is not an {node.type}", "wrong-type", LAYER)]
    low = _INTEGERS[node.type]
    if not low <= value <= 2**31 - 1:
        return [
            Issue(
                "error",
                "value",
                node.location,
                f"{value} is outside the range of {node.type} ({low}..{2**31 - 1})",
                "invalid-format",
                LAYER,
            )
        ]
    return []
