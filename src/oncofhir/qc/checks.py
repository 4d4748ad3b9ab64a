"""The checks of a use case, derived from its compiled dictionary, evaluated over a whole center at once.

Every check is one variable and one type. For each record it is *not applicable*, *passes* or *fails*; the result
is an int8 matrix (checks x records) computed with numpy column operations, never a Python loop per record (a
center of 20,000 records and ~300 checks takes well under a second). Applicability, the heart of a correct score:

- a field hidden by its branching logic is not applicable to any check (its value, if any, is flagged by the
  ``branching`` check instead);
- ``minimal_req`` applies where the minimal condition holds; ``mandatory_req`` where the mandatory condition holds
  and the minimal one does not (one requirement check per variable and record, at the strictest level that
  applies; a minimal variable is also mandatory, so ``minimal: true``, or the same condition at both levels,
  gives no ``mandatory_req`` check);
- conformance and plausibility checks apply to present values only: a blank is a completeness question;
- a mapping rule (relational, computational, temporal: one check per rule, its id the rule's) applies where its
  ``when`` holds and every variable it names is shown, present and conforming, so a blank or a bad code is never
  counted twice; a ``calc`` field is recomputed with the logic engine and compared with its exported value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..dictionary.compiled import CompiledDictionary, Field, Rule
from ..errors import DictionaryError, InputDataError
from ..logic import LogicSyntaxError, MissingVariableError, parse
from .model import FAIL, NOT_APPLICABLE, PASS, Check, labelled
from .values import Column, codes_of, date_format, is_date, is_integer, is_number, number_or_nan

# NA=0, PASS=1, FAIL=2 lets _status compute the matrix arithmetically.
assert (NOT_APPLICABLE, PASS, FAIL) == (0, 1, 2)

LABEL_CHARS = 60
ANY_TEXT = "is not text (any value conforms: this check cannot fail)"
NOT_DATA = {"descriptive"}
BLANK = "''"  # how a failure's value list shows a blank variable


@dataclass(slots=True)
class QCResult:
    """The checks of one center and their outcome per record (``status[check, record]``: NA / PASS / FAIL)."""

    checks: list[Check]
    status: NDArray[np.int8]
    columns: dict[str, Column] = field(default_factory=dict)

    @property
    def n_records(self) -> int:
        """Number of records checked."""
        return int(self.status.shape[1])

    def value_list(self, variable: str) -> list[str]:
        """Every record's (trimmed) value of ``variable``."""
        col = self.columns[variable]
        return [col.uniques[k] for k in col.codes.tolist()]

    def value(self, variable: str, record: int) -> str:
        """The (trimmed) value of ``variable`` in record ``record``, for the drill-down."""
        col = self.columns[variable]
        return col.uniques[col.codes[record]]

    def shown(self, check: int, record: int, labels: Mapping[str, Mapping[str, str]]) -> str:
        """What a failure of a rule or calculation shows: every variable it names with its value, coded values
        labelled (``bcstproxy: 1 = Luminal A; er: 0``); blank values as ``''``."""
        c = self.checks[check]
        parts = []
        for v in c.variables:
            x = self.value(v, record)
            parts.append(f"{v}: {labelled(labels, v, x) if x else BLANK}")
        return "; ".join(parts)


class _LogicColumns(Mapping[str, Any]):
    """The columns the logic engine sees: trimmed text, checkbox columns ``name___code`` derived on demand."""

    def __init__(self, columns: Mapping[str, Column], checkboxes: Mapping[str, tuple[str, str]]) -> None:
        self._columns = columns
        self._checkboxes = checkboxes
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            if name in self._columns:
                self._cache[name] = self._columns[name].text()
            elif name in self._checkboxes:
                var, code = self._checkboxes[name]
                ticked = self._columns[var].per_value(lambda u: code in codes_of(u, True))
                self._cache[name] = np.where(ticked, "1", "0").astype(object)
            else:
                raise KeyError(name)
        return self._cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self._columns or name in self._checkboxes

    def __iter__(self) -> Iterator[str]:
        yield from self._columns
        yield from self._checkboxes

    def __len__(self) -> int:
        return len(self._columns) + len(self._checkboxes)


