"""The REDCap functions the engine supports: their argument counts (checked at parse time) and vector semantics.

One table, :data:`FUNCTIONS`, is the single source of truth for the parser and the evaluator. Semantics, REDCap's
where REDCap documents them, made explicit where it does not:

- ``isnumber(x)``: ``x`` is numeric (see :mod:`oncofhir.logic.values`).
- ``isinteger(x)``: ``x`` is spelled as an integer, optional sign, surrounding whitespace allowed (``'5'``,
  ``'-3'``; not ``'5.0'``: REDCap's integer validation rule).
- ``isblankormissingcode(x)``: ``x`` is blank. oncofhir projects define no REDCap missing-data codes, so this is
  the blank test.
- ``if(cond, a, b)``: ``a`` where ``cond`` is truthy, else ``b``.
- ``sum``, ``min``, ``max``, ``mean`` (1+ arguments): over the numeric arguments of each row; blank and non-numeric
  arguments are ignored; blank when no argument is numeric (REDCap's ``NaN``).
- ``round(x[, d])`` half away from zero (PHP's rule, not numpy's half-to-even), ``roundup`` away from zero,
  ``rounddown`` toward zero, to ``d`` decimals (default 0, may be negative). The scaled value is first rounded to 9
  decimals so that binary representation error does not flip a half (``round(2.675, 2)`` is ``2.68``).
- ``abs(x)``. Every numeric function gives blank for a blank or non-numeric argument.
- ``contains(x, t)``, ``not_contain``, ``starts_with``, ``ends_with``: case-insensitive substring tests, as in
  REDCap. ``not_contain`` is exactly ``not contains``.
- ``length(x)``: number of characters; 0 for blank.
- ``datediff(d1, d2, units[, format][, signed])``: ``d2 - d1`` in ``units``: ``'y'`` (365.2425 days), ``'M'``
  (30.44 days), ``'d'``, ``'h'``, ``'m'``, ``'s'``; not rounded (wrap it in ``rounddown`` for whole years). Blank
  when either date is blank or unparseable. Dates are ``Y-M-D`` with optional ``H:M`` or ``H:M:S`` (REDCap exports
  every date so); ``format`` (``'ymd'``, ``'mdy'``, ``'dmy'``) additionally accepts ``M-D-Y``/``D-M-Y`` values.
  ``'today'`` and ``'now'`` are the local current date and date-time. The result is absolute unless ``signed`` is
  truthy (``'false'`` counts as false); a 4th argument that is not a format literal is ``signed`` (REDCap's newer
  4-argument form). ``units`` and ``format`` must be string literals, checked at parse time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oncofhir.logic.nodes import Node, StringLit
from oncofhir.logic.values import Result, Values, as_values, elementwise, truthy

#: An implementation gets the evaluated arguments and the row count.
Implementation = Callable[[Sequence[Result], int], Result]
#: A parse-time check of the argument nodes: ``None`` or ``(message, position)``.
ArgumentCheck = Callable[[tuple[Node, ...]], tuple[str, int] | None]

_STRING = np.dtypes.StringDType()
_INTEGER = re.compile(r"\s*[-+]?\d+\s*", re.ASCII)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A supported function: argument count bounds (``max_args`` ``None`` = unbounded) and behaviour."""

    name: str
    min_args: int
    max_args: int | None
    implementation: Implementation
    check: ArgumentCheck | None = None

    def arity_error(self, count: int) -> str | None:
        """Why ``count`` arguments are wrong for this function, or ``None`` if they are fine."""
        if self.min_args <= count and (self.max_args is None or count <= self.max_args):
            return None
        if self.max_args is None:
            expected = f"at least {self.min_args}"
        elif self.min_args == self.max_args:
            expected = str(self.min_args)
        else:
            expected = f"{self.min_args} to {self.max_args}"
        plural = "" if expected.endswith(" 1") or expected == "1" else "s"
        return f"function '{self.name}' takes {expected} argument{plural}, got {count}"


# -- predicates -----------------------------------------------------------------------------------------------------
def _isnumber(args: Sequence[Result], n: int) -> Result:
    return elementwise(as_values(args[0]), n, lambda v: ~np.isnan(v.num))


