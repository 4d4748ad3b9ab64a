"""FHIRPath for ViewDefinitions: a fast compiled subset, with fhirpathpy for everything else.

fhirpathpy evaluates an expression in 30-300 microseconds; a use case's wide view has one expression per dictionary
variable (uc7: ~250 columns) and a center has thousands of patients, so evaluating every column with it would cost
seconds per hundred patients. The views oncofhir generates use a small part of FHIRPath (member access,
``ofType()`` on choice elements, ``where()``, ``exists()``, ``first()``, ``extension()``, ``=``, ``and``/``or``):
this module compiles that part once into plain Python closures over the JSON, and hands every other expression
(and every input the subset cannot decide exactly, e.g. a primitive that carries an extension) to fhirpathpy with
the R4 model. Both paths run the official SQL-on-FHIR v2 conformance suite (tests/test_views_conformance.py).

A compiled path maps a collection (a list of JSON values) to a collection; ``Path.evaluate`` takes one focus item.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from .parser import parse_subset

Fn = Callable[[list[Any], "Env"], list[Any]]


class _NoNode:
    """Stands for fhirpathpy's node classes until fhirpathpy is loaded: before that, no value can be one."""


#: fhirpathpy's node classes, set by :func:`_fhirpathpy` (isinstance checks read these module globals)
ResourceNode: Any = _NoNode
FP_Type: Any = _NoNode
_LOADED: dict[str, Any] = {}


def _fhirpathpy() -> dict[str, Any]:
    """fhirpathpy, imported on first need (an expression outside the subset, or a fallback), with the functions
    below registered. Its import costs ~0.06 CPU-s, which each of a consortium's table jobs would pay for nothing:
    the generated views stay on the compiled path."""
    global ResourceNode, FP_Type
    if not _LOADED:
        import fhirpathpy
        from fhirpathpy.engine import invocations, nodes
        from fhirpathpy.models import models
        from fhirpathpy.parser import parse

        registry = invocations.invocation_registry
        for name, entry in _FUNCTIONS.items():  # names it does not define: never replaces one of its own
            registry.setdefault(name, entry)
        registry["join"] = {"fn": _join, "arity": {0: [], 1: ["String"]}}  # the one replaced: empty -> ''
        ResourceNode, FP_Type = nodes.ResourceNode, nodes.FP_Type
        _LOADED.update(compile=fhirpathpy.compile, parse=parse, model=models["r4"])
    return _LOADED


class PathError(ValueError):
    """An expression that cannot be parsed or evaluated (a ViewDefinition error, not a data error)."""


class Fallback(Exception):
    """The fast path cannot decide this input exactly: evaluate it with fhirpathpy instead (Path.slow)."""


class _Unsupported(Exception):
    """The expression uses FHIRPath outside the fast subset (compile time)."""


class Env:
    """Evaluation environment: the view's constants, %rowIndex, and the resource being viewed."""

    __slots__ = ("memo", "resource", "variables")

    def __init__(self, variables: Mapping[str, Any], resource: Any, memo: dict[Any, Any] | None = None) -> None:
        self.variables = variables
        self.resource = resource
        #: per-resource cache (indexes of where() inputs); shared by the Envs of one resource's rows
        self.memo: dict[Any, Any] = {} if memo is None else memo


# --------------------------------------------------------------------------------------------------------------
# Functions the SQL-on-FHIR v2 spec requires that fhirpathpy lacks (registered for the fallback, and used by the
# fast path too).
# --------------------------------------------------------------------------------------------------------------


def resource_key(resource: Any) -> list[Any]:
    """``getResourceKey()``: the resource's id (the key a view joins on)."""
    if isinstance(resource, dict) and isinstance(resource.get("id"), str):
        return [resource["id"]]
    return []


def reference_key(reference: Any, rtype: str | None = None) -> list[Any]:
    """``getReferenceKey([type])``: the id part of a relative reference, optionally only for one resource type."""
    if not isinstance(reference, dict):
        return []
    ref = reference.get("reference")
    if not isinstance(ref, str):
        return []
    parts = ref.split("/")
    if ref.startswith("urn:uuid:"):
        return [ref[9:]] if rtype is None else []
    if len(parts) >= 2:
        if parts[-2] == "_history" and len(parts) >= 4:
            parts = parts[:-2]
        if rtype is not None and parts[-2] != rtype:
            return []
        return [parts[-1]]
    return []