class _Conditions:
    """REDCap logic evaluated once per distinct expression text over the whole center."""

    def __init__(self, columns: _LogicColumns, n: int) -> None:
        self.columns = columns
        self.n = n
        self._cache: dict[str, NDArray[np.bool_]] = {}

    def __call__(self, text: str, owner: str) -> NDArray[np.bool_]:
        if text not in self._cache:
            self._cache[text] = np.asarray(self._run(text, owner, values=False), dtype=bool)
        return self._cache[text]

    def values(self, text: str, owner: str) -> NDArray[np.object_]:
        """``text`` evaluated as a calculation: one value per record (``''`` blank, ``float``, ``str``)."""
        return self._run(text, owner, values=True)

    def _run(self, text: str, owner: str, *, values: bool) -> Any:
        try:
            expr = parse(text)
            if values:
                return expr.evaluate_values(self.columns, n_rows=self.n)
            return expr.evaluate(self.columns, n_rows=self.n)
        except MissingVariableError as exc:
            raise InputDataError(
                f"logic of {owner} ({text}) names column(s) {', '.join(exc.missing)} "
                "absent from the records: recompile the dictionary and re-run ingest"
            ) from None
        except LogicSyntaxError as exc:  # the compiler lints logic, so only a hand-edited JSON gets here
            raise DictionaryError(f"logic of {owner}: {exc}") from None


def _label(f: Field) -> str:
    text = " ".join(f.label.split()) or f.name
    if len(text) > LABEL_CHARS:
        text = text[: LABEL_CHARS - 1].rstrip() + "…"
    return f"{text} ({f.name})" if text != f.name else f.name


def _datatype_rule(f: Field) -> tuple[Callable[[str], bool] | None, str]:
    """The conformance test of ``f``'s values and what failing it means (``None``: any text conforms)."""
    checkbox = f.type == "checkbox"
    if f.choices:
        if all(is_integer(c) for c in f.choices):
            return (lambda u: all(is_integer(c) for c in codes_of(u, checkbox))), "is not a code (codes are integers)"
        return None, ANY_TEXT
    kind = f.datatype
    if kind == "integer":
        return is_integer, "is not an integer (digits with an optional sign)"
    if kind == "number":
        return is_number, "is not a number (decimal point, no thousands separator)"
    if kind == "date":
        fmt = date_format(f.validation)
        spelled = fmt.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD").replace("%H", "HH")
        spelled = spelled.replace("%M", "MM").replace("%S", "SS")
        return (lambda u: is_date(u, fmt)), f"is not a valid date ({spelled})"
    return None, ANY_TEXT


def _describe_range(lo: str, hi: str) -> str:
    if lo and hi:
        return f"between {lo} and {hi}"
    return f"at least {lo}" if lo else f"at most {hi}"


def _range_rule(f: Field, col: Column) -> tuple[NDArray[np.bool_], NDArray[np.bool_]] | None:
    """(has a comparable value, within bounds) for a field with min/max, or ``None`` if it has no usable bound."""
    if f.datatype in {"integer", "number"}:
        lo, hi = number_or_nan(f.min), number_or_nan(f.max)
        if np.isnan(lo) and np.isnan(hi):
            return None
        x = col.numbers()
        comparable = ~np.isnan(x)
        with np.errstate(invalid="ignore"):
            inside = comparable & (np.isnan(lo) | (x >= lo)) & (np.isnan(hi) | (x <= hi))
        return comparable, inside
    if f.datatype == "date":
        fmt = date_format(f.validation)
        lo_d = f.min if f.min and is_date(f.min, fmt) else ""
        hi_d = f.max if f.max and is_date(f.max, fmt) else ""
        if not lo_d and not hi_d:
            return None
        comparable = col.per_value(lambda u: is_date(u, fmt))
        inside = col.per_value(lambda u: is_date(u, fmt) and (not lo_d or u >= lo_d) and (not hi_d or u <= hi_d))
        return comparable, inside
    return None


