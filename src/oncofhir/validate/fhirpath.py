"""FHIRPath evaluation of invariants with fhirpathpy: compiled once, evaluated on the smallest input that decides.

fhirpathpy costs 50-1000 microseconds an evaluation; a 20,000-patient center has about a million invariant
contexts. Two facts make that affordable without skipping a check:

1. *Footprint.* An invariant reads only some of its context node's elements. The parsed expression tells which
   (:func:`footprint`): the members a path starts from at the context, and whether only their presence matters
   (``dose.exists()``) or their value. The invariant is evaluated on the node *projected* to those elements and
   the result cached by that projection, so ``mad-1`` is evaluated once for all dosages that have a dose, not
   once per distinct dose.
2. *Poisoned environment.* ``%resource`` and ``%rootResource`` are bound to an object that raises when read. If
   the evaluation completes, the result did not depend on the rest of the resource and may be cached; if it raises
   (e.g. ``dom-3`` on a resource that has contained resources), the invariant is evaluated again on the real
   resource, uncached.

fhirpathpy lacks ``hasValue()`` and ``htmlChecks()``: both are registered here (see docs/validation.md).

One R4B expression cannot be evaluated as written: ``dom-3`` applies ``as(canonical)`` / ``as(uri)`` / ``as(url)``
to ``descendants()``, a collection, and FHIRPath defines ``as`` on a single item only (fhirpathpy, following the
specification, raises "Expected singleton on left side of 'as'"; the HL7 Java engine filters instead). R5 fixed the
expression by writing ``ofType()``; :data:`REWRITES` applies that fix, so dom-3 is evaluated, not skipped. The bug is
the R4B expression's, not fhirpathpy's. ``rng-2`` (a Range's low <= high) compares Quantities, which fhirpathpy cannot
do on JSON input: it is rewritten to compare the values of bounds in the same unit (bounds in different units fail).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

ENV_VARIABLES = {"resource", "rootResource", "context"}
#: invariant key -> (R4B text, replacement): the R5 wording of an R4B expression fhirpathpy cannot evaluate
REWRITES = {
    "dom-3": (
        (".as(canonical)", ".ofType(canonical)"),
        (".as(uri)", ".ofType(uri)"),
        (".as(url)", ".ofType(url)"),
        ("where(as(canonical) = '#')", "where(ofType(canonical) = '#')"),
        ("where(as(uri) = '#')", "where(ofType(uri) = '#')"),
    ),
    # fhirpathpy compares no Quantity read from JSON ("'<=' not supported between 'dict' and 'dict'"): a Range's
    # bounds are compared by value when they share the unit; bounds in different units are reported (stricter than
    # FHIRPath's unit conversion; the ranges oncofhir writes, age bands of the deposit copy, share their unit)
    "rng-2": (("(low <= high)", "(low.system = high.system and low.code = high.code and low.value <= high.value)"),),
}


def expression_of(key: str, constraint: dict[str, str]) -> str:
    """The expression evaluated for invariant ``key``: the definitions' text with :data:`REWRITES` applied (each
    rewrite must apply, so a changed definition is noticed rather than silently evaluated as written)."""
    text = constraint["expression"]
    for old, new in REWRITES.get(key, ()):
        if old not in text:
            raise ValueError(f"{key}: expected {old!r} in its expression {text!r}")
        text = text.replace(old, new)
    return text


_XHTML = re.compile(r'^\s*<div\b[^>]*\bxmlns\s*=\s*"http://www.w3.org/1999/xhtml"', re.S)
_UNSAFE_HTML = re.compile(r"<\s*(script|object|applet|embed|form|iframe|frame|base|link|meta)\b|\son\w+\s*=", re.I)
_OPERATOR_NODES = {
    "IndexerExpression",
    "PolarityExpression",
    "MultiplicativeExpression",
    "AdditiveExpression",
    "UnionExpression",
    "InequalityExpression",
    "TypeExpression",
    "EqualityExpression",
    "MembershipExpression",
    "AndExpression",
    "OrExpression",
    "ImpliesExpression",
}


class _Touched(Exception):
    """The expression read %resource / %rootResource while evaluated on a projection."""


class _Poison(dict):  # type: ignore[type-arg]
    """A stand-in for %resource that raises on any read (see module docstring, point 2)."""

    def _touch(self, *args: Any, **kwargs: Any) -> Any:
        raise _Touched

    __getitem__ = get = keys = items = values = __iter__ = __contains__ = __len__ = __eq__ = __ne__ = _touch  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]


POISON = _Poison()


@dataclass(slots=True)
class Footprint:
    """What an expression reads from its context node."""

    #: member name -> True when its value matters, False when only its presence does
    members: dict[str, bool] = field(default_factory=dict)
    #: reads the node as a whole ($this, children(), a function applied to the node, ...)
    whole: bool = False
    #: reads %resource, %rootResource or %context
    env: bool = False
    #: set by :func:`footprint` once ``members`` is final; from then on :meth:`need` remembers its answers
    frozen: bool = field(default=False, repr=False, compare=False)
    #: answers of :meth:`need` by property name (a center has a few dozen names and ~300,000 calls)
    _answers: dict[str, bool | None] = field(default_factory=dict, repr=False, compare=False)

    def need(self, key: str) -> bool | None:
        """For a JSON property: None (not read), False (presence only) or True (value)."""
        answers = self._answers
        if key in answers:
            return answers[key]
        name = key[1:] if key.startswith("_") else key
        found: bool | None = None
        for member, value in self.members.items():
            if name == member or (name.startswith(member) and name[len(member) : len(member) + 1].isupper()):
                found = value or bool(found) or key.startswith("_")
        if self.frozen:
            answers[key] = found
        return found


def footprint(expression: str) -> Footprint:
    """Static analysis of a FHIRPath expression (fhirpathpy's parse tree): what it reads from its context node."""
    from fhirpathpy.engine.invocations import invocation_registry
    from fhirpathpy.parser import parse

    fp = Footprint()
    tree = parse(expression)
    for child in tree.get("children", []):
        _expr(child, True, fp, invocation_registry)
    fp.frozen = True
    return fp


def _flatten(node: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An invocation chain ``a.b.f()[0]`` as (head term, [steps]); index expressions are steps too."""
    steps: list[dict[str, Any]] = []
    while node["type"] in {"InvocationExpression", "IndexerExpression"}:
        left, right = node["children"][0], node["children"][1]
        steps.append(right if node["type"] == "InvocationExpression" else {"type": "Index", "children": [right]})
        node = left
    steps.reverse()
    return node, steps


def _function(step: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    functn = step["children"][0]
    name = functn["children"][0]["text"]
    params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
    return name, params


def _params(
    name: str, params: list[dict[str, Any]], root: bool, head: bool, fp: Footprint, registry: dict[str, Any]
) -> None:
    """Expr parameters are evaluated per item of the function's input; others at the current focus."""
    spec = registry.get(name, {})
    types = spec.get("arity", {}).get(len(params)) or [spec.get("variadic")] * len(params)
    for param, ptype in zip(params, types, strict=False):
        if ptype == "Expr":
            _expr(param, root and head, fp, registry)
        else:
            _expr(param, root, fp, registry)


def _expr(node: dict[str, Any], root: bool, fp: Footprint, registry: dict[str, Any]) -> None:
    kind = node.get("type")
    if kind in {"InvocationExpression", "IndexerExpression", "TermExpression"}:
        head, steps = _flatten(node)
        _term(head, steps, root, fp, registry)
        for step in steps:
            if step["type"] == "FunctionInvocation":
                name, params = _function(step)
                _params(name, params, root, False, fp, registry)
            elif step["type"] == "Index":
                _expr(step["children"][0], root, fp, registry)
        return
    if kind in _OPERATOR_NODES or kind is None:
        for child in node.get("children", []):
            if child.get("type") != "TypeSpecifier":
                _expr(child, root, fp, registry)
        return
    fp.whole = fp.whole or root  # an unknown construct: assume it reads everything


def _term(
    term: dict[str, Any], steps: list[dict[str, Any]], root: bool, fp: Footprint, registry: dict[str, Any]
) -> None:
    inner = term["children"][0] if term.get("children") else {}
    kind = inner.get("type")
    if kind == "InvocationTerm":
        inv = inner["children"][0]
        if inv["type"] == "MemberInvocation":
            if root:
                name = inv["children"][0]["text"].strip("`")
                presence = len(steps) == 1 and steps[0]["type"] == "FunctionInvocation"
                presence = presence and _function(steps[0])[0] in {"exists", "empty"} and not _function(steps[0])[1]
                fp.members[name] = fp.members.get(name, False) or not presence
        elif inv["type"] == "FunctionInvocation":
            fp.whole = fp.whole or root
            name, params = _function(inv)
            _params(name, params, root, True, fp, registry)
        else:  # $this, $index, $total
            fp.whole = fp.whole or root
    elif kind == "ExternalConstantTerm":
        name = inner["children"][0]["children"][-1]["text"].strip("`'\"")
        if name in ENV_VARIABLES:
            fp.env = True
    elif kind == "ParenthesizedTerm":
        _expr(inner["children"][0], root, fp, registry)
        if steps and root:  # the parenthesised value is navigated further: its members' values matter
            fp.members = dict.fromkeys(fp.members, True)
    elif kind != "LiteralTerm":
        fp.whole = fp.whole or root


def project(value: Any, fp: Footprint) -> Any:
    """``value`` reduced to what ``fp`` reads (presence-only members become ``True`` / ``[True]``)."""
    if fp.whole or not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    if "resourceType" in value:
        out["resourceType"] = value["resourceType"]
    for key, item in value.items():
        need = fp.need(key)
        if need is None:
            continue
        out[key] = item if need else ([True] if isinstance(item, list) else True)
    return out


def _has_value(inputs: list[Any]) -> list[bool]:
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))]