_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DATETIME = re.compile(
    r"^(\d{4}(?:-\d{2}(?:-\d{2})?)?)T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?(Z|[+-]\d{2}:\d{2})?$"
)
_TIME = re.compile(r"^(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?$")


def _days_in_month(year: int, month: int) -> int:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return (nxt - date(year, month, 1)).days


def _fill(part: str | None, high: bool, width: int = 2) -> str:
    return part if part else ("59" if high else "00")


def _fraction(frac: str | None, high: bool) -> str:
    return (frac or "").ljust(3, "9" if high else "0")[:3]


def _boundary(value: Any, high: bool, kind: str, precision: int | None = None) -> Any:
    """lowBoundary()/highBoundary() of a decimal, date, dateTime or time (FHIRPath 3.0 semantics).

    ``kind`` is the FHIR type of the value (a date and a dateTime with the same text have different boundaries).
    """
    if kind in {"decimal", "integer"} or (isinstance(value, int | float | Decimal) and not isinstance(value, bool)):
        text = format(Decimal(str(value)), "f")
        digits = len(text.split(".")[1]) if "." in text else 0
        target = 8 if precision is None else precision
        if target < digits:
            return None
        half = Decimal(5) * Decimal(10) ** -(digits + 1)
        bound = Decimal(text) + (half if high else -half)
        return float(bound)
    text = str(value)
    if kind == "time":
        m = _TIME.match(text)
        if not m:
            return None
        hh, mm, ss, frac = m.groups()
        return f"{hh}:{_fill(mm, high)}:{_fill(ss, high)}.{_fraction(frac, high)}"
    m = _DATETIME.match(text)
    if m and kind != "date":
        day, hh, mm, ss, frac, tz = m.groups()
        tz = tz or ("-12:00" if high else "+14:00")
        return f"{_boundary(day, high, 'date')}T{hh}:{_fill(mm, high)}:{_fill(ss, high)}.{_fraction(frac, high)}{tz}"
    m = _DATE.match(text)
    if not m:
        return None
    year, month, day = m.groups()
    month = month or ("12" if high else "01")
    day = day or (f"{_days_in_month(int(year), int(month)):02d}" if high else "01")
    if kind == "date":
        return f"{year}-{month}-{day}"
    tz = "-12:00" if high else "+14:00"
    return f"{year}-{month}-{day}T{'23:59:59.999' if high else '00:00:00.000'}{tz}"


def _fp_boundary(high: bool) -> Callable[..., list[Any]]:
    def fn(ctx: Any, inputs: list[Any], precision: Any = None) -> list[Any]:
        if len(inputs) != 1:
            return []
        item = inputs[0]
        kind = item.path if isinstance(item, ResourceNode) and isinstance(item.path, str) else ""
        value = _raw(item)
        if isinstance(value, FP_Type):
            value = str(value).lstrip("@")
        out = _boundary(value, high, kind, precision)
        return [] if out is None else [out]

    return fn


def _fp_resource_key(ctx: Any, inputs: list[Any]) -> list[Any]:
    return [k for item in inputs for k in resource_key(_raw(item))]


def _fp_reference_key(ctx: Any, inputs: list[Any], rtype: Any = None) -> list[Any]:
    name = _type_name(rtype)
    return [k for item in inputs for k in reference_key(_raw(item), name)]


def _type_name(rtype: Any) -> str | None:
    """The type argument of getReferenceKey() as fhirpathpy passes it (a string, a TypeInfo or a list)."""
    if rtype is None:
        return None
    if isinstance(rtype, list):
        rtype = rtype[0] if rtype else None
    if rtype is None:
        return None
    return str(getattr(rtype, "name", rtype)).split(".")[-1]


#: Registered into fhirpathpy's function table when it is loaded (names it does not define: never replaces one of
#: its own), so they receive the typed nodes: lowBoundary() of a date and of a dateTime with the same text differ.
_FUNCTIONS = {
    "getResourceKey": {"fn": _fp_resource_key, "arity": {0: []}},
    "getReferenceKey": {"fn": _fp_reference_key, "arity": {0: [], 1: ["TypeSpecifier"]}},
    "lowBoundary": {"fn": _fp_boundary(False), "arity": {0: [], 1: ["Integer"]}},
    "highBoundary": {"fn": _fp_boundary(True), "arity": {0: [], 1: ["Integer"]}},
}


