"""Vectorised evaluation of a syntax tree over columns of records.

Each node is evaluated once for all rows with numpy (no Python loop per record). A node yields either a boolean
array (comparisons, ``and``/``or``/``not``, predicates) or :class:`~oncofhir.logic.values.Values`; ``and``, ``or``
and ``not`` take the REDCap truthiness of values (non-blank and not numeric zero). There is no short-circuit:
both sides of ``and``/``or`` are evaluated for every row, which is harmless because evaluation has no effects
and never raises on data.

Columns are converted once per evaluation (a per-call cache, so ``[h] <> '' AND [h] < 5`` parses ``h`` once);
nothing is cached across calls, so callers may mutate their data between evaluations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from oncofhir.logic.functions import FUNCTIONS
from oncofhir.logic.nodes import ARITHMETIC, COMPARISONS, Binary, Call, FieldRef, Node, NumberLit, StringLit, Unary
from oncofhir.logic.operators import arithmetic, compare, negate
from oncofhir.logic.values import Result, Values, as_values, truthy


class Evaluation:
    """One evaluation: the row count and the columns, converted on first use."""

    def __init__(self, columns: Mapping[str, Any], n: int) -> None:
        self.columns = columns
        self.n = n
        self._converted: dict[str, Values] = {}

    def column(self, name: str) -> Values:
        """The :class:`Values` of column ``name`` (presence and length were checked by the caller)."""
        values = self._converted.get(name)
        if values is None:
            values = self._converted[name] = Values.from_column(self.columns[name])
        return values

    def run(self, node: Node) -> Result:
        """Evaluate ``node`` for all rows."""
        n = self.n
        match node:
            case FieldRef(name=name):
                return self.column(name)
            case StringLit(value=value):
                return Values.constant_text(value)
            case NumberLit(text=text, value=value):
                return Values.constant_number(text, value)
            case Unary(op="not", operand=operand):
                return ~truthy(self.run(operand), n)
            case Unary(op="-", operand=operand):
                return negate(as_values(self.run(operand)), n)
            case Binary(op="and", left=left, right=right):
                return truthy(self.run(left), n) & truthy(self.run(right), n)
            case Binary(op="or", left=left, right=right):
                return truthy(self.run(left), n) | truthy(self.run(right), n)
            case Binary(op=op, left=left, right=right) if op in COMPARISONS:
                return compare(op, as_values(self.run(left)), as_values(self.run(right)), n)
            case Binary(op=op, left=left, right=right) if op in ARITHMETIC:
                return arithmetic(op, as_values(self.run(left)), as_values(self.run(right)), n)
            case Call(name=name, args=args):
                return FUNCTIONS[name].implementation([self.run(arg) for arg in args], n)
        raise AssertionError(f"unhandled node {node!r}")  # the parser only builds the nodes above


def to_bool_array(result: Result, n: int) -> np.ndarray:
    """A final result as a fresh boolean array of length ``n`` (values by REDCap truthiness)."""
    return np.array(np.broadcast_to(truthy(result, n), (n,)), dtype=bool)


def to_value_array(result: Result, n: int) -> np.ndarray:
    """A final result as an object array: ``str`` values, ``float`` numbers, ``''`` blanks, ``bool`` conditions."""
    if not isinstance(result, Values):
        return np.array(np.broadcast_to(result, (n,)), dtype=bool).astype(object)
    if result.numeric:
        num = result.num_array(n)
        out = num.astype(object)
        out[np.isnan(num)] = ""
        return out
    return np.array(result.text_array(n), dtype=object)
