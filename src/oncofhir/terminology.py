"""Check digits and code formats of the terminologies the dictionaries use.

Catching a mistyped SNOMED CT or LOINC code at lint time is cheap; a wrong code in 20,000 bundles is not.
"""

from __future__ import annotations

import re

# Verhoeff tables (dihedral group D5), as used by SNOMED CT identifiers.
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_SCTID = re.compile(r"^[1-9][0-9]{5,17}$")
_SCT_EXPR_ID = re.compile(r"[0-9]+")
_LOINC = re.compile(r"^([0-9]{1,7})-([0-9])$")
_LOINC_PART = re.compile(r"^L[AP][0-9]{1,8}-[0-9]$")
_ICDO3_MORPH = re.compile(r"^[89][0-9]{3}/[0-39]$")


def verhoeff_ok(digits: str) -> bool:
    """True if the last digit is the Verhoeff check digit of the others."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c == 0


def sctid_ok(code: str) -> bool:
    """A valid SNOMED CT identifier: 6-18 digits, no leading zero, Verhoeff check digit."""
    return bool(_SCTID.match(code)) and verhoeff_ok(code)


def snomed_expression_ids(code: str) -> list[str]:
    """The concept ids inside a code that may be a post-coordinated expression (``a:b=c,d=e`` or ``a+b``)."""
    return _SCT_EXPR_ID.findall(code)


def snomed_ok(code: str) -> bool:
    """A single SCTID, or an expression all of whose ids are valid SCTIDs (terms between pipes ignored)."""
    stripped = re.sub(r"\|[^|]*\|", "", code)
    if not re.fullmatch(r"[0-9:=,+(){} ]+", stripped):
        return False
    ids = snomed_expression_ids(stripped)
    return bool(ids) and all(sctid_ok(i) for i in ids)


def loinc_ok(code: str) -> bool:
    """LOINC term code (``12345-6``) with its mod-10 check digit; answer (``LA…``) and part (``LP…``) codes
    carry a sequence suffix, not a mod-10 check digit, so only their format is checked."""
    if _LOINC_PART.match(code):
        return True
    m = _LOINC.match(code)
    if not m:
        return False
    body, check = m.group(1), int(m.group(2))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d // 10 + d % 10
        total += d
    return (10 - total % 10) % 10 == check


def icdo3_morphology_ok(code: str) -> bool:
    """ICD-O-3 morphology ``MMMM/B`` (histology 8000-9999, behaviour 0-3 or 9)."""
    return bool(_ICDO3_MORPH.match(code))


CHECKS = {"verhoeff": snomed_ok, "mod10": loinc_ok}