def _isinteger(args: Sequence[Result], n: int) -> Result:
    return elementwise(as_values(args[0]), n, lambda v: _fullmatch(_INTEGER, v.text))


def _isblank(args: Sequence[Result], n: int) -> Result:
    return elementwise(as_values(args[0]), n, lambda v: np.array(v.blank, dtype=bool))


def _fullmatch(pattern: re.Pattern[str], text: NDArray[np.object_]) -> NDArray[np.bool_]:
    match = pattern.fullmatch
    return np.fromiter(
        (isinstance(t, str) and match(t) is not None for t in text.tolist()), dtype=bool, count=len(text)
    )


# -- if -------------------------------------------------------------------------------------------------------------
def _if(args: Sequence[Result], n: int) -> Result:
    cond, a, b = truthy(args[0], n), args[1], args[2]
    if not isinstance(a, Values) and not isinstance(b, Values):
        return np.where(cond, a, b)
    return Values.select(cond, as_values(a), as_values(b), n)


# -- aggregates -----------------------------------------------------------------------------------------------------
def _stack(args: Sequence[Result], n: int) -> NDArray[np.float64]:
    return np.vstack([as_values(a).num_array(n) for a in args])


def _sum(args: Sequence[Result], n: int) -> Result:
    stacked = _stack(args, n)
    total = np.nansum(stacked, axis=0)
    return Values.from_num(np.where(np.isnan(stacked).all(axis=0), np.nan, total))


def _mean(args: Sequence[Result], n: int) -> Result:
    stacked = _stack(args, n)
    count = (~np.isnan(stacked)).sum(axis=0)
    with np.errstate(all="ignore"):
        return Values.from_num(np.nansum(stacked, axis=0) / count)


def _min(args: Sequence[Result], n: int) -> Result:
    return Values.from_num(np.fmin.reduce(_stack(args, n), axis=0))


def _max(args: Sequence[Result], n: int) -> Result:
    return Values.from_num(np.fmax.reduce(_stack(args, n), axis=0))


# -- rounding -------------------------------------------------------------------------------------------------------
def _rounder(step: Callable[[Any], Any]) -> Implementation:
    """round/roundup/rounddown: ``step`` maps a non-negative scaled magnitude to an integer."""

    def implementation(args: Sequence[Result], n: int) -> Result:
        x = as_values(args[0]).num_array(n)
        digits = np.trunc(as_values(args[1]).num_array(n)) if len(args) > 1 else np.zeros(n)
        with np.errstate(all="ignore"):
            scale = 10.0**digits
            magnitude = step(np.round(np.abs(x) * scale, 9))
            return Values.from_num(np.sign(x) * magnitude / scale)

    return implementation


def _abs(args: Sequence[Result], n: int) -> Result:
    return Values.from_num(np.abs(as_values(args[0]).num_array(n)))


# -- text -----------------------------------------------------------------------------------------------------------
def _text_test(test: Callable[[Any, Any], NDArray[np.bool_]], negate: bool = False) -> Implementation:
    """contains & co: ``test(haystack, needle)`` on lower-cased numpy string arrays."""

    def run(haystack: NDArray[np.object_], needle: Any) -> NDArray[np.bool_]:
        found = test(np.strings.lower(haystack.astype(_STRING)), needle)
        return ~found if negate else found

    def implementation(args: Sequence[Result], n: int) -> Result:
        haystack, needle = as_values(args[0]), as_values(args[1])
        if needle.is_const:
            lowered = np.strings.lower(np.array(needle.text, dtype=_STRING))
            return elementwise(haystack, n, lambda v: run(v.text, lowered))
        needles = np.strings.lower(needle.text_array(n).astype(_STRING))
        return run(haystack.text_array(n), needles)

    return implementation


def _length(args: Sequence[Result], n: int) -> Result:
    lengths = elementwise(as_values(args[0]), n, lambda v: np.strings.str_len(v.text.astype(_STRING)))
    return Values.from_num(lengths.astype(np.float64))


