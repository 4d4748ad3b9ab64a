"""What a REDCap value is, one value at a time: an integer, a number, a date, the codes it holds.

One module so that every reader of values decides alike: QC (:mod:`oncofhir.qc.values`, which applies these per
distinct value of a column), the demo's defect injector (:mod:`oncofhir.defects`, which must write exactly what QC
flags) and, through ``parse_number``, the FHIR stage. Kept outside the ``qc`` package on purpose: a stage's code
version hashes every enclosing package's ``__init__``, so importing ``oncofhir.qc.values`` would make the demo
exports depend on all of QC (and regenerate whenever QC changed); this module makes them depend on these rules only.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from .fhir.values import BadValue, parse_number

#: REDCap's ``integer`` validation (and the logic engine's ``isinteger``): optional sign, digits, nothing else.
INTEGER = re.compile(r"[+-]?\d+", re.ASCII)  # ASCII: "٣" (Arabic-Indic 3) is not REDCap's
#: Raw exports write dates as Y-M-D whatever the field's display format (``date_dmy`` shows D-M-Y only in forms).
DATE_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%d %H:%M", "datetime_seconds": "%Y-%m-%d %H:%M:%S"}


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