def _status(applicable: NDArray[np.bool_], passed: NDArray[np.bool_]) -> NDArray[np.int8]:
    """NA where not applicable, else PASS/FAIL (``applicable * (2 - passed)`` without a branch per record)."""
    return applicable.astype(np.int8) * (np.int8(FAIL) - passed.astype(np.int8))


def run_checks(dd: CompiledDictionary, columns: Mapping[str, Sequence[str] | NDArray[Any]], n: int) -> QCResult:
    """Evaluate every check of ``dd`` over ``n`` records given column-wise (``''`` is blank).

    A dictionary variable absent from ``columns`` is treated as blank (ingest writes every column, so this only
    happens when called directly).
    """
    data_fields = [f for f in dd.fields.values() if f.type not in NOT_DATA]
    cols: dict[str, Column] = {name: Column(values) for name, values in columns.items()}
    for f in data_fields:
        if f.name not in cols:
            cols[f.name] = Column([""] * n)
    for name, col in cols.items():
        if len(col) != n:
            raise ValueError(f"column '{name}' has {len(col)} values, expected {n}")
    checkboxes = {
        f"{f.name}___{code}": (f.name, code) for f in data_fields if f.type == "checkbox" for code in f.choices
    }
    cond = _Conditions(_LogicColumns(cols, checkboxes), n)
    everyone = np.ones(n, dtype=bool)
    order = {f.name: k for k, f in enumerate(data_fields)}
    usable: dict[str, NDArray[np.bool_]] = {}  # shown, not blank and conforming: what a rule may read

    checks: list[Check] = []
    rows: list[NDArray[np.int8]] = []

    def add(f: Field, kind: str, message: str, applicable: NDArray[np.bool_], passed: NDArray[np.bool_]) -> None:
        checks.append(Check(f.name, kind, message))
        rows.append(_status(applicable, passed))

    for f in data_fields:
        col = cols[f.name]
        label = _label(f)
        blank = col.blank()
        visible = cond(f.branching, f"variable '{f.name}'") if f.branching else everyone
        present = visible & ~blank

        # Completeness: one requirement per record, at the strictest level whose condition holds.
        minimal_applies = None
        if f.minimal is not False:
            minimal_applies = visible if f.minimal is True else visible & cond(f.minimal, f"variable '{f.name}'")
            when = "" if f.minimal is True else f" when {f.minimal}"
            add(f, "minimal_req", f"{label} is blank; it is a minimal requirement{when}", minimal_applies, ~blank)
        if f.mandatory is not False and f.minimal is not True and f.mandatory != f.minimal:
            applies = visible if f.mandatory is True else visible & cond(f.mandatory, f"variable '{f.name}'")
            if minimal_applies is not None:
                applies = applies & ~minimal_applies
            when = "" if f.mandatory is True else f" when {f.mandatory}"
            add(f, "mandatory_req", f"{label} is blank; it is a mandatory requirement{when}", applies, ~blank)

        # Conformance.
        if f.max_length is not None:
            limit = f.max_length
            add(
                f,
                "length",
                f"{label} is longer than {limit} characters",
                present,
                col.per_value(lambda u, limit=limit: len(u) <= limit),
            )
        test, what = _datatype_rule(f)
        typed = col.per_value(test) if test else everyone
        add(f, "datatype", f"{label} {what}", present, typed)
        conforming = present & typed
        if f.choices:
            allowed = frozenset(f.choices)
            checkbox = f.type == "checkbox"
            listed = ", ".join(f.choices)
            listed_ok = col.per_value(lambda u, a=allowed, c=checkbox: all(x in a for x in codes_of(u, c)))
            add(f, "permissible", f"{label} is not one of its codes ({listed})", present, listed_ok)
            conforming = conforming & listed_ok
        usable[f.name] = conforming
        if f.type == "calc" and f.calculation:
            inputs = sorted(
                {v.split("___", 1)[0] for v in parse(f.calculation).variables} - {f.name},
                key=lambda v: order.get(v, len(order)),
            )
            computed = cond.values(f.calculation, f"variable '{f.name}' (calculation)")
            applies, same = _compare_computed(col, computed)
            checks.append(
                Check(
                    f.name,
                    "computational",
                    f"{label} is not the value of its calculation ({f.calculation})",
                    variables=(f.name, *inputs),
                )
            )
            rows.append(_status(visible & applies, same))

        # Plausibility.
        if f.min or f.max:
            rule = _range_rule(f, col)
            if rule is not None:
                comparable, inside = rule
                add(f, "range", f"{label} is not {_describe_range(f.min, f.max)}", present & comparable, inside)
        if f.branching:
            hidden = f"{label} has a value although its branching logic ({f.branching}) hides it"
            add(f, "branching", hidden, ~visible, blank)

    for rule in dd.rules:
        check, row = _rule_check(rule, cols, cond, usable, everyone)
        checks.append(check)
        rows.append(row)

    status = np.vstack(rows) if rows else np.zeros((0, n), dtype=np.int8)
    return QCResult(checks, status, {f.name: cols[f.name] for f in data_fields})


