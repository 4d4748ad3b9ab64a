"""Run every in-process layer on a bundle, validating each distinct resource, and each distinct element, once.

The builder memoises resource bodies, so across a center the same Observation differs only by its id and the
Patient it points to. A resource is *masked* (its id dropped, ``urn:uuid`` references and identifier values
replaced by placeholders of the same type) and its issues are cached by the masked form, relative to the resource.
A resource seen for the first time is checked element by element: each top-level property (``dosage``,
``effectivePeriod``, ``code``) is walked and checked once per distinct value, because two MedicationAdministrations
that differ by their dose share their medication, status and period checks. Only the resource's own node (required
elements, resource invariants) and the JSON schema (microseconds with jsonschema-rs) run per distinct resource. An
element whose invariants needed the real ``%resource`` is not cached.

What masking hides is checked per bundle, natively: ids and identifier values against their primitive regexes,
references by the references layer. The Bundle shell (the bundle without its entries' resources) is cached the
same way, its ``urn:uuid`` fullUrls masked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..dictionary.compiled import CompiledDictionary
from ..paths import ONTOLOGIES
from . import cardinality
from . import references as refs_layer
from .definitions import Definitions, load_definitions
from .invariants import DEFAULT_SUPPRESSED, Invariants, normalized_entry, normalized_shell, type_path_of
from .issues import Issue
from .profile import Profile
from .structure import Structure, member_arrays, native
from .terminology import Terminology
from .ucum import Ucum
from .walk import Node, member, walk

DEFAULT_ONTOLOGIES = ONTOLOGIES
_URN_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PLACEHOLDER_REF = "urn:uuid:00000000-0000-0000-0000-000000000000"
PLACEHOLDER_VALUE = "masked"
_NONE: frozenset[str] = frozenset()
_STANDARD_ENTRY = {"fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000000", "resource": {"resourceType": "Resource"}}
_Ref = tuple[str, str, tuple[str, ...]]  # location in the resource, reference, allowed target types


@dataclass(frozen=True, slots=True)
class _Checked:
    """Issues (locations relative to the resource) and references (placeholders where masked) of a resource."""

    issues: tuple[Issue, ...]
    refs: tuple[_Ref, ...]


@dataclass
class ValidationContext:
    """Everything the layers need, loaded once per run, and the caches shared by all bundles of the run."""

    defs: Definitions
    terminology: Terminology | None = None
    profile: Profile | None = None
    suppressed: frozenset[str] = DEFAULT_SUPPRESSED
    cache_limit: int = 200_000
    structure: Structure = field(init=False)
    invariants: Invariants = field(init=False)
    stats: dict[str, int] = field(default_factory=lambda: {"bundles": 0, "resources": 0, "distinct": 0, "elements": 0})
    _cache: dict[bytes, _Checked] = field(default_factory=dict, repr=False)
    _members: dict[tuple[str, str, bytes], _Checked] = field(default_factory=dict, repr=False)
    _shells: dict[bytes, tuple[Issue, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.structure = Structure(self.defs)
        self.invariants = Invariants(self.defs, self.suppressed)
        t = self.defs.types
        self.id_regex = t["id"].regex
        self.string_regex = t["string"].regex
        self._ref_keys = {
            name: frozenset(k for (parent, k), (_, ty) in t[name].children.items() if not parent and ty == "Reference")
            for name in self.defs.resources
        }

    @classmethod
    def create(
        cls,
        compiled: CompiledDictionary | None = None,
        *,
        ontologies: str | Path | None = DEFAULT_ONTOLOGIES,
        definitions: str | Path | None = None,
        suppressed: frozenset[str] = DEFAULT_SUPPRESSED,
    ) -> ValidationContext:
        """A context for one use case (``compiled``: the profile layer) and ontology folder (terminology layer)."""
        defs = load_definitions(str(definitions) if definitions else None)
        terminology = Terminology.load(ontologies, Ucum(defs.ucum)) if ontologies is not None else None
        profile = None
        if compiled is not None:
            known_code = terminology.known if terminology is not None else None
            profile = Profile(compiled, known_code=known_code, known_element=_element_checker(defs))
        return cls(defs, terminology, profile, frozenset(suppressed))

    # -- one resource ---------------------------------------------------------------------------------------------
    def mask(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource without what differs between patients (see the module docstring)."""
        masked = resource.copy()
        masked.pop("id", None)
        refs = self._ref_keys.get(resource.get("resourceType"), _NONE)  # type: ignore[arg-type]
        for key in refs.intersection(resource):
            value = resource[key]
            masked[key] = [_mask_ref(v) for v in value] if isinstance(value, list) else _mask_ref(value)
        idents = resource.get("identifier")
        if isinstance(idents, list):
            masked["identifier"] = [
                {**i, "value": PLACEHOLDER_VALUE} if isinstance(i, dict) and isinstance(i.get("value"), str) else i
                for i in idents
            ]
        return masked

    def check_resource(self, masked: dict[str, Any]) -> _Checked:
        """All resource-level layers on one (masked) resource, element by element (cached per element)."""
        rtype = masked.get("resourceType")
        issues = self.structure.check_schema(masked)
        owner = self.defs.types.get(rtype) if isinstance(rtype, str) else None
        if owner is None:
            return _Checked(tuple(issues), ())
        root = Node("", masked, rtype, None, owner, "", masked)  # type: ignore[arg-type]
        issues += cardinality.check(self.defs, [root])
        issues += self.invariants.check([root])
        refs: list[_Ref] = []
        for key, value in masked.items():
            if key == "resourceType":
                continue
            checked = self._member(root, key, value)
            issues += checked.issues
            refs += checked.refs
        return _Checked(tuple(issues), tuple(refs))

    def _member(self, root: Node, key: str, value: Any) -> _Checked:
        try:
            cache_key = (root.type, key, orjson.dumps(value))
        except TypeError:
            cache_key = None
        found = self._members.get(cache_key) if cache_key is not None else None
        if found is not None:
            return found
        self.stats["elements"] += 1
        nodes = list(member(self.defs, root, key, value))
        evaluator = self.invariants.evaluator
        evaluator.touched = False
        issues = member_arrays(key, value) + native(nodes)
        issues += cardinality.check(self.defs, nodes)
        issues += self.invariants.check(nodes, root.resource)
        if self.terminology is not None:
            issues += self.terminology.check(nodes)
        checked = _Checked(tuple(issues), tuple(_refs(nodes)))
        if cache_key is not None and not evaluator.touched:
            if len(self._members) >= self.cache_limit:
                self._members.clear()
            self._members[cache_key] = checked
        return checked

    def resource(self, masked: dict[str, Any]) -> tuple[_Checked, bytes | None]:
        """The (cached) result for a masked resource, and its cache key."""
        try:
            key = hashlib.blake2b(orjson.dumps(masked), digest_size=16).digest()
        except TypeError:  # not serialisable in orjson's terms (e.g. an integer beyond 64 bits): uncached
            return self.check_resource(masked), None
        found = self._cache.get(key)
        if found is None:
            self.stats["distinct"] += 1
            found = self.check_resource(masked)
            if len(self._cache) >= self.cache_limit:
                self._cache.clear()
            self._cache[key] = found
        return found, key

    # -- the bundle -----------------------------------------------------------------------------------------------
    def check_shell(self, bundle: dict[str, Any]) -> list[Issue]:
        """Structure, cardinality and invariants of the Bundle itself (entries' resources excluded)."""
        shell = {k: v for k, v in bundle.items() if k != "entry"}
        issues: list[Issue] = []
        entries = bundle.get("entry")
        if isinstance(entries, list):
            shell["entry"] = [self._shell_entry(i, e) for i, e in enumerate(entries)]
        elif entries is not None:
            shell["entry"] = entries
        if isinstance(shell.get("id"), str):
            if not self.id_regex.fullmatch(shell["id"]):
                issues.append(_bad_format("Bundle.id", shell["id"], "id"))
            shell["id"] = PLACEHOLDER_VALUE
        try:
            key: bytes | None = orjson.dumps(shell)
        except TypeError:
            key = None
        found = self._shells.get(key) if key is not None else None
        if found is None:
            found = tuple(self._shell_issues(shell))
            if key is not None:
                if len(self._shells) >= 10_000:
                    self._shells.clear()
                self._shells[key] = found
        return issues + list(found)

    @staticmethod
    def _shell_entry(i: int, entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        if i and len(entry) == 2 and "resource" in entry:  # the common case, without building anything
            url = entry.get("fullUrl")
            if isinstance(url, str) and len(url) == 45 and _URN_UUID.fullmatch(url):
                return _STANDARD_ENTRY
        s = {k: v for k, v in entry.items() if k != "resource"}
        url = s.get("fullUrl")
        if isinstance(url, str) and len(url) == 45 and _URN_UUID.fullmatch(url):
            s["fullUrl"] = PLACEHOLDER_REF
        if "resource" in entry:
            # bdl-11/12 read the first entry's resource type; the others only whether a resource is there
            stub = normalized_entry(entry)["resource"] if i == 0 else None
            s["resource"] = stub if stub is not None else {"resourceType": "Resource"}
        return s

    def _shell_issues(self, shell: dict[str, Any]) -> list[Issue]:
        bare = dict(shell)
        if isinstance(shell.get("entry"), list):
            bare["entry"] = [_without_resource(e) for e in shell["entry"]]
        issues = self.structure.check_bundle(bare) + _uuid_full_urls(bare)
        nodes = list(walk(self.defs, bare))
        issues += cardinality.check(self.defs, nodes)
        issues += self._shell_invariants(shell, nodes)
        return [i.at("Bundle") for i in issues]

    def _shell_invariants(self, shell: dict[str, Any], nodes: list[Node]) -> list[Issue]:
        normalized, _ = normalized_shell(shell)
        entries = shell.get("entry") if isinstance(shell.get("entry"), list) else []
        inv = self.invariants
        issues = []
        for node in nodes:
            value = node.value
            if node.location == "":
                value = normalized
            elif node.element is not None and node.element.path == "entry" and isinstance(value, dict):
                index = int(node.location.rsplit("[", 1)[1].rstrip("]"))
                value = normalized_entry(entries[index])
            if isinstance(node.value, dict) and node.element is not None and not any(k != "id" for k in node.value):
                issues.append(inv.failed("ele-1", node.location, "element has neither a value nor children"))
            keys = inv.keys(node)
            if keys:
                type_path = type_path_of(node)
                for k in keys:
                    outcome = inv.evaluator.evaluate(k, value, normalized, normalized, type_path)
                    if not outcome.passed:
                        issues.append(inv.issue(k, node.location, outcome.error))
        return issues


def _uuid_full_urls(shell: dict[str, Any]) -> list[Issue]:
    """A ``urn:uuid:`` fullUrl must be FHIR's ``uuid``: a UUID in lower-case hex (``urn:uuid:B727…`` is another URI).

    Checked on the Bundle shell, where valid ones are already masked (so the check costs nothing per valid bundle and
    its result is cached with the shell).
    """
    entries = shell.get("entry")
    issues = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if isinstance(url, str) and url[:9].lower() == "urn:uuid:" and not _URN_UUID.fullmatch(url):
            issues.append(
                Issue(
                    "error",
                    "value",
                    f"entry[{i}].fullUrl",
                    f"'{url}' is not a valid urn:uuid: FHIR's uuid is 'urn:uuid:' and a UUID in lower-case hex "
                    "(8-4-4-4-12)",
                    "uuid-format",
                    "structure",
                )
            )
    return issues


def _element_checker(defs: Definitions) -> Any:
    """Whether a top-level JSON property is an element of an R4B resource type (else: a structure finding)."""

    def known(rtype: str, name: str) -> bool:
        t = defs.types.get(rtype)
        return name == "resourceType" or (t is not None and ("", name.lstrip("_")) in t.children)

    return known


def _without_resource(entry: Any) -> Any:
    return {k: v for k, v in entry.items() if k != "resource"} if isinstance(entry, dict) else entry


def _mask_ref(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ref = value.get("reference")
        if isinstance(ref, str) and len(ref) == 45 and _URN_UUID.fullmatch(ref):
            return {"reference": PLACEHOLDER_REF}
    return value


def _refs(nodes: list[Node]) -> list[_Ref]:
    out = []
    for node in nodes:
        if node.type == "Reference" and isinstance(node.value, dict) and isinstance(node.value.get("reference"), str):
            targets = node.element.targets if node.element is not None else ()
            out.append((node.location, node.value["reference"], targets))
    return out


def _bad_format(location: str, value: str, type_name: str) -> Issue:
    return Issue("error", "value", location, f"{value!r} is not a valid {type_name}", "invalid-format", "structure")


def _real_ref(resource: dict[str, Any], location: str) -> Any:
    """The reference string at a masked top-level location (``subject`` or ``result[3]``) of the real resource."""
    name, _, index = location.partition("[")
    value = resource.get(name)
    if index:
        value = value[int(index.rstrip("]"))] if isinstance(value, list) else None
    return value.get("reference") if isinstance(value, dict) else None


def validate_bundle(bundle: dict[str, Any], context: ValidationContext) -> list[Issue]:
    """Every in-process layer on one bundle; issues in document order (shell, entries, references, profile)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        kind = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        return [Issue("fatal", "structure", "", f"expected a Bundle, found {kind}", "not-a-bundle", "structure")]
    stats = context.stats
    stats["bundles"] += 1
    issues = context.check_shell(bundle)
    entries = bundle.get("entry") if isinstance(bundle.get("entry"), list) else []
    found_refs: list[tuple[int, str, str, tuple[str, ...]]] = []
    keys: list[bytes | None] = []
    id_ok, string_ok = context.id_regex.fullmatch, context.string_regex.fullmatch
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            keys.append(None)
            continue
        stats["resources"] += 1
        rid = resource.get("id")
        if isinstance(rid, str) and not id_ok(rid):
            issues.append(_bad_format(f"Bundle.entry[{i}].resource.id", rid, "id"))
        idents = resource.get("identifier")
        if isinstance(idents, list):
            for j, ident in enumerate(idents):
                value = ident.get("value") if isinstance(ident, dict) else None
                if isinstance(value, str) and not string_ok(value):
                    issues.append(_bad_format(f"Bundle.entry[{i}].resource.identifier[{j}].value", value, "string"))
        checked, key = context.resource(context.mask(resource))
        if checked.issues:
            prefix = f"Bundle.entry[{i}].resource"
            issues += [iss.at(prefix) for iss in checked.issues]
        keys.append(key)
        for loc, ref, targets in checked.refs:
            if ref == PLACEHOLDER_REF:
                ref = _real_ref(resource, loc) or ref
            found_refs.append((i, loc, ref, targets))
    issues += refs_layer.check(entries, found_refs)
    if context.profile is not None:
        issues += context.profile.check(bundle, keys)
    return issues


__all__ = ["ValidationContext", "validate_bundle"]
