"""Run SQL-on-FHIR v2 ViewDefinitions over FHIR resources: rows, one per resource or per ``forEach`` item.

Why our own runner: the maintained Python engines did not fit (``pysof`` needs glibc >= 2.38, absent on Debian 12
and most HPC clusters; ``fhir4ds`` is GPL-3 and ``fhir4ds-v2`` AGPL-3, which an Apache-2.0 workflow cannot ship).
This runner implements the v2 specification (https://sql-on-fhir.org/ig/latest/) and passes the official
conformance suite, vendored in tests/data/sql-on-fhir-v2/ (``python -m oncofhir.views.conformance`` prints the
count). Every FHIRPath expression is compiled once per view (:mod:`oncofhir.views.fhirpath`).

Semantics implemented (spec section "Processing algorithm"): ``where`` filters (each must yield a single Boolean or
nothing), ``constant`` (``%name``), nested ``select`` (cross join), ``forEach`` / ``forEachOrNull`` / ``repeat``,
``unionAll`` (same columns in every branch), ``collection`` columns, ``%rowIndex`` (index of the item in the nearest
enclosing ``forEach``/``forEachOrNull``/``repeat``, 0 at the top), ``getResourceKey()``, ``getReferenceKey()``,
``lowBoundary()``/``highBoundary()``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .fhirpath import Env, Fallback, Path, PathError, chain_fn, has_choice, member_fn, plain, raw

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SELECT_KEYS = {"column", "select", "forEach", "forEachOrNull", "repeat", "unionAll"}


class ViewError(ValueError):
    """A ViewDefinition that is invalid, or that the data makes fail (a column yielding several values)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One output column: its name, FHIR type (if given) and whether it holds a list."""

    name: str
    type: str | None
    collection: bool


@dataclass(slots=True)
class _Select:
    columns: list[tuple[Column, Path]] = field(default_factory=list)
    selects: list[_Select] = field(default_factory=list)
    union: list[_Select] = field(default_factory=list)
    for_each: Path | None = None
    or_null: bool = False
    repeat: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # every column of this subtree, in output order
    #: (prefix fn or None, [(position, column, path, member fn or None)]): columns whose paths share a prefix
    groups: list[tuple[Any, list[tuple[int, Column, Path, Any]]]] = field(default_factory=list)
    #: every column yields nothing on an empty focus (no constant, %rowIndex, literal): an empty forEachOrNull
    #: then gives the row of NULLs without evaluating them (a wide view has many absent resources per patient)
    null_when_empty: bool = False


def _constant_value(spec: Mapping[str, Any], where: str) -> tuple[str, Any]:
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ViewError(f"{where}: constant name {name!r} is not a valid name")
    values = [(k, v) for k, v in spec.items() if k.startswith("value")]
    if len(values) != 1:
        raise ViewError(f"{where}: constant '{name}' needs exactly one value[x]")
    key, value = values[0]
    if key == "valueDecimal" and isinstance(value, float | int):
        value = Decimal(str(value))
    return name, value


class CompiledView:
    """A validated ViewDefinition with every expression compiled; :meth:`rows` runs it on one resource."""

    def __init__(self, view: Any) -> None:
        if not isinstance(view, Mapping):
            raise ViewError("a ViewDefinition must be a JSON object")
        resource = view.get("resource")
        if not isinstance(resource, str) or not resource:
            raise ViewError("ViewDefinition.resource is required (the FHIR resource type the view reads)")
        self.resource_type = resource
        self._expressions: list[str] = []  # every FHIRPath expression of the view, as compiled
        self.name = view.get("name") if isinstance(view.get("name"), str) else None
        constants = view.get("constant") or []
        if not isinstance(constants, list):
            raise ViewError("ViewDefinition.constant must be a list")
        self.constants: dict[str, Any] = dict(
            _constant_value(c, f"constant[{i}]") for i, c in enumerate(constants) if isinstance(c, Mapping)
        )
        if len(self.constants) != len(constants):
            raise ViewError("ViewDefinition.constant: every constant must be an object with a unique name")
        selects = view.get("select")
        if not isinstance(selects, list) or not selects:
            raise ViewError("ViewDefinition.select must be a non-empty list")
        self._root = self._compile_select({"select": selects}, "select")
        self.columns: list[Column] = self._collect_columns(self._root)
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ViewError(f"column name(s) used more than once: {', '.join(dupes)}")
        wheres = view.get("where") or []
        if not isinstance(wheres, list):
            raise ViewError("ViewDefinition.where must be a list")
        self._where: list[Path] = []
        for i, spec in enumerate(wheres):
            if not isinstance(spec, Mapping) or "path" not in spec:
                raise ViewError(f"where[{i}] needs a path")
            self._where.append(self._path(spec["path"], f"where[{i}].path"))
        #: whether %rowIndex is read anywhere (else each forEach item needs no environment of its own)
        self._row_index = any("rowIndex" in e for e in self._expressions)

    # -- compilation -------------------------------------------------------------------------------------------
    def _path(self, expression: Any, where: str) -> Path:
        if not isinstance(expression, str):
            raise ViewError(f"{where}: a FHIRPath expression must be a string, got {expression!r}")
        self._expressions.append(expression)
        try:
            return Path(expression, self.constants)
        except PathError as exc:
            raise ViewError(f"{where}: {exc}") from None

    def _compile_select(self, spec: Any, where: str) -> _Select:
        if not isinstance(spec, Mapping):
            raise ViewError(f"{where}: a select must be an object")
        unknown = set(spec) - _SELECT_KEYS
        if unknown:
            raise ViewError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if "forEach" in spec and "forEachOrNull" in spec:
            raise ViewError(f"{where}: forEach and forEachOrNull are mutually exclusive")
        out = _Select()
        if "forEach" in spec or "forEachOrNull" in spec:
            key = "forEach" if "forEach" in spec else "forEachOrNull"
            out.for_each = self._path(spec[key], f"{where}.{key}")
            out.or_null = key == "forEachOrNull"
        if "repeat" in spec:
            if out.for_each is not None:
                raise ViewError(f"{where}: repeat cannot be combined with forEach/forEachOrNull")
            paths = spec["repeat"]
            if not isinstance(paths, list) or not paths:
                raise ViewError(f"{where}.repeat must be a non-empty list of FHIRPath expressions")
            out.repeat = [self._path(p, f"{where}.repeat[{i}]") for i, p in enumerate(paths)]
        for i, col in enumerate(spec.get("column") or []):
            cw = f"{where}.column[{i}]"
            if not isinstance(col, Mapping):
                raise ViewError(f"{cw}: a column must be an object")
            name = col.get("name")
            if not isinstance(name, str) or not NAME.match(name):
                raise ViewError(f"{cw}: column name {name!r} must match {NAME.pattern}")
            collection = col.get("collection", False)
            if not isinstance(collection, bool):
                raise ViewError(f"{cw}: collection must be true or false")
            ctype = col.get("type")
            out.columns.append(
                (Column(name, ctype if isinstance(ctype, str) else None, collection), self._path(col.get("path"), cw))
            )
        for i, sub in enumerate(spec.get("select") or []):
            out.selects.append(self._compile_select(sub, f"{where}.select[{i}]"))
        union = spec.get("unionAll")
        if union is not None:
            if not isinstance(union, list) or not union:
                raise ViewError(f"{where}.unionAll must be a non-empty list of selects")
            out.union = [self._compile_select(sub, f"{where}.unionAll[{i}]") for i, sub in enumerate(union)]
            first = [c.name for c in self._collect_columns(out.union[0])]
            for i, branch in enumerate(out.union[1:], start=1):
                names = [c.name for c in self._collect_columns(branch)]
                if names != first:
                    raise ViewError(
                        f"{where}.unionAll[{i}]: columns {names} differ from the first branch's {first} "
                        "(every branch must give the same columns in the same order)"
                    )
        out.names = [c.name for c in self._collect_columns(out)]
        out.groups = _group_columns(out.columns)
        out.null_when_empty = (
            not out.selects and not out.union and all(_empty_on_empty(path, self.constants) for _, path in out.columns)
        )
        return out

    def _collect_columns(self, sel: _Select) -> list[Column]:
        cols = [c for c, _ in sel.columns]
        for sub in sel.selects:
            cols.extend(self._collect_columns(sub))
        if sel.union:
            cols.extend(self._collect_columns(sel.union[0]))
        return cols

    # -- evaluation --------------------------------------------------------------------------------------------
    def rows(self, resource: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The view's rows for one resource (empty when it is of another type or filtered out by ``where``)."""
        if resource.get("resourceType") != self.resource_type:
            return []
        try:
            return self._rows(resource)
        except PathError as exc:
            raise ViewError(str(exc)) from None

    def _rows(self, resource: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        env = Env({**self.constants, "rowIndex": 0}, resource)
        for path in self._where:
            result = path.evaluate(resource, env)
            if not result:
                return []
            if len(result) != 1 or not isinstance(plain(result[0]), bool):
                raise ViewError(f"where path '{path.expression}' must yield a single boolean")
            if not plain(result[0]):
                return []
        return self._select(self._root, resource, env)

    def _select(self, sel: _Select, node: Any, env: Env) -> list[tuple[Any, ...]]:
        if sel.for_each is not None:
            foci = sel.for_each.evaluate(node, env)
            if not foci:
                if not sel.or_null:
                    return []
                if sel.null_when_empty:
                    return [(None,) * len(sel.names)]
                return self._focus(sel, None, _at(env, 0)) or [(None,) * len(sel.names)]
        elif sel.repeat:
            foci = list(self._repeat(sel.repeat, node, env))
            if not foci:
                return []
        else:
            return self._focus(sel, node, env)
        out: list[tuple[Any, ...]] = []
        if not self._row_index:  # no expression reads %rowIndex: one environment for every item
            for focus in foci:
                out.extend(self._focus(sel, focus, env))
            return out
        for index, focus in enumerate(foci):
            out.extend(self._focus(sel, focus, _at(env, index)))
        return out

    def _repeat(self, paths: list[Path], node: Any, env: Env) -> Iterator[Any]:
        for path in paths:
            for child in path.evaluate(node, env):
                yield child
                yield from self._repeat(paths, child, env)

    def _focus(self, sel: _Select, focus: Any, env: Env) -> list[tuple[Any, ...]]:
        own: list[Any] = [None] * len(sel.columns)
        items = [] if focus is None else [raw(focus)]
        for prefix, members in sel.groups:
            shared = None
            if prefix is not None:
                try:
                    shared = prefix(items, env)
                except Fallback:
                    shared = None
                if shared is not None and len(shared) == 1 and type(shared[0]) is dict:
                    _members_of(shared[0], members, own, focus, env)  # the common case, inline
                    continue
            for position, column, path, member in members:
                result = None
                try:
                    if shared is not None:
                        result = member(shared, env) if shared else shared
                    elif path.fast is not None:
                        result = path.fast(items, env)
                except Fallback:
                    result = None
                if result is None:
                    result = path.slow(focus, env)
                if len(result) == 1 and type(result[0]) in _SCALARS and not column.collection:
                    own[position] = result[0]  # the common case: a JSON string, integer or boolean as it is
                else:
                    own[position] = _value(column, path, result)
        parts: list[list[tuple[Any, ...]]] = [[tuple(own)]]
        for sub in sel.selects:
            rows = self._select(sub, focus, env)
            if not rows:
                return []
            parts.append(rows)
        if sel.union:
            rows = [row for branch in sel.union for row in self._select(branch, focus, env)]
            if not rows:
                return []
            parts.append(rows)
        if len(parts) == 1:
            return parts[0]
        return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*parts)]