def _rule_check(
    rule: Rule,
    cols: Mapping[str, Column],
    cond: _Conditions,
    usable: Mapping[str, NDArray[np.bool_]],
    everyone: NDArray[np.bool_],
) -> tuple[Check, NDArray[np.int8]]:
    """One mapping rule over the center: applies where ``when`` holds and (``if_blank: skip``) every variable it
    names is shown, present and conforming (a blank is a completeness question, a bad code a conformance one, so
    neither is counted twice); passes where ``assert`` holds, or for a computed rule where the variable holds the
    calculation's value."""
    owner = f"rule '{rule.id}'"
    applies = everyone
    if rule.when:
        applies = applies & cond(rule.when, owner)
    if rule.if_blank == "skip":
        for v in rule.variables:
            applies = applies & usable.get(v, everyone)
    if rule.type == "computed":
        computed_applies, passed = _compare_computed(cols[rule.variable], cond.values(rule.assert_, owner))
        applies = applies & computed_applies
    else:
        passed = cond(rule.assert_, owner)
    check = Check(
        rule.variables[0] if rule.variables else rule.id,
        rule.category,
        rule.message,
        rule=rule.id,
        variables=tuple(rule.variables),
        weight=rule.weight,
    )
    return check, _status(applies, passed)


def _compare_computed(col: Column, computed: NDArray[np.object_]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(the calculation gives a value, the stored value equals it) per record.

    Numbers compare to the stored value's own precision (``12.3`` stores 12.34 rounded: equal; REDCap exports
    calculations rounded), anything else as exact text. A blank stored value where the calculation gives one fails
    (REDCap's Data Quality rule H: a calculation not saved).
    """
    stored = col.text()
    n = len(stored)
    applies = np.fromiter((not _blank(c) for c in computed.tolist()), dtype=bool, count=n)
    same = np.zeros(n, dtype=bool)
    memo: dict[tuple[str, Any], bool] = {}
    for r in np.flatnonzero(applies).tolist():
        key = (stored[r], computed[r])
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = _equal(stored[r], computed[r])
        same[r] = hit
    return applies, same


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value == "") or (isinstance(value, float) and np.isnan(value))


def _equal(stored: str, computed: Any) -> bool:
    """Whether ``stored`` spells ``computed`` (a number to the stored value's own number of decimals)."""
    if isinstance(computed, bool):
        computed = 1.0 if computed else 0.0
    if isinstance(computed, int | float):
        x = number_or_nan(stored)
        if np.isnan(x):
            return False
        decimals = len(stored.split(".", 1)[1]) if "." in stored and "e" not in stored.lower() else 0
        return abs(x - float(computed)) <= 0.5 * 10.0**-decimals + 1e-9 * max(1.0, abs(float(computed)))
    text = str(computed)
    if stored == text:
        return True
    x, y = number_or_nan(stored), number_or_nan(text)
    return not np.isnan(x) and not np.isnan(y) and x == y
