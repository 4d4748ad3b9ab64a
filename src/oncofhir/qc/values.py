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
only where FHIR is lenient on spelling (``1.0`` in an integer or code field). The one-value rules themselves live in
:mod:`oncofhir.redcap_values` (shared with the demo's defect injector); this module applies them per distinct value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..arrays import factorize
from ..redcap_values import (  # noqa: F401 (re-exported: QC's modules import them from here)
    DATE_FORMATS,
    INTEGER,
    codes_of,
    date_format,
    is_date,
    is_integer,
    is_number,
    number_or_nan,
)


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