def _join(ctx: Any, inputs: list[Any], separator: str = "") -> list[Any]:
    """``join()`` as the SQL-on-FHIR v2 suite expects: an empty collection joins to ``''`` (fhirpathpy: empty)."""
    values = [_raw(i) for i in inputs]
    if not all(isinstance(v, str) for v in values):
        raise TypeError("join() requires a collection of strings")
    return [separator.join(values)]


# --------------------------------------------------------------------------------------------------------------
# The compiled path
# --------------------------------------------------------------------------------------------------------------


class Path:
    """One FHIRPath expression, compiled once; evaluated on a focus item with an :class:`Env`."""

    __slots__ = ("_slow", "expression", "fast", "steps")

    def __init__(self, expression: str, constants: Mapping[str, Any] | None = None) -> None:
        if not isinstance(expression, str) or not expression.strip():
            raise PathError(f"FHIRPath expression must be a non-empty string, got {expression!r}")
        self.expression = expression
        tree = parse_subset(expression)  # microseconds; fhirpathpy's ANTLR parser takes milliseconds
        if tree is None:
            try:
                tree = _fhirpathpy()["parse"](expression)
            except Exception as exc:
                raise PathError(f"invalid FHIRPath '{expression}': {type(exc).__name__}") from None
        try:
            self.fast: Fn | None = _compile(tree["children"][0], set(constants or ()))
        except _Unsupported:
            self.fast = None
        #: the steps when the whole expression is a plain chain (columns sharing a prefix evaluate it once)
        self.steps: tuple[tuple[str, ...], ...] | None = None
        if self.fast is not None:
            try:
                chain = _chain(tree["children"][0])
            except _Unsupported:
                chain = None
            if chain is not None and len(chain) > 1:
                self.steps = tuple(chain)
                if chain[-1][0] == "m":  # a column's value: a primitive with only an extension yields nothing
                    self.fast = _fused(chain, terminal=True)
        self._slow: Callable[..., Any] | None = None  # fhirpathpy's compiled form, made when first needed

    def evaluate(self, focus: Any, env: Env) -> list[Any]:
        """The collection the expression yields on ``focus`` (JSON values, or fhirpathpy nodes from the fallback).

        ``focus`` None means the empty collection (the null row of an empty ``forEachOrNull``)."""
        if self.fast is not None:
            try:
                return self.fast([] if focus is None else [_raw(focus)], env)
            except Fallback:
                pass
        return self.slow(focus, env)

    def slow(self, focus: Any, env: Env) -> list[Any]:
        """Evaluate with fhirpathpy (full FHIRPath, R4 model)."""
        variables = {**env.variables, "resource": env.resource, "rootResource": env.resource}
        if self._slow is None:
            fp = _fhirpathpy()
            self._slow = fp["compile"](self.expression, model=fp["model"], options={"returnRawData": True})
        try:
            return list(self._slow([] if focus is None else focus, variables))
        except Exception as exc:
            raise PathError(f"cannot evaluate '{self.expression}': {type(exc).__name__}: {exc}") from None


def raw(item: Any) -> Any:
    """An item as its JSON value (fhirpathpy's fallback gives nodes)."""
    return item.data if isinstance(item, ResourceNode) else item


_raw = raw


def plain(value: Any) -> Any:
    """A result item as a plain JSON value (fhirpathpy returns nodes, Decimals and date objects)."""
    if isinstance(value, ResourceNode):
        value = value.data
    if isinstance(value, Decimal):
        as_int = int(value)
        return as_int if value == as_int and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, FP_Type):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------------------
# Fast subset compiler
# --------------------------------------------------------------------------------------------------------------

_LITERAL_TYPES = {"StringLiteral", "NumberLiteral", "BooleanLiteral"}
_PRIMITIVE_TYPES = {
    "boolean", "integer", "string", "decimal", "uri", "url", "canonical", "base64Binary", "instant", "date",
    "dateTime", "time", "code", "oid", "id", "markdown", "unsignedInt", "positiveInt", "uuid",
}  # fmt: skip
_STRING_ESCAPES = {"'": "'", '"': '"', "`": "`", "r": "\r", "n": "\n", "t": "\t", "f": "\f", "\\": "\\", "/": "/"}


def _one(node: dict[str, Any]) -> dict[str, Any]:
    kids = node.get("children") or []
    if len(kids) != 1:
        raise _Unsupported
    return kids[0]


