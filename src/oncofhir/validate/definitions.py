"""The vendored FHIR R4B definitions (resources/fhir/), loaded once and indexed for the layers.

``resources/fhir/fetch.py`` derives them from the ``hl7.fhir.r4b.core`` package; this module only reads them, so
no run downloads anything. Lookups the walk needs per JSON property (which element, which type, is it a choice) are
precomputed here once per type, because they run for every node of every distinct resource.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import OncofhirError
from ..paths import FHIR_DEFINITIONS

#: resources/fhir, bundled with the package (:mod:`oncofhir.paths`): found from any folder, installed or editable.
DEFAULT_DIR = FHIR_DEFINITIONS
PRIMITIVES_JSON = {
    "boolean": (bool,),
    "integer": (int,),
    "positiveInt": (int,),
    "unsignedInt": (int,),
    "decimal": (int, float),
}


@dataclass(frozen=True, slots=True)
class Element:
    """One element definition: where it is (``path`` relative to its type), how many, which types."""

    owner: str
    path: str
    min: int
    max: str
    types: tuple[str, ...]
    targets: tuple[str, ...] = ()
    binding: str | None = None
    constraints: tuple[str, ...] = ()
    ref: str | None = None

    @property
    def name(self) -> str:
        """The element's own name (``value[x]`` for a choice)."""
        return self.path.rsplit(".", 1)[-1]

    @property
    def is_choice(self) -> bool:
        """A ``[x]`` element: one JSON property per allowed type, at most one present."""
        return self.path.endswith("[x]")

    @property
    def many(self) -> bool:
        """Repeats (a JSON array)."""
        return self.max != "1" and self.max != "0"


@dataclass(slots=True)
class TypeDef:
    """A resource or datatype: its elements, own invariants and, for a primitive, its regex."""

    name: str
    kind: str
    constraints: tuple[str, ...]
    elements: dict[str, Element] = field(default_factory=dict)
    regex: re.Pattern[str] | None = None
    base: str | None = None
    #: (parent path, JSON property) -> (element, type name); "" is the type's root.
    children: dict[tuple[str, str], tuple[Element, str]] = field(default_factory=dict)
    #: parent path -> the elements directly below it (for required-element checks).
    below: dict[str, list[Element]] = field(default_factory=dict)


class Definitions:
    """Index over ``r4b-definitions.json`` and ``fhir.schema.json``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        raw = _read(directory / "r4b-definitions.json")
        self.version: str = raw["version"]
        self.package: str = raw["package"]
        self.resources: tuple[str, ...] = tuple(raw["resources"])
        self.constraints: dict[str, dict[str, str]] = raw["constraints"]
        self.valuesets: dict[str, dict[str, dict[str, str]] | None] = raw["valuesets"]
        self.extensions: dict[str, dict[str, Any]] = raw["extensions"]
        self.types: dict[str, TypeDef] = {name: _typedef(name, spec) for name, spec in raw["types"].items()}
        self.schema: dict[str, Any] = _read(directory / "fhir.schema.json")
        self.ucum: dict[str, Any] = _read(directory / "ucum.json")
        #: value set url -> system -> codes (sets, for membership tests)
        self.codes: dict[str, dict[str, frozenset[str]] | None] = {
            url: None if vs is None else {s: frozenset(c) for s, c in vs.items()} for url, vs in self.valuesets.items()
        }

    def type(self, name: str) -> TypeDef | None:
        """A type by name; ``Quantity/SimpleQuantity`` resolves to the profile's own definition."""
        return self.types.get(name.rsplit("/", 1)[-1])


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OncofhirError(
            f"cannot read the vendored FHIR definitions ({exc}); run `python resources/fhir/fetch.py`",
            path=str(path),
        ) from None


def _typedef(name: str, spec: dict[str, Any]) -> TypeDef:
    regex = re.compile(spec["regex"]) if spec.get("regex") else None
    t = TypeDef(name, spec["kind"], tuple(spec.get("constraints", ())), regex=regex, base=spec.get("base"))
    for path, e in spec.get("elements", {}).items():
        t.elements[path] = Element(
            owner=name,
            path=path,
            min=e["min"],
            max=e["max"],
            types=tuple(e.get("types", ())),
            targets=tuple(e.get("targets", ())),
            binding=e.get("binding"),
            constraints=tuple(e.get("constraints", ())),
            ref=e.get("ref"),
        )
    for path, el in t.elements.items():
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        t.below.setdefault(parent, []).append(el)
        target = t.elements[el.ref] if el.ref else el
        if el.is_choice:
            stem = el.name[:-3]
            for ty in target.types:
                code = ty.split("/", 1)[0]
                t.children[(parent, stem + code[0].upper() + code[1:])] = (el, ty)
        else:
            ty = "BackboneElement" if el.ref else (target.types[0] if target.types else "")
            t.children[(parent, el.name)] = (el, ty)
    return t


def content_path(el: Element) -> str:
    """Where the children of ``el`` are defined inside its owner (a contentReference points elsewhere)."""
    return el.ref or el.path


@lru_cache(maxsize=4)
def load_definitions(directory: str | None = None) -> Definitions:
    """The vendored definitions (cached per folder: loading takes ~20 ms and every bundle needs them)."""
    return Definitions(Path(directory) if directory else DEFAULT_DIR)