_SCALARS = (str, int, bool)


def _members_of(item: dict[str, Any], members: list[tuple[int, Column, Path, Any]], own: list[Any], focus: Any,
                env: Env) -> None:  # fmt: skip
    """The columns ``prefix.<member>`` of one shared prefix item, with :func:`~.fhirpath.member_fn`'s rules inline
    (a wide view has a few hundred such columns per patient: a call and a list per column cost a third of it)."""
    for position, column, path, member in members:
        name = member.name
        value = item.get(name)
        if value is None:
            if "_" + name in item or not (member.choice and has_choice(item, name)):
                if column.collection:
                    own[position] = []
                continue  # nothing (a primitive with only an extension yields nothing too): NULL
            own[position] = _value(column, path, path.slow(focus, env))
        elif "_" + name in item:
            own[position] = _value(column, path, path.slow(focus, env))
        elif type(value) in _SCALARS and not column.collection:
            own[position] = value
        else:
            own[position] = _value(column, path, value if type(value) is list else [value])


def _at(env: Env, index: int) -> Env:
    """The environment with %rowIndex = ``index`` (the same object when it already is)."""
    if env.variables.get("rowIndex") == index:
        return env
    return Env({**env.variables, "rowIndex": index}, env.resource, env.memo)


def _empty_on_empty(path: Path, constants: Mapping[str, Any]) -> bool:
    """Whether the compiled path yields nothing on an empty input whatever the resource (probed once)."""
    if path.fast is None or "%resource" in path.expression or "%rootResource" in path.expression:
        return False  # those read the resource, which the probe does not have
    probe = Env({**constants, "rowIndex": 0}, _PROBE)
    try:
        return path.fast([], probe) == []
    except Exception:  # a shape the probe cannot decide: evaluate it
        return False


