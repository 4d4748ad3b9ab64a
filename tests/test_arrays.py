"""numpy-only factorize and number parsing (what the logic engine and QC use instead of pandas)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oncofhir.arrays import factorize, to_number, to_numbers


def test_factorize_codes_in_first_seen_order_and_blanks_minus_one() -> None:
    codes, uniques = factorize(np.array(["b", "a", None, "b", float("nan"), "", "a"], dtype=object))
    assert codes.tolist() == [0, 1, -1, 0, -1, 2, 1]
    assert uniques.tolist() == ["b", "a", ""]
    assert uniques.dtype == object and codes.dtype == np.intp


def test_factorize_floats_treats_nan_as_missing() -> None:
    codes, uniques = factorize(np.array([1.5, np.nan, 1.5, 0.0]))
    assert codes.tolist() == [0, -1, 0, 1] and uniques.tolist() == [1.5, 0.0]
    codes, uniques = factorize(np.array([], dtype=object))
    assert codes.tolist() == [] and uniques.tolist() == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0.0),
        (" 0.0 ", 0.0),
        ("-3", -3.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("+2", 2.0),
        ("\t7\n", 7.0),
        ("1E-2", 0.01),
        (4, 4.0),
        (2.5, 2.5),
    ],
)
def test_numbers(text: object, value: float) -> None:
    assert to_number(text) == value


@pytest.mark.parametrize(
    "text",
    ["", " ", "abc", "inf", "-inf", "NaN", "nan", "1_000", "١٢", "0x10", "1e999", "1,5", "--1", "e3", True, None],
)
def test_not_numbers(text: object) -> None:
    assert math.isnan(to_number(text))


def test_to_numbers_over_an_array() -> None:
    out = to_numbers(np.array(["1", "x", " 2.5"], dtype=object))
    assert out[0] == 1.0 and math.isnan(out[1]) and out[2] == 2.5 and out.dtype == np.float64
