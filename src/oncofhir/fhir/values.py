"""Conversions from REDCap strings to FHIR values: numbers, anonymised periods, missing-data markers.

Kept apart from the builder so the rules for "what is a number" and "what does a blank mean" live in one place
and are shared by the FHIR and QC stages.
"""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from typing import Any

DAR_EXTENSION = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
DAR_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DAR_DISPLAY = {"unknown": "Unknown", "error": "Error", "not-applicable": "Not Applicable"}
EPOCH = date(1970, 1, 1)
DAYS_PER_MONTH = 30.436875  # mean Gregorian month
DAYS_PER_YEAR = 365.2425
#: ASCII digits only: ``\d`` and ``float`` also read other scripts' digits ("٣" is 3), which REDCap refuses.
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$", re.ASCII)


class BadValue(ValueError):
    """A value present in the export that cannot mean what its field says (reported, never silently dropped)."""


def parse_number(text: str, *, integer: bool = False) -> int | float:
    """Parse a REDCap number; integral values become ``int`` so ``78`` and ``78.0`` serialise identically.

    Rejects what REDCap's own validation rejects: decimal commas, ``inf``/``nan``, thousands separators, and
    fractions in integer fields.
    """
    if not _NUMBER.match(text):
        raise BadValue(f"'{text}' is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise BadValue(f"'{text}' is not a finite number")
    if value.is_integer():
        return int(value)
    if integer:
        raise BadValue(f"'{text}' is not an integer")
    return value


def dar_extension(reason: str = "unknown") -> dict[str, Any]:
    """An element that is absent for a stated reason (FHIR's data-absent-reason extension)."""
    return {"extension": [{"url": DAR_EXTENSION, "valueCode": reason}]}


def dar_concept(reason: str = "unknown", text: str | None = None) -> dict[str, Any]:
    """Observation.dataAbsentReason as a CodeableConcept, with the raw problem in ``text`` for errors."""
    cc: dict[str, Any] = {"coding": [{"system": DAR_SYSTEM, "code": reason, "display": DAR_DISPLAY[reason]}]}
    if text:
        cc["text"] = text
    return cc


def epoch_period(amount: int | float, unit: str) -> dict[str, str]:
    """The paper's anonymised interval: start 1970-01-01, end = start + amount (date precision).

    Whole months and years use calendar arithmetic (6 mo -> 1970-07-01); fractions become whole days.
    """
    if amount < 0:
        raise BadValue(f"negative duration {amount}")
    if unit == "d":
        end = EPOCH + timedelta(days=round(amount))
    elif unit == "wk":
        end = EPOCH + timedelta(days=round(amount * 7))
    elif unit == "mo":
        if float(amount).is_integer():
            months = int(amount)
            year, month = 1970 + months // 12, months % 12 + 1
            end = date(year, month, 1)
        else:
            end = EPOCH + timedelta(days=round(amount * DAYS_PER_MONTH))
    elif unit == "a":
        end = (
            date(1970 + int(amount), 1, 1)
            if float(amount).is_integer()
            else EPOCH + timedelta(days=round(amount * DAYS_PER_YEAR))
        )
    else:  # pragma: no cover - the schema restricts units
        raise ValueError(unit)
    if end.year > 9999:
        raise BadValue(f"duration {amount} {unit} is implausibly long")
    return {"start": EPOCH.isoformat(), "end": end.isoformat()}
