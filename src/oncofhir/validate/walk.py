"""A typed walk over a resource: every node with its FHIR type and element definition.

The cardinality, invariant, terminology and reference layers all need to know, for each JSON value, which element
and type it is; computing that once per distinct resource and sharing the node list keeps each layer small. Unknown
properties are skipped here: reporting them is the structure layer's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .definitions import Definitions, Element, TypeDef, content_path
from .issues import join


@dataclass(frozen=True, slots=True)
class Node:
    """One value in a resource.

    ``owner`` and ``path`` say where the node's own children are defined (its type's root, or the backbone path
    inside the resource); ``resource`` is the resource that holds it (FHIRPath's ``%resource``).
    """

    location: str
    value: Any
    type: str
    element: Element | None
    owner: TypeDef | None
    path: str
    resource: dict[str, Any]
    extension_part: bool = False

    @property
    def primitive(self) -> bool:
        """A JSON scalar (a FHIR primitive's value)."""
        return not isinstance(self.value, dict)


def walk(defs: Definitions, resource: dict[str, Any], location: str = "") -> Iterator[Node]:
    """Yield the resource itself, then every node below it (depth first, in document order)."""
    owner = defs.types.get(resource.get("resourceType", ""))
    root = Node(location, resource, resource.get("resourceType", ""), None, owner, "", resource)
    yield root
    if owner is not None:
        yield from _children(defs, root)


def _children(defs: Definitions, node: Node) -> Iterator[Node]:
    if node.owner is None or not isinstance(node.value, dict):
        return
    for key, value in node.value.items():
        if key != "resourceType":
            yield from member(defs, node, key, value)


def member(defs: Definitions, node: Node, key: str, value: Any) -> Iterator[Node]:
    """The nodes of one JSON property of ``node`` (the unit the engine caches: one element of a resource)."""
    owner = node.owner
    if owner is None:
        return
    part = key.startswith("_")
    name = key[1:] if part else key
    found = owner.children.get((node.path, name))
    if found is None:
        return
    el, ty = found
    many = isinstance(value, list)
    for i, item in enumerate(value if many else (value,)):
        if item is None:  # placeholder in a primitive array's `_x` twin
            continue
        loc = join(node.location, f"{name}[{i}]" if many else name)
        if part:
            child = Node(loc, item, "Element", el, defs.types.get("Element"), "", node.resource, True)
            yield child
            yield from _children(defs, child)
            continue
        if ty == "Resource" and isinstance(item, dict):
            yield from walk(defs, item, loc)
            continue
        child_owner, child_path = _content(defs, owner, el, ty)
        child = Node(loc, item, ty, el, child_owner, child_path, node.resource)
        yield child
        if isinstance(item, dict):
            yield from _children(defs, child)


def _content(defs: Definitions, owner: TypeDef, el: Element, ty: str) -> tuple[TypeDef | None, str]:
    """Where the children of a value of element ``el`` (type ``ty``) are defined."""
    inner = content_path(el)
    if inner in owner.below:  # a backbone element (or an inline Element such as Timing.repeat)
        return owner, inner
    return defs.type(ty), ""
