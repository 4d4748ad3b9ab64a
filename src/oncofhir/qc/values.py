"""What a value *is*, decided once per distinct value of a column: blank, an integer, a number, a date, a code.

Why per distinct value: a center's column of 20,000 records holds a handful of codes (or a few thousand numbers),
so classifying the distinct values with plain Python and mapping back with one numpy ``take`` is both exact (the
same ``parse_number`` the FHIR stage uses) and fast. The rules, decided once for QC and FHIR alike:

========  ===============================  =========================================================
value     integer field                    number field
========  ===============================  =========================================================
``23.5``  datatype fails; range checked     passes
``1.0``   datatype fails (REDCap's integer  passes
          rule: digits, optional sign;
          FHIR tolerates it as 1)
``abc``   datatype fails; no range check    datatype fails; no range check
`` ``     blank (ingest trims every cell)   blank
``inf``   datatype fails; no range check    datatype fails (not finite, as in FHIR)
``1e3``   datatype fails; range checked     passes (``parse_number`` reads 1000, as FHIR does)
          (1000)
``12,5``  datatype fails; no range check    datatype fails (decimal comma; FHIR rejects it too)
========  ===============================  =========================================================

A range check applies to every value the FHIR stage reads as a number (``parse_number``), so every value FHIR
marks as an error (not a number, not an integer, outside the range) fails at least one QC check; QC is stricter
only where FHIR is lenient on spelling (``1.0`` in an integer or code field).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..arrays import factorize
from ..fhir.values import BadValue, parse_number

#: REDCap's ``integer`` validation (and the logic engine's ``isinteger``): optional sign, digits, nothing else.
INTEGER = re.compile(r"[+-]?\d+", re.ASCII)  # ASCII: "٣" (Arabic-Indic 3) is not REDCap's
#: Raw exports write dates as Y-M-D whatever the field's display format (``date_dmy`` shows D-M-Y only in forms).
DATE_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%d %H:%M", "datetime_seconds": "%Y-%m-%d %H:%M:%S"}


class Column:
    """One variable's values over all records, dictionary-encoded: ``uniques[codes]`` are the trimmed values."""

    __slots__ = ("codes", "uniques")

    def __init__(self, values: Sequence[Any] | NDArray[Any]) -> None:
        codes, distinct = factorize(np.asarray(values, dtype=object))
        uniques = ["" if v is None else str(v).strip() for v in distinct]
        if (codes < 0).any():  # None/NaN: blank
            codes = np.where(codes < 0, len(uniques), codes)
            uniques.append("")
        self.codes: NDArray[np.intp] = codes
        self.uniques: list[str] = uniques

    def __len__(self) -> int:
        return len(self.codes)

    def per_value(self, test: Callable[[str], bool]) -> NDArray[np.bool_]:
        """``test`` applied once per distinct value, as one boolean per record."""
        return np.fromiter((test(u) for u in self.uniques), dtype=bool, count=len(self.uniques))[self.codes]

    def numbers(self) -> NDArray[np.float64]:
        """The value as ``parse_number`` reads it, ``NaN`` where it is not a number (or blank)."""
        table = np.fromiter((number_or_nan(u) for u in self.uniques), dtype=np.float64, count=len(self.uniques))
        return table[self.codes]

    def text(self) -> NDArray[np.object_]:
        """The trimmed values (what the logic engine evaluates)."""
        return np.asarray(self.uniques, dtype=object)[self.codes]

    def blank(self) -> NDArray[np.bool_]:
        """True where the value is blank."""
        return self.per_value(lambda u: u == "")


def number_or_nan(text: str) -> float:
    """``parse_number(text)`` as a float, or ``NaN`` when the FHIR stage would not read it as a number."""
    if not text:
        return math.nan
    try:
        return float(parse_number(text))
    except BadValue:
        return math.nan


def is_integer(text: str) -> bool:
    """REDCap's integer spelling (``5``, ``-3``, ``+2``; not ``5.0``, ``1e3``, ``5 000``)."""
    return INTEGER.fullmatch(text) is not None


def is_number(text: str) -> bool:
    """A finite number by ``parse_number``'s rule (decimal point, optional exponent; no comma, no ``inf``)."""
    return not math.isnan(number_or_nan(text))


def date_format(validation: str) -> str:
    """The strptime format of a REDCap date/datetime validation (``date_dmy`` -> ``%Y-%m-%d``: raw exports)."""
    if validation.startswith("datetime_seconds"):
        return DATE_FORMATS["datetime_seconds"]
    if validation.startswith("datetime"):
        return DATE_FORMATS["datetime"]
    return DATE_FORMATS["date"]


def is_date(text: str, fmt: str) -> bool:
    """A real calendar date (and time) in ``fmt`` (``2023-02-30`` is not)."""
    if not text.isascii():  # strptime reads any Unicode digit ("٢٠٢٠-01-01"); REDCap's validation does not
        return False
    try:
        datetime.strptime(text, fmt)
    except ValueError:
        return False
    return True


def codes_of(text: str, checkbox: bool) -> list[str]:
    """The codes a value holds: one, or a checkbox field's comma-joined ticked codes (as ingest writes them)."""
    return [c.strip() for c in text.split(",")] if checkbox else [text]