_PROBE = {"resourceType": "_probe"}


def _group_columns(columns: list[tuple[Column, Path]]) -> list[tuple[Any, list[tuple[int, Column, Path, Any]]]]:
    """Group columns whose chains differ only in their last member (``coding.first().code`` / ``.display``), so
    the shared prefix is evaluated once per focus; every other column is a group of its own."""
    groups: dict[Any, list[tuple[int, Column, Path, Any]]] = {}
    order: list[Any] = []
    for position, (column, path) in enumerate(columns):
        steps = path.steps
        if steps is not None and len(steps) > 1 and steps[-1][0] == "m":
            key: Any = steps[:-1]
            member = member_fn(steps[-1][1])
        else:
            key, member = ("single", position), None
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((position, column, path, member))
    out = []
    for key in order:
        members = groups[key]
        if key[0] == "single" or len(members) == 1:
            out.append((None, [(p, c, pa, None) for p, c, pa, _ in members]))
        else:
            out.append((chain_fn(key), members))
    return out


def _value(column: Column, path: Path, result: list[Any]) -> Any:
    if column.collection:
        return [plain(v) for v in result]
    if not result:
        return None
    if len(result) > 1:
        raise ViewError(
            f"column '{column.name}' ({path.expression}) yielded {len(result)} values; "
            "set collection: true or narrow the path"
        )
    value = plain(result[0])
    if column.type == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def run_view(view: Mapping[str, Any], resources: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """All rows of ``view`` over ``resources``, as dicts (column name -> value)."""
    compiled = CompiledView(view)
    names = [c.name for c in compiled.columns]
    return [dict(zip(names, row, strict=True)) for res in resources for row in compiled.rows(res)]
