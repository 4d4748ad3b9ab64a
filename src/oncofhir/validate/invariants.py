"""Layer 3, invariants: every core constraint (FHIRPath) of every resource and datatype used, at every node where
its context element exists.

``ele-1`` ("all elements must have a value or children") holds for every element, so it is checked natively: an
element that is an empty object fails it (empty strings and arrays are structure errors). ``bdl-7`` (unique
fullUrls) is checked by the references layer, which also names the clashing entries. ``dom-6`` ("a resource should
have narrative") is a warning oncofhir suppresses by default: research bundles carry no narrative by design. All
other invariants are evaluated by fhirpathpy through :class:`~oncofhir.validate.fhirpath.Evaluator`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from .definitions import Definitions
from .fhirpath import Evaluator
from .issues import Issue
from .walk import Node

LAYER = "invariants"
NATIVE = {"ele-1", "ele-1#2"}
ELSEWHERE = {"bdl-7"}  # references layer
DEFAULT_SUPPRESSED = frozenset({"dom-6"})


class Invariants:
    """The invariants layer: which constraints apply where, evaluated with a shared cache."""

    def __init__(self, defs: Definitions, suppressed: Iterable[str] = DEFAULT_SUPPRESSED) -> None:
        self.defs = defs
        self.suppressed = frozenset(suppressed)
        self.evaluator = Evaluator(defs.constraints)
        self._keys: dict[tuple[str, str], tuple[str, ...]] = {}

    def keys(self, node: Node) -> tuple[str, ...]:
        """The constraint keys that apply at ``node``: its element's and its type's (deduplicated, in order)."""
        el = node.element
        memo = (f"{el.owner}.{el.path}" if el else "", node.type)
        found = self._keys.get(memo)
        if found is None:
            keys: list[str] = list(el.constraints) if el else []
            t = self.defs.type(node.type)
            if t is not None:
                keys += t.constraints
            skip = NATIVE | ELSEWHERE | self.suppressed
            found = self._keys[memo] = tuple(dict.fromkeys(k for k in keys if k not in skip))
        return found

    def check(self, nodes: Iterable[Node], root: dict[str, Any] | None = None) -> list[Issue]:
        """Issues of the walked nodes; ``root`` is ``%rootResource`` (defaults to each node's resource)."""
        issues: list[Issue] = []
        for node in nodes:
            if isinstance(node.value, dict) and node.element is not None and not _has_content(node.value):
                issues.append(self.failed("ele-1", node.location, "element has neither a value nor children"))
            keys = self.keys(node)
            if not keys:
                continue
            type_path = type_path_of(node)
            for key in keys:
                outcome = self.evaluator.evaluate(key, node.value, node.resource, root or node.resource, type_path)
                if not outcome.passed:
                    issues.append(self.issue(key, node.location, outcome.error))
        return issues

    def issue(self, key: str, location: str, error: str | None) -> Issue:
        c = self.defs.constraints[key]
        name = key.split("#", 1)[0]
        if error:  # an error-level rule that cannot be checked cannot be passed: the bundle is not shown valid
            return Issue(
                "error" if c["severity"] == "error" else "warning",
                "exception",
                location,
                f"{name} could not be evaluated ({error}): {c['human']}",
                name,
                LAYER,
            )
        return Issue(
            "error" if c["severity"] == "error" else "warning",
            "invariant",
            location,
            f"{name} failed: {c['human']} [{c['expression']}] ({c['source']})",
            name,
            LAYER,
        )

    def failed(self, key: str, location: str, detail: str) -> Issue:
        c = self.defs.constraints.get(key, {"human": detail})
        return Issue("error", "invariant", location, f"{key} failed: {c['human']} ({detail})", key, LAYER)


def type_path_of(node: Node) -> str | None:
    """The FHIRPath type of a context node: its datatype, or ``Resource.backbone.path`` inside a resource."""
    if node.element is None:
        return None  # a resource: fhirpathpy reads its resourceType
    if node.owner is not None and node.path and node.owner.kind == "resource":
        return f"{node.owner.name}.{node.path}"
    if node.owner is not None and node.path:
        return f"{node.owner.name}.{node.path}"
    return node.type.split("/", 1)[0]


def _has_content(value: dict[str, Any]) -> bool:
    return any(k != "id" for k in value)


def normalized_shell(bundle: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """The Bundle as the bdl-* invariants see it, small and shared between bundles of the same shape.

    Those invariants read the Bundle's own elements, the first entry's resource type, and per entry only whether it
    has a resource, request, response or search and whether its fullUrl is version-specific (bdl-7, which compares
    fullUrls, is the references layer's). So each entry is reduced to exactly that and duplicates are dropped
    (the first entry is always kept first): quantifiers over entries (``all``, ``exists``, ``empty``) give the same
    answer. Returns the shell and, for each kept entry, the index of its first occurrence. A test checks the
    equivalence on every demo and broken bundle.
    """
    out = {k: v for k, v in bundle.items() if k not in {"entry", "id", "meta"}}
    entries: list[dict[str, Any]] = []
    first: list[int] = []
    seen: set[bytes] = set()
    for i, entry in enumerate(bundle.get("entry") or []):
        if not isinstance(entry, dict):
            continue
        n = normalized_entry(entry)
        key = orjson.dumps(n)
        if key in seen and i:
            continue
        seen.add(key)
        entries.append(n)
        first.append(i)
    if entries:
        out["entry"] = entries
    return out, first


def normalized_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One entry reduced to what the bdl-* invariants read (see :func:`normalized_shell`)."""
    n = {k: v for k, v in entry.items() if k not in {"resource", "fullUrl"}}
    url = entry.get("fullUrl")
    if url is not None:
        n["fullUrl"] = url if not isinstance(url, str) or "/_history/" in url else "urn:oncofhir:normalized"
    resource = entry.get("resource")
    if isinstance(resource, dict):
        stub: dict[str, Any] = {"resourceType": resource.get("resourceType")}
        meta = resource.get("meta")
        if isinstance(meta, dict) and "versionId" in meta:
            stub["meta"] = {"versionId": meta["versionId"]}
        n["resource"] = stub
    elif resource is not None:
        n["resource"] = resource
    return n