def _string_literal(text: str) -> str:
    body = text[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u":
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_STRING_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _literal(node: dict[str, Any]) -> Any:
    kind, text = node["type"], node["text"]
    if kind == "StringLiteral":
        return _string_literal(text)
    if kind == "BooleanLiteral":
        return text == "true"
    if "." in text:
        return Decimal(text)
    return int(text)


def _member_get(name: str, terminal: bool = False) -> Fn:
    """Child ``name`` of each dict item; a primitive with an extension, or a choice element, goes to fhirpathpy.

    ``terminal``: the member ends the expression, so a primitive that has only an extension (``_code`` without
    ``code``: a data-absent reason on a unit) yields nothing, as fhirpathpy's raw result does (no fallback)."""
    under = "_" + name
    choice = name in _CHOICE_NAMES

    def get(items: list[Any], env: Env) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if type(item) is not dict:
                if isinstance(item, list | tuple):
                    raise Fallback
                continue
            value = item.get(name)
            if under in item:
                if terminal and value is None:
                    continue
                raise Fallback
            if value is None:
                if choice and _has_choice(item, name):
                    raise Fallback
                continue
            if isinstance(value, list):
                out.extend(value)
            else:
                out.append(value)
        return out

    return get


#: Element names that are a choice ([x]) somewhere in FHIR R4: only for these can a missing key hide a value. The
#: names of fhirpathpy's R4 model (``choiceTypePaths``), written out so that compiling a view does not load it (R4
#: is frozen; tests/test_views.py checks the list against the model).
_CHOICE_NAMES = frozenset({
    "abatement", "additive", "age", "allowed", "amount", "answer", "asNeeded", "author", "born", "bounds",
    "characteristic", "chargeItem", "code", "collected", "content", "created", "date", "deceased", "defaultValue",
    "definingSubstance", "definition", "detail", "diagnosis", "dose", "doseNumber", "due", "effective", "entity",
    "event", "example", "fastingStatus", "fixed", "identified", "indication", "item", "legallyBinding",
    "location", "manufacturer", "maxValue", "medication", "minValue", "minimumVolume", "module", "multipleBirth",
    "name", "occurred", "occurrence", "offset", "onset", "participantEffective", "pattern", "performed",
    "probability", "procedure", "product", "quantity", "rate", "reported", "scheduled", "seriesDoses", "serviced",
    "source", "start", "statusReason", "studyEffective", "subject", "substance", "target", "time", "timing",
    "topic", "used", "value", "when",
})  # fmt: skip


def _has_choice(item: dict[str, Any], name: str) -> bool:
    n = len(name)
    return any(len(k) > n and k.startswith(name) and k[n].isupper() for k in item)


def _choice_get(name: str, type_name: str) -> Fn:
    """``name.ofType(T)``: a choice element's JSON property ``name`` + ``T`` (capitalised), or, where ``name``
    itself is present (not a choice), its resources of type ``T`` (``entry.resource.ofType(Observation)``)."""
    key = name + type_name[0].upper() + type_name[1:]
    under = "_" + key

    def get(items: list[Any], env: Env) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            plain_value = item.get(name)
            if plain_value is not None:
                for v in plain_value if isinstance(plain_value, list) else [plain_value]:
                    if not isinstance(v, dict) or "resourceType" not in v:
                        raise Fallback  # a typed non-resource value: fhirpathpy knows its type
                    if v["resourceType"] == type_name:
                        out.append(v)
                continue
            if under in item:
                raise Fallback
            value = item.get(key)
            if value is None:
                continue
            if isinstance(value, list):
                out.extend(value)
            else:
                out.append(value)
        return out

    return get


def _identifier(node: dict[str, Any]) -> str:
    ident = _one(node)
    if ident["type"] != "Identifier":
        raise _Unsupported
    text = ident["text"]
    if text.startswith("`"):
        text = text[1:-1]
    return text


def _function_parts(node: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(name, parameter expressions) of a FunctionInvocation node."""
    functn = _one(node)
    kids = functn.get("children") or []
    name = _identifier({"children": [kids[0]]})
    params = (kids[1].get("children") or []) if len(kids) > 1 else []
    return name, params


def _type_specifier(node: dict[str, Any]) -> str:
    """The type name of an ``ofType(T)`` argument (a bare identifier such as ``Quantity``)."""
    text = node.get("text") or ""
    if not re.fullmatch(r"(FHIR\.)?[A-Za-z][A-Za-z0-9]*", text):
        raise _Unsupported
    return text.split(".")[-1]


def _compile(node: dict[str, Any], constants: set[str]) -> Fn:
    kind = node["type"]
    if kind in {"TermExpression", "InvocationTerm", "LiteralTerm", "ParenthesizedTerm", "ExternalConstantTerm"}:
        return _compile(_one(node), constants)
    if kind in _LITERAL_TYPES:
        value = _literal(node)
        return lambda items, env: [value]
    if kind == "ExternalConstant":
        name = _identifier(node) if node.get("children") else ""
        if name not in constants and name not in {"rowIndex", "resource", "rootResource"}:
            raise _Unsupported
        if name in {"resource", "rootResource"}:
            return lambda items, env: [env.resource]

        def constant(items: list[Any], env: Env) -> list[Any]:
            value = env.variables.get(name)
            if value is None:
                return []
            if isinstance(value, float | int) and not isinstance(value, bool):
                return [value]
            if not isinstance(value, str | bool | int | Decimal):
                raise Fallback
            return [value]

        return constant
    if kind == "MemberInvocation":
        return _member_get(_identifier(node))
    if kind == "ThisInvocation":
        return lambda items, env: items
    if kind == "FunctionInvocation":
        return _function(node, None, constants)
    if kind == "InvocationExpression":
        steps = _chain(node)
        if steps is not None and len(steps) > 1:
            return _fused(steps)
        left, right = node["children"]
        if right["type"] == "FunctionInvocation":
            name, params = _function_parts(right)
            if name == "ofType" and len(params) == 1 and _last_member(left) is not None:
                base, member = _last_member(left)  # type: ignore[misc]
                type_name = _type_specifier(params[0])
                get = _choice_get(member, type_name)
                if type_name in _PRIMITIVE_TYPES or type_name[0].isupper():
                    if base is None:
                        return get
                    prev = _compile(base, constants)
                    return lambda items, env: get(prev(items, env), env)
            if name == "where" and len(params) == 1:
                indexed = _indexed_where(left, params[0], constants)
                if indexed is not None:
                    return indexed
            return _function(right, _compile(left, constants), constants)
        prev = _compile(left, constants)
        nxt = _compile(right, constants)
        return lambda items, env: nxt(prev(items, env), env)
    if kind == "IndexerExpression":
        base_node, index_node = node["children"]
        base = _compile(base_node, constants)
        index = _compile(index_node, constants)

        def indexer(items: list[Any], env: Env) -> list[Any]:
            coll = base(items, env)
            idx = index(items, env)
            if len(idx) != 1 or not isinstance(idx[0], int) or isinstance(idx[0], bool):
                raise Fallback
            return [coll[idx[0]]] if 0 <= idx[0] < len(coll) else []

        return indexer
    if kind == "EqualityExpression":
        op = node.get("terminalNodeText", [None])[0]
        if op not in {"=", "!="}:
            raise _Unsupported
        a, b = (_compile(c, constants) for c in node["children"])
        negate = op == "!="

        def equal(items: list[Any], env: Env) -> list[Any]:
            left, right = a(items, env), b(items, env)
            if not left or not right:
                return []
            if len(left) != len(right):
                return [negate]
            return [all(_equal(x, y) for x, y in zip(left, right, strict=True)) != negate]

        return equal
    if kind in {"AndExpression", "OrExpression"}:
        op = node.get("terminalNodeText", [None])[0]
        a, b = (_compile(c, constants) for c in node["children"])
        if kind == "AndExpression":

            def conj(items: list[Any], env: Env) -> list[Any]:
                x = _truth(a(items, env))
                if x is False:
                    return [False]
                y = _truth(b(items, env))
                if y is False:
                    return [False]
                return [True] if x is True and y is True else []

            return conj
        if op != "or":
            raise _Unsupported

        def disj(items: list[Any], env: Env) -> list[Any]:
            x = _truth(a(items, env))
            if x is True:
                return [True]
            y = _truth(b(items, env))
            if y is True:
                return [True]
            return [False] if x is False and y is False else []

        return disj
    raise _Unsupported


def _last_member(node: dict[str, Any]) -> tuple[dict[str, Any] | None, str] | None:
    """Split ``base.member`` (or a bare ``member``) into its base expression and the member name."""
    if node["type"] == "TermExpression":
        inner = _one(node)
        if inner["type"] == "InvocationTerm" and _one(inner)["type"] == "MemberInvocation":
            return None, _identifier(_one(inner))
        return None
    if node["type"] == "InvocationExpression":
        base, right = node["children"]
        if right["type"] == "MemberInvocation":
            return base, _identifier(right)
    return None


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, bool) or isinstance(y, bool):
        return type(x) is type(y) and x == y
    if isinstance(x, int | float | Decimal) and isinstance(y, int | float | Decimal):
        return Decimal(str(x)) == Decimal(str(y))
    if isinstance(x, str) and isinstance(y, str):
        return x == y
    if isinstance(x, dict) and isinstance(y, dict):
        return x == y
    if type(x) is not type(y):
        raise Fallback  # e.g. a date string against a date constant: fhirpathpy knows the types
    return bool(x == y)


def _truth(coll: list[Any]) -> bool | None:
    """Singleton evaluation of a collection as a Boolean (None: empty)."""
    if not coll:
        return None
    if len(coll) > 1:
        raise Fallback
    value = coll[0]
    if isinstance(value, bool):
        return value
    raise Fallback


def _function(node: dict[str, Any], base: Fn | None, constants: set[str]) -> Fn:
    name, params = _function_parts(node)
    src: Fn = base if base is not None else (lambda items, env: items)
    if name in {"first", "last", "empty", "exists", "not", "count", "getResourceKey"} and not params:
        if name == "first":
            return lambda items, env: src(items, env)[:1]
        if name == "last":
            return lambda items, env: src(items, env)[-1:]
        if name == "empty":
            return lambda items, env: [not src(items, env)]
        if name == "exists":
            return lambda items, env: [bool(src(items, env))]
        if name == "count":
            return lambda items, env: [len(src(items, env))]
        if name == "getResourceKey":
            return lambda items, env: [k for item in src(items, env) for k in resource_key(item)]

        def negation(items: list[Any], env: Env) -> list[Any]:
            value = _truth(src(items, env))
            return [] if value is None else [not value]

        return negation
    if name == "exists" and len(params) == 1:
        pairs = [_member_literal(c) for c in _conjuncts(params[0])]
        if pairs and all(p is not None and isinstance(p[1], str) for p in pairs):
            return _exists_equal(src, tuple(pairs))  # type: ignore[arg-type]
    if name in {"where", "exists"} and len(params) == 1:
        crit = _compile(params[0], constants)

        def filtered(items: list[Any], env: Env) -> list[Any]:
            return [item for item in src(items, env) if _truth(crit([item], env)) is True]

        if name == "where":
            return filtered
        return lambda items, env: [bool(filtered(items, env))]
    if name == "extension" and len(params) == 1:
        url_fn = _compile(params[0], constants)

        def extension(items: list[Any], env: Env) -> list[Any]:
            urls = url_fn(items, env)
            if len(urls) != 1 or not isinstance(urls[0], str):
                raise Fallback
            url = urls[0]
            out = []
            for item in src(items, env):
                if not isinstance(item, dict):
                    raise Fallback  # a primitive's extension lives in "_name": fhirpathpy knows
                out.extend(e for e in item.get("extension", ()) if isinstance(e, dict) and e.get("url") == url)
            return out

        return extension
    if name == "join" and len(params) <= 1:
        sep_fn = _compile(params[0], constants) if params else (lambda items, env: [""])

        def join(items: list[Any], env: Env) -> list[Any]:
            values = src(items, env)
            sep = sep_fn(items, env)
            if len(sep) != 1 or not isinstance(sep[0], str) or not all(isinstance(v, str) for v in values):
                raise Fallback
            return [sep[0].join(values)]

        return join
    if name == "getReferenceKey" and len(params) <= 1:
        rtype = _type_specifier(params[0]) if params else None
        return lambda items, env: [k for item in src(items, env) for k in reference_key(item, rtype)]
    raise _Unsupported


# --------------------------------------------------------------------------------------------------------------
# Indexed where(): a wide view picks ~60 resources out of a bundle by their fixed codes, each with
# ``entry.resource.ofType(T).where(code.coding.exists(system = 'S' and code = 'C') and ...)``. Scanning the bundle
# once per selector is quadratic; instead the first conjunct of the form ``P.exists(a = 'x' and b = 'y')`` is
# answered from an index of the input collection by (a, b) of P's items, built once per resource and input.
# --------------------------------------------------------------------------------------------------------------


def _conjuncts(node: dict[str, Any]) -> list[dict[str, Any]]:
    if node["type"] == "AndExpression":
        left, right = node["children"]
        return _conjuncts(left) + _conjuncts(right)
    if node["type"] == "TermExpression" and _one(node)["type"] == "ParenthesizedTerm":
        return _conjuncts(_one(_one(node)))
    return [node]


def _member_literal(node: dict[str, Any]) -> tuple[str, Any] | None:
    """``member = 'literal'`` -> (member, literal)."""
    if node["type"] != "EqualityExpression" or node.get("terminalNodeText", [None])[0] != "=":
        return None
    left, right = node["children"]
    split = _last_member(left)
    if split is None or split[0] is not None:
        return None
    lit = right
    while lit["type"] in {"TermExpression", "LiteralTerm"}:
        lit = _one(lit)
    if lit["type"] != "StringLiteral":
        return None
    return split[1], _literal(lit)


def _index_spec(node: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...], tuple[Any, ...]] | None:
    """``P.exists(a = 'x' and b = 'y')`` -> (P node, (a, b), ('x', 'y'))."""
    if node["type"] != "InvocationExpression":
        return None
    base, right = node["children"]
    if right["type"] != "FunctionInvocation":
        return None
    name, params = _function_parts(right)
    if name != "exists" or len(params) != 1:
        return None
    pairs = [_member_literal(c) for c in _conjuncts(params[0])]
    if not pairs or any(p is None for p in pairs):
        return None
    return base, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)  # type: ignore[index]


_UNINDEXABLE: dict[Any, Any] = {}


def _build_index(coll: list[Any], keys: Fn, members: tuple[str, ...], env: Env) -> dict[Any, Any]:
    """(member values) -> items of ``coll`` having a key item with those values, in collection order."""
    index: dict[Any, list[Any]] = {}
    for item in coll:
        for value in keys([item], env):
            if not isinstance(value, dict):
                continue
            key = tuple(value.get(m) for m in members)
            if any(isinstance(k, list | dict) for k in key):
                return _UNINDEXABLE  # a repeating member: answer by scanning
            bucket = index.setdefault(key, [])
            if not bucket or bucket[-1] is not item:
                bucket.append(item)
    return index


def _indexed_where(left: dict[str, Any], crit_node: dict[str, Any], constants: set[str]) -> Fn | None:
    conjuncts = _conjuncts(crit_node)
    found = [(i, s) for i, c in enumerate(conjuncts) if (s := _index_spec(c)) is not None]
    if not found:
        return None
    position, (key_node, members, wanted) = found[0]
    src = _compile(left, constants)
    keys = _compile(key_node, constants)
    crit = _compile(crit_node, constants)
    # the indexed conjunct holds for every item the index returns: only the others are evaluated on them
    others = [_compile(c, constants) for i, c in enumerate(conjuncts) if i != position]

    def rest(item: Any, env: Env) -> bool:
        return all(_truth(fn([item], env)) is True for fn in others)

    memo_key = (left.get("text"), key_node.get("text"), members)

    def where(items: list[Any], env: Env) -> list[Any]:
        if len(items) != 1:
            return [item for item in src(items, env) if _truth(crit([item], env)) is True]
        slot = (memo_key, id(items[0]))
        index = env.memo.get(slot)
        if index is None:
            index = _build_index(src(items, env), keys, members, env)
            env.memo[slot] = index
        if index is _UNINDEXABLE:
            return [item for item in src(items, env) if _truth(crit([item], env)) is True]
        return [item for item in index.get(wanted, ()) if rest(item, env)]

    return where


# --------------------------------------------------------------------------------------------------------------
# Fused chains: ``value.ofType(CodeableConcept).coding.first().code`` (the shape of most view columns) runs as one
# loop instead of one closure per step, and stops at the first empty step.
# --------------------------------------------------------------------------------------------------------------


def _chain(node: dict[str, Any]) -> list[tuple[str, ...]] | None:
    """The steps of a pure chain of members, ``ofType()`` on a member and ``first()``, else None."""
    kind = node["type"]
    if kind == "TermExpression":
        inner = _one(node)
        if inner["type"] == "InvocationTerm" and _one(inner)["type"] == "MemberInvocation":
            return [("m", _identifier(_one(inner)))]
        return None
    if kind != "InvocationExpression":
        return None
    left, right = node["children"]
    base = _chain(left)
    if base is None:
        return None
    if right["type"] == "MemberInvocation":
        return [*base, ("m", _identifier(right))]
    if right["type"] != "FunctionInvocation":
        return None
    name, params = _function_parts(right)
    if name == "first" and not params:
        return [*base, ("f",)]
    if name == "extension" and len(params) == 1:
        lit = params[0]
        while lit["type"] in {"TermExpression", "LiteralTerm"}:
            lit = _one(lit)
        if lit["type"] == "StringLiteral":
            return [*base, ("x", _literal(lit))]
        return None
    if name == "ofType" and len(params) == 1 and base[-1][0] == "m":
        return [*base[:-1], ("c", base[-1][1], _type_specifier(params[0]))]
    return None


def _fused(steps: list[tuple[str, ...]], terminal: bool = False) -> Fn:
    """One closure for a chain, with the checks of :func:`_member_get` and :func:`_choice_get` inline
    (``terminal``: the chain is a whole expression ending in a member, see :func:`_member_get`)."""
    plan: list[tuple[int, str, str, str, bool, bool]] = []
    for step in steps:
        if step[0] == "m":
            plan.append((0, step[1], "_" + step[1], "", step[1] in _CHOICE_NAMES, False))
        elif step[0] == "c":
            key = step[1] + step[2][0].upper() + step[2][1:]
            plan.append((1, step[1], "_" + key, key, False, False))
        elif step[0] == "x":
            plan.append((3, "extension", "", step[1], False, False))
        else:
            plan.append((2, "", "", "", False, False))
    if terminal and plan and plan[-1][0] == 0:  # the last member: only an extension means no value
        plan[-1] = (*plan[-1][:5], True)
    typed = {step[1]: step[2] for step in steps if step[0] == "c"}

    def run(items: list[Any], env: Env) -> list[Any]:
        for op, name, under, key, choice, bare in plan:
            if op == 2:
                items = items[:1]
                continue
            out: list[Any] = []
            if op == 3:  # extension('url') of complex elements; a primitive's lives in "_name": fhirpathpy
                for item in items:
                    if type(item) is not dict:
                        raise Fallback
                    out.extend(e for e in item.get("extension", ()) if type(e) is dict and e.get("url") == key)
                if not out:
                    return out
                items = out
                continue
            for item in items:
                if type(item) is not dict:
                    if isinstance(item, list | tuple):
                        raise Fallback
                    continue
                value = item.get(name)
                if under in item:
                    if bare and value is None:
                        continue  # only an extension: no value (as fhirpathpy's raw result)
                    raise Fallback
                if op == 0:
                    if value is None:
                        if choice and _has_choice(item, name):
                            raise Fallback
                        continue
                elif value is not None:  # ofType() on a plain element: its resources of that type
                    for v in value if type(value) is list else [value]:
                        if type(v) is not dict or "resourceType" not in v:
                            raise Fallback
                        if v["resourceType"] == typed[name]:
                            out.append(v)
                    continue
                else:
                    value = item.get(key)
                    if value is None:
                        continue
                if type(value) is list:
                    out.extend(value)
                else:
                    out.append(value)
            if not out:
                return out
            items = out
        return items

    return run


def chain_fn(steps: Sequence[tuple[str, ...]]) -> Fn:
    """The compiled form of a chain's steps (for a prefix shared by several columns)."""
    return _fused(list(steps))


def member_fn(name: str) -> Fn:
    """The compiled form of a member step that ends a column's expression (its ``name`` and ``choice``, whether
    a missing key can hide a choice element, are attributes: the runner inlines the common case)."""
    fn: Any = _member_get(name, terminal=True)
    fn.name, fn.choice = name, name in _CHOICE_NAMES
    return fn


def has_choice(item: dict[str, Any], name: str) -> bool:
    """Whether ``item`` holds choice element ``name`` under a typed key (``valueQuantity`` for ``value``)."""
    return _has_choice(item, name)


def _exists_equal(src: Fn, pairs: tuple[tuple[str, str], ...]) -> Fn:
    """``P.exists(a = 'x' and b = 'y')``: whether some item of P has exactly those string members (how views pick
    a coding); any other shape of item (a primitive with an extension, a repeating member) goes to fhirpathpy."""

    def exists(items: list[Any], env: Env) -> list[Any]:
        for item in src(items, env):
            if type(item) is not dict:
                raise Fallback
            for member, wanted in pairs:
                value = item.get(member)
                if type(value) is not str or "_" + member in item:
                    if value is None and "_" + member not in item:
                        break  # absent: this item does not match
                    raise Fallback
                if value != wanted:
                    break
            else:
                return [True]
        return [False]

    return exists
