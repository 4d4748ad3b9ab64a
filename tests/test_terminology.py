"""Check digits and code formats used by the dictionary linter."""

import pytest

from oncofhir.terminology import icdo3_morphology_ok, loinc_ok, sctid_ok, snomed_ok, verhoeff_ok


@pytest.mark.parametrize(
    ("code", "ok"),
    [
        ("373066001", True),  # Yes (qualifier value)
        ("373066002", False),  # last digit changed
        ("3191000175106", True),  # extension-namespace id
        ("0373066001", False),  # leading zero
        ("12345", False),  # too short
        ("abc", False),
    ],
)
def test_sctid(code: str, ok: bool) -> None:
    assert sctid_ok(code) is ok


def test_verhoeff_known_vector() -> None:
    assert verhoeff_ok("2363") is True  # the textbook example 236 -> check digit 3
    assert verhoeff_ok("2364") is False


@pytest.mark.parametrize(
    ("expr", "ok"),
    [
        ("235856003:42752001=74964007", True),
        ("307474000:398201009=400001000004103,397898000=387713003", True),
        ("372064008+260837004", True),
        ("235856003:42752001=74964008", False),  # one id with a bad check digit
        ("235856003 |Disorder of liver|:42752001=74964007", True),  # terms between pipes are ignored
        ("hello", False),
    ],
)
def test_snomed_expression(expr: str, ok: bool) -> None:
    assert snomed_ok(expr) is ok


@pytest.mark.parametrize(
    ("code", "ok"),
    [
        ("76689-9", True),
        ("76689-8", False),
        ("16112-5", True),
        ("21894-1", True),
        ("LA2-8", True),  # answer codes: format only
        ("LP428220-0", True),
        ("LX2-8", False),
        ("766899", False),
    ],
)
def test_loinc(code: str, ok: bool) -> None:
    assert loinc_ok(code) is ok


@pytest.mark.parametrize(("code", "ok"), [("8140/3", True), ("8500/2", True), ("8140/5", False), ("814/3", False)])
def test_icdo3(code: str, ok: bool) -> None:
    assert icdo3_morphology_ok(code) is ok
