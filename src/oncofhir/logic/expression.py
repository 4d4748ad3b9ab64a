"""The public face of the engine: :func:`parse` text once, evaluate the :class:`Expression` over many records."""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oncofhir.logic.errors import MissingVariableError
from oncofhir.logic.evaluate import Evaluation, to_bool_array, to_value_array
from oncofhir.logic.nodes import Node, field_names
from oncofhir.logic.parser import parse_tree

#: What a column may be: strings with ``''`` (or ``None``/``NaN``) for blank; a pandas Series works too (pandas is
#: not imported by the engine: it would cost every workflow job a third of a second).
Column = NDArray[Any] | Sequence[str | None] | Any


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed REDCap logic expression.

    Immutable and free of per-evaluation state, so :func:`parse` can cache and share it. ``variables`` are the
    export column names it references (a checkbox reference ``[name(code)]`` gives ``name___code``), lower-case.
    """

    source: str
    tree: Node
    variables: frozenset[str]

    def evaluate(self, columns: Mapping[str, Column] | Any, *, n_rows: int | None = None) -> NDArray[np.bool_]:
        """Evaluate as a condition for every row: a boolean array, one entry per record.

        ``columns`` maps column names to equal-length columns (a ``DataFrame`` works). Non-boolean results count
        as true when non-blank and not numeric zero. ``n_rows`` is only needed when the expression references no
        column and ``columns`` is empty. Raises :class:`MissingVariableError` for a referenced column that is absent.
        """
        n = self._row_count(columns, n_rows)
        return to_bool_array(Evaluation(columns, n).run(self.tree), n)

    def evaluate_values(self, columns: Mapping[str, Column] | Any, *, n_rows: int | None = None) -> NDArray[np.object_]:
        """Evaluate as a value (calculated fields): an object array of ``str``, ``float`` or ``''`` (blank).

        Numbers computed by arithmetic or numeric functions are ``float``; column values and literals come back as
        the strings they are; a condition gives ``bool`` entries.
        """
        n = self._row_count(columns, n_rows)
        return to_value_array(Evaluation(columns, n).run(self.tree), n)

    def evaluate_record(self, record: Mapping[str, str | None]) -> bool:
        """Evaluate as a condition for one record (convenience; use :meth:`evaluate` for many)."""
        self._check_present(record)
        return bool(self.evaluate({name: [record[name]] for name in self.variables}, n_rows=1)[0])

    def _check_present(self, columns: Mapping[str, Any] | Any) -> None:
        missing = tuple(sorted(name for name in self.variables if name not in columns))
        if missing:
            raise MissingVariableError(missing[0], self.source, missing)

    def _row_count(self, columns: Mapping[str, Column] | Any, n_rows: int | None) -> int:
        """The common length of the referenced columns (checked), else ``n_rows``, else any column's length."""
        self._check_present(columns)
        lengths = {name: len(columns[name]) for name in sorted(self.variables)}
        if len(set(lengths.values())) > 1:
            raise ValueError(f'columns of "{self.source}" differ in length: {lengths}')
        if lengths:
            n = next(iter(lengths.values()))
            if n_rows is not None and n_rows != n:
                raise ValueError(f"n_rows={n_rows} but the columns have {n} rows")
            return n
        if n_rows is not None:
            return n_rows
        pd = sys.modules.get("pandas")  # a DataFrame can only be passed if the caller imported pandas
        if pd is not None and isinstance(columns, pd.DataFrame):
            return len(columns)
        for column in columns.values():
            return len(column)
        raise ValueError(f'"{self.source}" references no column: pass n_rows to say how many rows to evaluate')

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


@functools.lru_cache(maxsize=4096)
def parse(source: str) -> Expression:
    """Parse REDCap logic into an :class:`Expression` (cached: the same text gives the same object).

    Raises :class:`~oncofhir.logic.errors.LogicSyntaxError` (a ``ValueError``) with the offending position.
    """
    if not isinstance(source, str):
        raise TypeError(f"a logic expression is a str, got {type(source).__name__}")
    tree = parse_tree(source)
    return Expression(source, tree, field_names(tree))