def _html_checks(inputs: list[Any]) -> list[bool]:
    """Narrative.div is an xhtml ``<div>`` without active content (txt-1, txt-2), checked with two patterns."""
    return [
        all(isinstance(x, str) and _XHTML.match(x) is not None and _UNSAFE_HTML.search(x) is None for x in inputs)
        and bool(inputs)
    ]


OPTIONS = {
    "userInvocationTable": {
        "hasValue": {"fn": _has_value, "arity": {0: []}},
        "htmlChecks": {"fn": _html_checks, "arity": {0: []}},
    },
    "traceFn": lambda *args: None,
}


@dataclass(slots=True)
class Outcome:
    """An invariant's result on one node: passed, or failed, or could not be evaluated (``error`` says why)."""

    passed: bool
    error: str | None = None


@dataclass(slots=True)
class _Leaf:
    """A sub-expression evaluated by fhirpathpy: compiled once, with its footprint."""

    fn: Any
    fp: Footprint


@dataclass(slots=True)
class _Op:
    """A top-level ``and`` / ``or`` / ``implies``: its operands are evaluated (and cached) one by one."""

    op: str
    operands: list[_Leaf | _Op]


_Tri = bool | None  # FHIRPath three-valued logic: true, false, empty


def _plan(node: dict[str, Any]) -> _Leaf | _Op:
    """Split an expression at its top-level boolean operators (fhirpathpy evaluates both sides of ``or``)."""
    from fhirpathpy.engine.invocations import invocation_registry
    from fhirpathpy.engine.util import set_paths
    from fhirpathpy.models import models

    kind = node.get("type")
    op = (node.get("terminalNodeText") or [""])[0]
    if kind in {"OrExpression", "AndExpression", "ImpliesExpression"} and op in {"or", "and", "implies"}:
        return _Op(op, [_plan(child) for child in node["children"]])
    children = node.get("children") or []
    if kind == "TermExpression" and len(children) == 1 and children[0].get("type") == "ParenthesizedTerm":
        return _plan(children[0]["children"][0])
    fp = Footprint()
    _expr(node, True, fp, invocation_registry)
    fp.frozen = True
    from fhirpathpy import apply_parsed_path

    return _Leaf(set_paths(apply_parsed_path, parsedPath={"children": [node]}, model=models["r4"], options=OPTIONS), fp)