# -- datediff -------------------------------------------------------------------------------------------------------
_UNIT_SECONDS = {"y": 365.2425 * 86400, "M": 30.44 * 86400, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_FORMATS = {
    "ymd": (),
    "mdy": ("%m-%d-%Y", "%m-%d-%Y %H:%M", "%m-%d-%Y %H:%M:%S"),
    "dmy": ("%d-%m-%Y", "%d-%m-%Y %H:%M", "%d-%m-%Y %H:%M:%S"),
}


def _check_datediff(args: tuple[Node, ...]) -> tuple[str, int] | None:
    units = args[2]
    if not isinstance(units, StringLit) or units.value not in _UNIT_SECONDS:
        allowed = ", ".join(f"'{u}'" for u in _UNIT_SECONDS)
        return f"datediff units must be a quoted literal, one of {allowed}", units.position
    if len(args) == 5 and not (isinstance(args[3], StringLit) and args[3].value in _FORMATS):
        allowed = ", ".join(f"'{f}'" for f in _FORMATS)
        return f"datediff date format must be a quoted literal, one of {allowed}", args[3].position
    return None


def _datediff(args: Sequence[Result], n: int) -> Result:
    first, second = as_values(args[0]), as_values(args[1])
    units = as_values(args[2]).text
    date_format, signed = "ymd", None
    if len(args) >= 4:
        fourth = as_values(args[3])
        if len(args) == 5 or (fourth.is_const and fourth.text in _FORMATS):
            date_format = fourth.text
        else:
            signed = fourth
    if len(args) == 5:
        signed = as_values(args[4])
    start = elementwise(first, n, lambda v: _to_datetimes(v.text, date_format))
    end = elementwise(second, n, lambda v: _to_datetimes(v.text, date_format))
    difference = (end - start) / np.timedelta64(1, "s") / _UNIT_SECONDS[units]
    if signed is None:
        return Values.from_num(np.abs(difference))
    keep_sign = truthy(signed, n) & elementwise(
        signed, n, lambda v: np.strings.lower(v.text.astype(_STRING)) != "false"
    )
    return Values.from_num(np.where(keep_sign, difference, np.abs(difference)))


def _to_datetimes(text: NDArray[np.object_], date_format: str) -> NDArray[np.datetime64]:
    """Parse date(-time) strings; ``NaT`` where blank or unparseable.

    pandas is imported here, not at module level: only ``datediff`` needs it, and no shipped dictionary uses it,
    while the import would cost every workflow job a third of a second.
    """
    import pandas as pd

    series = pd.Series(text, dtype=object).str.strip()
    parsed = pd.to_datetime(series, format="ISO8601", errors="coerce")
    for pattern in _FORMATS[date_format]:
        parsed = parsed.fillna(pd.to_datetime(series, format=pattern, errors="coerce"))
    lowered = series.str.lower()
    now = datetime.now()  # naive local time on purpose: exported REDCap dates are naive local wall-clock times
    parsed = parsed.mask(lowered == "today", pd.Timestamp(now.date())).mask(lowered == "now", pd.Timestamp(now))
    return parsed.to_numpy(dtype="datetime64[us]")


# -- the table ------------------------------------------------------------------------------------------------------
FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in (
        FunctionSpec("isnumber", 1, 1, _isnumber),
        FunctionSpec("isinteger", 1, 1, _isinteger),
        FunctionSpec("isblankormissingcode", 1, 1, _isblank),
        FunctionSpec("if", 3, 3, _if),
        FunctionSpec("sum", 1, None, _sum),
        FunctionSpec("mean", 1, None, _mean),
        FunctionSpec("min", 1, None, _min),
        FunctionSpec("max", 1, None, _max),
        FunctionSpec("round", 1, 2, _rounder(lambda m: np.floor(m + 0.5))),
        FunctionSpec("roundup", 1, 2, _rounder(np.ceil)),
        FunctionSpec("rounddown", 1, 2, _rounder(np.floor)),
        FunctionSpec("abs", 1, 1, _abs),
        FunctionSpec("contains", 2, 2, _text_test(lambda h, t: np.strings.find(h, t) >= 0)),
        FunctionSpec("not_contain", 2, 2, _text_test(lambda h, t: np.strings.find(h, t) >= 0, negate=True)),
        FunctionSpec("starts_with", 2, 2, _text_test(np.strings.startswith)),
        FunctionSpec("ends_with", 2, 2, _text_test(np.strings.endswith)),
        FunctionSpec("length", 1, 1, _length),
        FunctionSpec("datediff", 3, 5, _datediff, _check_datediff),
    )
}
