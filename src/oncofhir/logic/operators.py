"""REDCap operator semantics on :class:`~oncofhir.logic.values.Values`: comparisons and arithmetic.

The rules (REDCap's, made explicit because REDCap itself leaves them to PHP/JavaScript coercion):

- ``=`` / ``<>``: when both values are numeric they compare as numbers (``'0' = '0.0'``, ``[x] = '0'`` is true
  for ``0.0``); otherwise as exact, case-sensitive strings. So ``[x] = ''`` / ``[x] <> ''`` test blankness, and a
  numeric value never equals a non-numeric one.
- ``<  >  <=  >=``: false when either side is blank (REDCap users guard with ``[a] <> '' AND [a] < 5`` because the
  platform's answer is ambiguous; here it is always false). Numbers when both are numeric (``'10' > '9'``), else
  Python string ordering (``'abc' < 'abd'``, ``'abc' > '13'``).
- ``+ - * /``: on numbers; a blank or non-numeric operand, or a division by zero, gives blank.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oncofhir.logic.values import Values

_ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
}


def compare(op: str, a: Values, b: Values, n: int) -> NDArray[np.bool_]:
    """``a op b`` row by row for a canonical comparison operator (``= <> < > <= >=``)."""
    # A column against a constant: decide once per distinct value of the column.
    if a.codes is not None and a.uniques is not None and b.is_const:
        return compare(op, a.uniques, b, len(a.uniques.text))[a.codes]
    if b.codes is not None and b.uniques is not None and a.is_const:
        return compare(op, a, b.uniques, len(b.uniques.text))[b.codes]
    if op == "=":
        return _equal(a, b, n)
    if op == "<>":
        return ~_equal(a, b, n)
    return _order(_ORDERINGS[op], a, b, n)


def arithmetic(op: str, a: Values, b: Values, n: int) -> Values:
    """``a op b`` for ``+ - * /``; blank where an operand is not numeric."""
    with np.errstate(all="ignore"):
        return Values.from_num(_ARITHMETIC[op](a.num_array(n), b.num_array(n)))


def negate(a: Values, n: int) -> Values:
    """Unary minus."""
    return Values.from_num(-a.num_array(n))


def _equal(a: Values, b: Values, n: int) -> NDArray[np.bool_]:
    """Row-wise REDCap equality."""
    for x, y in ((a, b), (b, a)):
        if y.is_const and not x.is_const:
            if y.blank:
                return np.array(x.blank, dtype=bool)
            if np.isnan(y.num):  # a non-numeric literal: only an identical non-numeric string matches
                return np.zeros(n, dtype=bool) if x.numeric else np.asarray(x.text == y.text, dtype=bool)
            return np.asarray(x.num == y.num, dtype=bool)
    result = _full(a.num == b.num, n)
    neither_numeric = _full(np.isnan(a.num) & np.isnan(b.num), n)
    if neither_numeric.any():
        result[neither_numeric] = _pick(a.text, neither_numeric) == _pick(b.text, neither_numeric)
    return result


def _order(relation: Callable[[Any, Any], Any], a: Values, b: Values, n: int) -> NDArray[np.bool_]:
    """Row-wise REDCap ordering: false with a blank side, numeric if both numeric, else string order."""
    if (a.is_const and a.blank) or (b.is_const and b.blank):
        return np.zeros(n, dtype=bool)
    result = _full(relation(a.num, b.num), n)  # NaN (non-numeric) compares false
    as_strings = _full(~(~np.isnan(a.num) & ~np.isnan(b.num)) & ~a.blank & ~b.blank, n)
    if as_strings.any():
        result[as_strings] = relation(_pick(a.text, as_strings), _pick(b.text, as_strings))
    return result


def _full(flags: Any, n: int) -> NDArray[np.bool_]:
    """A fresh, writable boolean array of length ``n`` from an array or a scalar."""
    if isinstance(flags, np.ndarray) and flags.shape == (n,) and flags.dtype == bool:
        return flags
    return np.array(np.broadcast_to(flags, (n,)), dtype=bool)


def _pick(form: Any, mask: NDArray[np.bool_]) -> Any:
    """The masked rows of an array form; a constant's scalar form as is."""
    return form[mask] if isinstance(form, np.ndarray) else form