class Evaluator:
    """Invariants split into cached sub-expressions, evaluated on projections (see the module docstring)."""

    CACHE_LIMIT = 200_000

    def __init__(self, constraints: dict[str, dict[str, str]]) -> None:
        self.constraints = constraints
        self._plans: dict[str, _Leaf | _Op] = {}
        self._cache: dict[tuple[int, bytes], tuple[_Tri, str | None]] = {}
        self.evaluations = 0
        self.hits = 0
        #: set when an evaluation needed the real %resource: its result belongs to that resource only
        self.touched = False

    def plan(self, key: str) -> _Leaf | _Op:
        """The compiled plan of invariant ``key`` (parsed and compiled on first use)."""
        found = self._plans.get(key)
        if found is None:
            from fhirpathpy.parser import parse

            tree = parse(expression_of(key, self.constraints[key]))
            found = self._plans[key] = _plan(tree["children"][0])
        return found

    def evaluate(self, key: str, value: Any, resource: Any, root: Any, type_path: str | None = None) -> Outcome:
        """Evaluate invariant ``key`` with ``value`` as context (``%resource`` = resource, ``%rootResource`` = root).

        ``type_path`` is the context's FHIR type (``Extension``) or backbone path (``MedicationAdministration.dosage``):
        fhirpathpy needs it to resolve choice elements (``value`` -> ``valueCode``) outside a resource. FHIRPath's
        rule applies: the invariant holds only when the expression is ``true`` (empty fails).
        """
        result, error = self._eval(self.plan(key), value, resource, root, type_path)
        return Outcome(result is True, error if result is not True else None)

    def _eval(
        self, plan: _Leaf | _Op, value: Any, resource: Any, root: Any, type_path: str | None
    ) -> tuple[_Tri, str | None]:
        if isinstance(plan, _Leaf):
            return self._leaf(plan, value, resource, root, type_path)
        results: list[_Tri] = []
        error = None
        for i, operand in enumerate(plan.operands):
            r, err = self._eval(operand, value, resource, root, type_path)
            error = error or err
            results.append(r)
            if (plan.op == "or" and r is True) or (plan.op == "and" and r is False):
                return r, None
            if plan.op == "implies" and i == 0 and r is False:
                return True, None
        if plan.op == "or":
            return (False if all(r is False for r in results) else None), error
        if plan.op == "and":
            return (True if all(r is True for r in results) else None), error
        left, right = results
        return (True if right is True else (right if left is True else None)), error

    def _leaf(
        self, leaf: _Leaf, value: Any, resource: Any, root: Any, type_path: str | None
    ) -> tuple[_Tri, str | None]:
        real = {"resource": resource, "rootResource": root}
        projected = project(value, leaf.fp)
        try:
            cache_key = (id(leaf), type_path, orjson.dumps(projected))
        except TypeError:
            self.touched = True
            return self._run(leaf.fn, value, real, type_path)
        found = self._cache.get(cache_key)
        if found is not None:
            self.hits += 1
            return found
        env = {"resource": POISON, "rootResource": POISON, "context": POISON} if leaf.fp.env else real
        try:
            outcome = self._run(leaf.fn, projected, env, type_path)
        except _Touched:
            self.touched = True
            return self._run(leaf.fn, value, real, type_path)
        if outcome[1] is not None and projected is not value:  # a presence marker fhirpathpy could not handle
            if leaf.fp.env:
                self.touched = True
            outcome = self._run(leaf.fn, value, real, type_path)
        if len(self._cache) >= self.CACHE_LIMIT:
            self._cache.clear()
        self._cache[cache_key] = outcome
        return outcome

    def _run(self, fn: Any, value: Any, env: dict[str, Any], type_path: str | None) -> tuple[_Tri, str | None]:
        from fhirpathpy.engine.nodes import ResourceNode

        self.evaluations += 1
        if type_path is not None:
            value = ResourceNode.create_node(value, type_path)
        try:
            result = fn(value, env)
        except _Touched:
            raise
        except Exception as exc:  # fhirpathpy limitation (e.g. comparing a value with an extension-only element)
            return None, f"{type(exc).__name__}: {exc}"[:200]
        if result == [True]:
            return True, None
        if result == [False]:
            return False, None
        return None, None
