"""REDCap logic engine: parse branching logic, requirement conditions and calculations, evaluate them vectorised.

REDCap logic appears in data dictionaries (``Branching Logic (Show field only if...)``) and in oncofhir's
requirement conditions (``minimal: "[histopat] = '0'"``). It is evaluated here by a real parser and a numpy
evaluator, never by ``eval``/``exec``: the text comes from user-supplied files.

Usage::

    from oncofhir.logic import parse, LogicSyntaxError, Expression
    expr = parse("[a] = '0' AND [b] <> ''")
    expr.variables                  # frozenset({'a', 'b'})
    expr.evaluate(df)               # numpy bool array, one entry per row
    expr.evaluate_record({"a": "0", "b": "x"})  # True

Language (see :mod:`~oncofhir.logic.lexer` for the exact lexical rules):

- ``[field]``, checkbox ``[field(code)]`` (column ``field___code``); names are lower-cased.
- ``'text'`` or ``"text"`` (a doubled quote inside is one quote); numbers ``13``, ``0.5``, ``-2``.
- ``= == <> != < > <= >=``, ``+ - * /``, ``and or not`` (any case), parentheses, and the functions of
  :mod:`~oncofhir.logic.functions`. ``&& || !`` and ``true``/``false`` are not REDCap and are rejected.
- Precedence, tightest first: unary ``-``; ``* /``; ``+ -``; comparisons (not chainable); ``not``; ``and``; ``or``.

Semantics (REDCap's, made explicit; details in :mod:`~oncofhir.logic.operators` and
:mod:`~oncofhir.logic.values`):

- Values are the exported strings; blank is ``''`` (``None``/``NaN`` count as blank).
- ``=``/``<>`` compare numerically when both sides are numeric (``[x] = '0'`` holds for ``0.0``), else as exact
  strings; so ``[x] = ''`` tests blankness.
- ``< > <= >=`` are false when either side is blank; numeric when both are numeric, else string order.
- Arithmetic on a blank or non-numeric operand gives blank.
- A value used as a condition is true when non-blank and not numeric zero.

Errors: :class:`LogicSyntaxError` (a ``ValueError``, with ``message``, ``expression``, 0-based ``position``) at
parse time; :class:`MissingVariableError` (a ``KeyError``) when evaluated data lacks a referenced column.
"""

from oncofhir.logic.errors import LogicSyntaxError, MissingVariableError
from oncofhir.logic.expression import Expression, parse
from oncofhir.logic.functions import FUNCTIONS

__all__ = ["FUNCTIONS", "Expression", "LogicSyntaxError", "MissingVariableError", "parse"]
