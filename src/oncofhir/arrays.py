"""Small array helpers shared by the logic engine and the QC checks, on numpy alone.

Why not pandas: every workflow job is a fresh Python process, and importing pandas costs 0.25-0.4 s of a job's
~1 s start-up; a consortium run has ~200 jobs. The two pandas functions the engine needed (``factorize`` and
``to_numeric``) are a few lines each on data the size of one center.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: What counts as a number in a REDCap value: optional sign, digits with an optional decimal point (``5.``, ``.5``),
#: optional exponent, surrounding ASCII white space allowed. Not ``inf``, ``nan``, ``1_000`` or non-ASCII digits,
#: all of which Python's ``float()`` would accept.
_NUMBER = re.compile(r"[ \t\n\r\f\v]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r\f\v]*")


def factorize(values: NDArray[Any]) -> tuple[NDArray[np.intp], NDArray[np.object_]]:
    """Dictionary-encode a 1-D array: ``codes`` index ``uniques`` (first-seen order); ``None`` and NaN get -1.

    The contract of ``pandas.factorize`` for the cases used here (object arrays of str, float arrays).
    """
    index: dict[Any, int] = {}
    setdefault = index.setdefault
    codes = np.empty(len(values), dtype=np.intp)
    for k, value in enumerate(values.tolist()):
        if value is None or value != value:  # None, or NaN (the only value unequal to itself)
            codes[k] = -1
        else:
            codes[k] = setdefault(value, len(index))
    uniques = np.empty(len(index), dtype=object)
    uniques[:] = list(index)
    return codes, uniques


def to_number(text: object) -> float:
    """One value as a finite float, NaN when it is not a number by :data:`_NUMBER` (or overflows)."""
    if isinstance(text, str):
        if _NUMBER.fullmatch(text) is None:
            return float("nan")
        value = float(text)
    elif isinstance(text, int | float | np.integer | np.floating) and not isinstance(text, bool | np.bool_):
        value = float(text)
    else:
        return float("nan")
    return value if value - value == 0 else float("nan")  # inf - inf is NaN: overflow such as '1e999'


def to_numbers(text: NDArray[Any]) -> NDArray[np.float64]:
    """:func:`to_number` over an array."""
    return np.fromiter((to_number(t) for t in text.tolist()), dtype=np.float64, count=len(text))
