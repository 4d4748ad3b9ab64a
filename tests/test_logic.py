"""Tests of the REDCap logic engine (``oncofhir.logic``): syntax, errors, semantics, vectorisation, real inputs."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from oncofhir.logic import Expression, LogicSyntaxError, MissingVariableError, parse
from oncofhir.logic.lexer import checkbox_column

DICTIONARIES = Path(__file__).resolve().parents[1] / "resources" / "dictionaries"
BRANCHING = "Branching Logic (Show field only if...)"


def ev(source: str, **record: str | None) -> bool:
    """Evaluate ``source`` as a condition for one record given as keyword arguments."""
    return parse(source).evaluate_record(record)


def val(source: str, **record: str | None) -> Any:
    """Evaluate ``source`` as a value for one record."""
    return parse(source).evaluate_values({k: [v] for k, v in record.items()}, n_rows=1)[0]


def error_of(source: str) -> LogicSyntaxError:
    with pytest.raises(LogicSyntaxError) as info:
        parse(source)
    return info.value


# -- the brief's real-world examples ----------------------------------------------------------------------------------
NESTED = "((([histopat]<>'' AND [histopat]<5) OR ([histopat_2]<>'' AND [histopat_2]<5)) AND [patientclass]='0')"


@pytest.mark.parametrize(
    ("source", "record", "expected"),
    [
        ("[histopat] = '0' AND [tnm_pt] = ''", {"histopat": "0", "tnm_pt": ""}, True),
        ("[histopat] = '0' AND [tnm_pt] = ''", {"histopat": "0", "tnm_pt": "T1"}, False),
        ("[histopat] = '0' AND [tnm_pt] = ''", {"histopat": "1", "tnm_pt": ""}, False),
        ("[histopat] = '0' AND [tnm_pt] = ''", {"histopat": "", "tnm_pt": ""}, False),
        ("[chemo_drug] <> '' AND [chemo_drug] > 13", {"chemo_drug": "14"}, True),
        ("[chemo_drug] <> '' AND [chemo_drug] > 13", {"chemo_drug": "13"}, False),
        ("[chemo_drug] <> '' AND [chemo_drug] > 13", {"chemo_drug": ""}, False),
        ("[chemo_drug] <> '' AND [chemo_drug] > 13", {"chemo_drug": "abc"}, True),  # 'abc' > '13' as strings
        ("([a]<>'' AND [a]<5) OR ([b]<>'' AND [b]<5)", {"a": "", "b": "4"}, True),
        ("([a]<>'' AND [a]<5) OR ([b]<>'' AND [b]<5)", {"a": "4.9", "b": ""}, True),
        ("([a]<>'' AND [a]<5) OR ([b]<>'' AND [b]<5)", {"a": "", "b": ""}, False),
        ("([a]<>'' AND [a]<5) OR ([b]<>'' AND [b]<5)", {"a": "7", "b": "5"}, False),
        (NESTED, {"histopat": "3", "histopat_2": "", "patientclass": "0"}, True),
        (NESTED, {"histopat": "", "histopat_2": "1", "patientclass": "0"}, True),
        (NESTED, {"histopat": "3", "histopat_2": "", "patientclass": "1"}, False),
        (NESTED, {"histopat": "5", "histopat_2": "", "patientclass": "0"}, False),
        (NESTED, {"histopat": "", "histopat_2": "", "patientclass": "0"}, False),
        ('[lactation] = "0"', {"lactation": "0"}, True),
        ('[lactation] = "0"', {"lactation": "0.0"}, True),
        ('[lactation] = "0"', {"lactation": ""}, False),
        ('[histopat] <> ""', {"histopat": ""}, False),
        ('[histopat] <> ""', {"histopat": "3"}, True),
        ("[chemo_drug] <= '13'", {"chemo_drug": "13"}, True),
        ("[chemo_drug] <= '13'", {"chemo_drug": "9"}, True),  # numeric, not '9' > '13' as strings
        ("[chemo_drug] <= '13'", {"chemo_drug": "14"}, False),
        ("[chemo_drug] <= '13'", {"chemo_drug": ""}, False),
        ("[histopat] = '5' OR [histopat] = '7' OR [histopat_2] = '5'", {"histopat": "7", "histopat_2": ""}, True),
        ("[histopat] = '5' OR [histopat] = '7' OR [histopat_2] = '5'", {"histopat": "", "histopat_2": "5"}, True),
        ("[histopat] = '5' OR [histopat] = '7' OR [histopat_2] = '5'", {"histopat": "6", "histopat_2": "7"}, False),
    ],
)
def test_real_world_examples(source: str, record: dict[str, str], expected: bool) -> None:
    assert parse(source).evaluate_record(record) is expected


# -- precedence -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "record", "expected"),
    [
        ("[a]='1' or [b]='1' and [c]='1'", {"a": "1", "b": "0", "c": "0"}, True),  # and binds tighter than or
        ("([a]='1' or [b]='1') and [c]='1'", {"a": "1", "b": "0", "c": "0"}, False),
        ("[a]='1' and [b]='1' or [c]='1'", {"a": "0", "b": "0", "c": "1"}, True),
        ("[a]='1' and ([b]='1' or [c]='1')", {"a": "0", "b": "0", "c": "1"}, False),
        ("not [a]='1'", {"a": "1"}, False),  # not ([a]='1'): not binds looser than a comparison
        ("not [a]='1'", {"a": "2"}, True),
        ("not [a]='1' and [b]='1'", {"a": "0", "b": "1"}, True),  # (not [a]='1') and [b]='1'
        ("not [a]='1' and [b]='1'", {"a": "0", "b": "0"}, False),
        ("not ([a]='1' or [b]='1')", {"a": "0", "b": "1"}, False),
        ("not not [a]='1'", {"a": "1"}, True),
        ("[a] + 1 > 2 and [a] < 5", {"a": "3"}, True),
    ],
)
def test_logical_precedence(source: str, record: dict[str, str], expected: bool) -> None:
    assert parse(source).evaluate_record(record) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 2 - 3", 5.0),
        ("12 / 2 / 3", 2.0),
        ("2 * 3 + 4 * 5", 26.0),
        ("-2 * 3", -6.0),
        ("2 - -3", 5.0),
        ("-(2 + 3)", -5.0),
        ("--4", 4.0),
        ("7 / 2", 3.5),
    ],
)
def test_arithmetic_precedence(source: str, expected: float) -> None:
    assert val(source) == expected


def test_arithmetic_binds_tighter_than_comparison() -> None:
    assert ev("1 + 2 * 3 = 7")
    assert ev("[a] * 2 > [b] - 1", a="3", b="6")


# -- blanks, numbers and strings -------------------------------------------------------------------------------------
def test_blank_tests_and_missing_values() -> None:
    columns = {"a": np.array(["", None, np.nan, "0", "x"], dtype=object)}
    assert parse("[a] = ''").evaluate(columns).tolist() == [True, True, True, False, False]
    assert parse("[a] <> ''").evaluate(columns).tolist() == [False, False, False, True, True]
    assert parse('[a] = ""').evaluate(columns).tolist() == [True, True, True, False, False]


@pytest.mark.parametrize("op", ["<", ">", "<=", ">="])
def test_ordering_with_a_blank_side_is_false(op: str) -> None:
    columns = {"a": ["", None, "3"], "b": ["", "", ""]}
    assert parse(f"[a] {op} 5").evaluate(columns).tolist()[:2] == [False, False]
    assert parse(f"5 {op} [a]").evaluate(columns).tolist()[:2] == [False, False]
    assert parse(f"[a] {op} [b]").evaluate(columns).tolist() == [False, False, False]
    assert parse(f"[a] {op} ''").evaluate(columns).tolist() == [False, False, False]
    assert not ev(f"'' {op} ''")


def test_blank_equals_blank() -> None:
    assert ev("[a] = [b]", a="", b=None)
    assert not ev("[a] <> [b]", a="", b="")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'10' > '9'", True),  # both numeric: numbers
        ("'abc' > 'abd'", False),  # strings
        ("'abc' < 'abd'", True),
        ("'0' = '0.0'", True),
        ("'0' = 0", True),
        ("' 5 ' = 5", True),
        ("'5' <> '5.0'", False),
        (".5 = 0.5", True),
        ("5 = 5.0", True),
        ("'1e3' = 1000", True),
        ("'abc' = 'ABC'", False),  # exact, case-sensitive
        ("'abc' = 'abc'", True),
        ("'a' > 5", True),  # one side not numeric: string order, 'a' > '5'
        ("'10' < 'abc'", True),  # '1' < 'a'
        ("'A' < 'a'", True),
        ("'inf' > 5", True),  # 'inf' is not numeric here: string order
        ("'x' = 0", False),
        ("'' = 0", False),
        ("'-2' < '-1'", True),
    ],
)
def test_numbers_versus_strings(source: str, expected: bool) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize("value", ["0", "0.0", " 0 ", "-0", "0.000", "0e5"])
def test_numeric_equality_with_column_values(value: str) -> None:
    assert ev("[x] = '0'", x=value)
    assert ev("[x] = 0", x=value)
    assert not ev("[x] <> '0'", x=value)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("2 = 2", True),
        ("2 == 2", True),
        ("2 = 3", False),
        ("2 <> 3", True),
        ("2 != 3", True),
        ("2 != 2", False),
        ("2 < 3", True),
        ("3 < 2", False),
        ("2 > 3", False),
        ("3 > 2", True),
        ("2 <= 2", True),
        ("3 <= 2", False),
        ("2 >= 3", False),
        ("3 >= 3", True),
        ("'b' >= 'a'", True),
        ("'a' <= 'a'", True),
        ("'a' < 'a'", False),
        ("'b' > 'a'", True),
        ("'a' == 'a'", True),
        ("'a' != 'b'", True),
    ],
)
def test_every_comparison_operator(source: str, expected: bool) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    ("source", "record", "expected"),
    [
        ("[a] + [b]", {"a": "2", "b": "3.5"}, 5.5),
        ("[a] - [b]", {"a": "2", "b": "3.5"}, -1.5),
        ("[a] * [b]", {"a": "2", "b": "3.5"}, 7.0),
        ("[a] / [b]", {"a": "7", "b": "2"}, 3.5),
        ("[a] / 0", {"a": "7"}, ""),
        ("[a] + 1", {"a": ""}, ""),
        ("[a] + 1", {"a": "x"}, ""),
        ("[a] * 1", {"a": None}, ""),
        ("-[a]", {"a": "4"}, -4.0),
        ("-[a]", {"a": ""}, ""),
    ],
)
def test_arithmetic(source: str, record: dict[str, str | None], expected: object) -> None:
    assert val(source, **record) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("-1", True), ("0", False), ("0.0", False), ("", False), (None, False), ("abc", True)],
)
def test_truthiness_of_a_value(value: str | None, expected: bool) -> None:
    assert ev("[a]", a=value) is expected
    assert ev("not [a]", a=value) is (not expected)


def test_truthiness_in_and_or() -> None:
    assert ev("[a] and [b]", a="1", b="x")
    assert not ev("[a] and [b]", a="1", b="0")
    assert ev("[a] or [b]", a="", b="2")


# -- strings, names, keywords ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("[a] = 'it''s'", "it's"),
        ('[a] = "say ""hi"""', 'say "hi"'),
        ('[a] = "it\'s"', "it's"),
        ("[a] = 'say \"hi\"'", 'say "hi"'),
        ("[a] = 'back\\slash'", "back\\slash"),
        ("[a] = ''''", "'"),
        ("[a] = 'two\nlines'", "two\nlines"),
    ],
)
def test_string_literals(source: str, value: str) -> None:
    assert ev(source, a=value)


@pytest.mark.parametrize(
    "source",
    [
        "[A] = '1' AnD [B] = '2'",
        "[a] = '1' and [b] = '2'",
        "[a] = '1' AND [b] = '2'",
        "NOT [a] = '3' And [b] = '2'",
        "[a] = '3' Or [b] = '2'",
        "[a] = '3' OR [b] = '2'",
        "ISNUMBER([a]) and IsInteger([b])",
    ],
)
def test_keywords_and_names_are_case_insensitive(source: str) -> None:
    assert ev(source, a="1", b="2")


def test_field_names_are_normalised_to_lower_case() -> None:
    assert parse("[HistoPat] = '0' and [histopat_2] = ''").variables == frozenset({"histopat", "histopat_2"})


def test_values_stay_case_sensitive() -> None:
    assert not ev("[a] = 'Yes'", a="yes")


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("[cb(2)] = '1'", "cb___2"),
        ("[CB(Ab)] = '1'", "cb___ab"),
        ("[cb(-1)] = '1'", "cb____1"),
        ("[cb(1.5)] = '1'", "cb___1_5"),
    ],
)
def test_checkbox_references(source: str, column: str) -> None:
    expr = parse(source)
    assert expr.variables == frozenset({column})
    assert expr.evaluate({column: ["1", "0", ""]}).tolist() == [True, False, False]


def test_variables_and_source() -> None:
    expr = parse("[a] = '0' AND [b] <> '' or sum([c], [a]) > 1")
    assert isinstance(expr, Expression)
    assert expr.source == "[a] = '0' AND [b] <> '' or sum([c], [a]) > 1"
    assert expr.variables == frozenset({"a", "b", "c"})
    assert parse("1 = 1").variables == frozenset()


def test_parse_is_cached() -> None:
    assert parse("[a] = '1'") is parse("[a] = '1'")


# -- functions --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "number", "integer", "blank"),
    [
        ("5", True, True, False),
        ("-3", True, True, False),
        (" 7 ", True, True, False),
        ("5.5", True, False, False),
        ("5.0", True, False, False),
        ("1e3", True, False, False),
        ("abc", False, False, False),
        ("\u0663", False, False, False),  # Arabic-Indic 3: not a REDCap integer (ASCII digits only)
        ("", False, False, True),
        (None, False, False, True),
    ],
)
def test_predicates(value: str | None, number: bool, integer: bool, blank: bool) -> None:
    assert ev("isnumber([a])", a=value) is number
    assert ev("isinteger([a])", a=value) is integer
    assert ev("isblankormissingcode([a])", a=value) is blank


@pytest.mark.parametrize(
    ("source", "record", "expected"),
    [
        ("if([a] = '1', 'yes', 'no')", {"a": "1"}, "yes"),
        ("if([a] = '1', 'yes', 'no')", {"a": "2"}, "no"),
        ("if([a] = '1', 'yes', 'no')", {"a": ""}, "no"),
        ("if([a] <> '', [a] * 2, 0)", {"a": "3"}, 6.0),
        ("if([a] <> '', [a] * 2, 0)", {"a": ""}, 0.0),
        ("if([a], 'set', '')", {"a": "0"}, ""),
        ("if([a] = '1', 'x', 5)", {"a": "2"}, "5"),
        ("if([a] = '1', [b], 'none')", {"a": "1", "b": "B"}, "B"),
        ("if([a] = '1', [b] = '2', [b] = '3')", {"a": "1", "b": "2"}, True),
        ("if([a] = '1', [b] = '2', [b] = '3')", {"a": "0", "b": "2"}, False),
    ],
)
def test_if(source: str, record: dict[str, str], expected: object) -> None:
    assert val(source, **record) == expected


def test_if_result_compared() -> None:
    assert ev("if([a] = '1', 10, 20) > 15", a="2")
    assert ev("if([a] = '1', 'x', 'y') = 'y'", a="2")


@pytest.mark.parametrize(
    ("function", "args", "expected"),
    [
        ("sum", ("1", "", "2.5"), 3.5),
        ("sum", ("1", "x", "2"), 3.0),
        ("sum", ("", "", ""), ""),
        ("sum", ("-4", "", ""), -4.0),
        ("mean", ("1", "", "2"), 1.5),
        ("mean", ("", "", ""), ""),
        ("min", ("3", "", "-1"), -1.0),
        ("min", ("", "", ""), ""),
        ("max", ("3", "", "-1"), 3.0),
        ("max", ("", "abc", ""), ""),
    ],
)
def test_aggregates_ignore_blanks(function: str, args: tuple[str, str, str], expected: object) -> None:
    a, b, c = args
    assert val(f"{function}([a], [b], [c])", a=a, b=b, c=c) == expected


def test_aggregates_with_one_argument_and_literals() -> None:
    assert val("sum([a])", a="2") == 2.0
    assert val("sum(1, 2, 3, 4)") == 10.0
    assert val("max(1, '7', [a])", a="") == 7.0


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),  # half away from zero, not numpy's half-to-even
        ("round(0.5)", 1.0),
        ("round(1.5)", 2.0),
        ("round(2.675, 2)", 2.68),
        ("round(0.125, 2)", 0.13),
        ("round(1.234, 1)", 1.2),
        ("round(1234, -2)", 1200.0),
        ("round('', 1)", ""),
        ("round('x')", ""),
        ("roundup(1.21, 1)", 1.3),
        ("roundup(-1.21, 1)", -1.3),
        ("roundup(2)", 2.0),
        ("roundup(2.01)", 3.0),
        ("rounddown(1.29, 1)", 1.2),
        ("rounddown(-1.29, 1)", -1.2),
        ("rounddown(19.999)", 19.0),
        ("abs(-3)", 3.0),
        ("abs(2.5)", 2.5),
        ("abs('')", ""),
    ],
)
def test_rounding_and_abs(source: str, expected: object) -> None:
    assert val(source) == expected


def test_rounding_with_column_digits() -> None:
    expr = parse("round([x], [d])")
    out = expr.evaluate_values({"x": ["3.14159", "3.14159", "3.14159"], "d": ["2", "0", ""]})
    assert out.tolist() == [3.14, 3.0, ""]


@pytest.mark.parametrize(
    ("source", "record", "expected"),
    [
        ("contains([a], 'CARC')", {"a": "Carcinoma"}, True),
        ("contains([a], 'x')", {"a": "Carcinoma"}, False),
        ("contains([a], 'x')", {"a": ""}, False),
        ("contains([a], '')", {"a": "abc"}, True),
        ("not_contain([a], 'x')", {"a": "abc"}, True),
        ("not_contain([a], 'B')", {"a": "abc"}, False),
        ("starts_with([a], 'a')", {"a": "Abc"}, True),
        ("starts_with([a], 'b')", {"a": "Abc"}, False),
        ("ends_with([a], 'bc')", {"a": "abC"}, True),
        ("ends_with([a], 'b')", {"a": "abc"}, False),
        ("contains([a], [b])", {"a": "abc", "b": "BC"}, True),
        ("starts_with([a], [b])", {"a": "abc", "b": "c"}, False),
    ],
)
def test_text_functions(source: str, record: dict[str, str], expected: bool) -> None:
    assert ev(source, **record) is expected


@pytest.mark.parametrize(("value", "expected"), [("abc", 3.0), ("", 0.0), (None, 0.0), ("été", 3.0)])
def test_length(value: str | None, expected: float) -> None:
    assert val("length([a])", a=value) == expected


def test_text_functions_vectorised_with_column_needles() -> None:
    expr = parse("contains([a], [b])")
    result = expr.evaluate({"a": ["abc", "abc", "", "ABC"], "b": ["b", "x", "", "c"]})
    assert result.tolist() == [True, False, True, True]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("datediff('2020-01-01', '2021-01-01', 'd')", 366.0),
        ("datediff('2021-01-01', '2020-01-01', 'd')", 366.0),  # absolute by default
        ("datediff('2021-01-01', '2020-01-01', 'd', 'ymd', 'true')", -366.0),
        ("datediff('2021-01-01', '2020-01-01', 'd', 'ymd', 'false')", 366.0),
        ("datediff('2021-01-01', '2020-01-01', 'd', 1)", -366.0),  # 4-argument form: the flag
        ("datediff('2021-01-01', '2020-01-01', 'd', 'false')", 366.0),
        ("datediff('2020-01-01', '2021-01-01', 'd', 'ymd')", 366.0),
        ("datediff('2020-01-01', '2020-01-02', 'h')", 24.0),
        ("datediff('2020-01-01', '2020-01-02', 'm')", 1440.0),
        ("datediff('2020-01-01', '2020-01-02', 's')", 86400.0),
        ("datediff('2020-01-01 10:00', '2020-01-01 12:30', 'h')", 2.5),
        ("datediff('2020-01-01 10:00:00', '2020-01-01 10:00:30', 's')", 30.0),
        ("datediff('01-31-2020', '02-01-2020', 'd', 'mdy')", 1.0),
        ("datediff('31-01-2020', '01-02-2020', 'd', 'dmy')", 1.0),
        ("datediff('2020-01-31', '02-01-2020', 'd', 'mdy')", 1.0),  # Y-M-D is always understood
        ("datediff('', '2020-01-01', 'd')", ""),
        ("datediff('2020-01-01', '', 'y')", ""),
        ("datediff('2020-13-45', '2020-01-01', 'd')", ""),
        ("datediff('today', 'today', 'd')", 0.0),
        ("rounddown(datediff('2000-06-15', '2020-06-14', 'y'))", 19.0),
        ("rounddown(datediff('2000-06-15', '2020-06-16', 'y'))", 20.0),
    ],
)
def test_datediff(source: str, expected: object) -> None:
    assert val(source) == expected


def test_datediff_year_and_month_lengths() -> None:
    assert val("datediff('2020-01-01', '2020-01-02', 'y')") == pytest.approx(1 / 365.2425)
    assert val("datediff('2020-01-01', '2020-01-02', 'M')") == pytest.approx(1 / 30.44)


def test_datediff_on_columns() -> None:
    expr = parse("datediff([dob], [dx], 'y') >= 18")
    columns = {
        "dob": ["2000-01-01", "2000-01-01", "", "2010-05-05"],
        "dx": ["2020-01-01", "2017-01-01", "2020-01-01", ""],
    }
    assert expr.evaluate(columns).tolist() == [True, False, False, False]


# -- malformed input --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "message", "position"),
    [
        ("[a] = '0')", "unexpected ')'", 9),
        ("[a] = 'abc", "unterminated string, no closing '", 6),
        ('[a] = "abc', 'unterminated string, no closing "', 6),
        ("[a] = 'it''s", "unterminated string, no closing '", 6),
        ("foo([a])", "unknown function 'foo'", 0),
        ("[a] = 1 and Foo(1)", "unknown function 'Foo'", 12),
        ("__import__('os')", "unknown function '__import__'", 0),
        ("[a] => 1", "unknown operator '=>'", 4),
        ("[a] === 1", "unknown operator '==='", 4),
        ("[a] =< 1", "unknown operator '=<'", 4),
        ("[a] & [b]", "unknown operator '&'", 4),
        ("[a] && [b]", "'&&' is not REDCap logic, use 'and'", 4),
        ("[a] || [b]", "'||' is not REDCap logic, use 'or'", 4),
        ("![a]", "'!' is not REDCap logic, use 'not'", 0),
        ("[a] = 1 [b]", "unexpected field [b]", 8),
        ("[a] = 1 2", "unexpected number 2", 8),
        ("[a] = 1 'x'", "unexpected string 'x'", 8),
        ("[event_1][a] = 1", "unexpected field [a]", 9),
        ("", "empty expression", 0),
        ("   ", "empty expression", 0),
        ("[a", "'[' without closing ']'", 0),
        ("[a] = '1' and [b", "'[' without closing ']'", 14),
        ("[a = [b]", "'[' without closing ']'", 0),
        (
            "[a b] = 1",
            "invalid field reference '[a b]': expected [name] or [name(code)] with letters, digits and '_' only",
            0,
        ),
        (
            "[a:checked] = 1",
            "invalid field reference '[a:checked]': expected [name] or [name(code)] with letters, digits and '_' only",
            0,
        ),
        ("[a] = true", "unknown name 'true' (field references are written [name], text is quoted)", 6),
        ("histopat = '0'", "unknown name 'histopat' (field references are written [name], text is quoted)", 0),
        ("sum + 1", "function 'sum' must be followed by '('", 0),
        ("round(1, 2, 3)", "function 'round' takes 1 to 2 arguments, got 3", 0),
        ("abs()", "function 'abs' takes 1 argument, got 0", 0),
        ("sum()", "function 'sum' takes at least 1 argument, got 0", 0),
        ("[x] = 1 or if([a], 1)", "function 'if' takes 3 arguments, got 2", 11),
        ("length('a', 'b')", "function 'length' takes 1 argument, got 2", 0),
        ("datediff([a], [b])", "function 'datediff' takes 3 to 5 arguments, got 2", 0),
        (
            "datediff([a], [b], 'w')",
            "datediff units must be a quoted literal, one of 'y', 'M', 'd', 'h', 'm', 's'",
            19,
        ),
        (
            "datediff([a], [b], [u])",
            "datediff units must be a quoted literal, one of 'y', 'M', 'd', 'h', 'm', 's'",
            19,
        ),
        (
            "datediff([a], [b], 'd', 'xyz', 1)",
            "datediff date format must be a quoted literal, one of 'ymd', 'mdy', 'dmy'",
            24,
        ),
        ("1 < [a] < 5", "chained comparison '<': combine comparisons with 'and'", 8),
        ("[a] = [b] = [c]", "chained comparison '=': combine comparisons with 'and'", 10),
        ("([a] = 1", "'(' is never closed", 0),
        ("sum([a], [b]", "'(' is never closed", 3),
        ("[a] = ", "unexpected end of expression", 6),
        ("[a] = 1 and", "unexpected end of expression", 11),
        ("not", "unexpected end of expression", 3),
        ("[a] = 1 and or [b] = 2", "unexpected 'or'", 12),
        ("[a] = not [b]", "unexpected 'not'", 6),
        ("()", "unexpected ')'", 1),
        ("sum(1,)", "unexpected ')'", 6),
        ("sum(1 2)", "unexpected number 2", 6),
        ("[a] = 1 # x", "unexpected character '#'", 8),
        ("[a] = 5.", "unexpected character '.'", 7),
        ("[a] ^ 2", "unexpected character '^'", 4),
        ("[a] = 1;", "unexpected character ';'", 7),
        ("(" * 150 + "1" + ")" * 150, "expression nested deeper than 100 levels", 100),
        ("not " * 150 + "1", "expression nested deeper than 100 levels", 400),
    ],
)
def test_syntax_errors(source: str, message: str, position: int) -> None:
    err = error_of(source)
    assert (err.message, err.position, err.expression) == (message, position, source)


def test_syntax_error_reads_well_and_is_a_value_error() -> None:
    err = error_of("[a] = '0')")
    assert isinstance(err, ValueError)
    assert str(err) == "unexpected ')' at position 9 in \"[a] = '0')\""


def test_syntax_error_pickles() -> None:
    err = error_of("[a] = '0')")
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.message, clone.expression, clone.position, str(clone)) == (
        err.message,
        err.expression,
        err.position,
        str(err),
    )


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        parse(42)  # type: ignore[arg-type]


# -- vectorised evaluation -------------------------------------------------------------------------------------------
TABLE = {
    "a": ["", None, np.nan, "0", "0.0", "5", "13", "31", "abc", " 7 ", "-2", "4.5"],
    "b": ["1", "", "2", "", "0", "13", "x", "31", "ABC", "7", "", "4.50"],
    "c": [
        "2020-01-01",
        "",
        "2019-12-31",
        "2021-06-30",
        "",
        "bad",
        "2020-02-29",
        "2000-01-01",
        "",
        "2020-01-01",
        "2022-01-01",
        "2020-01-02",
    ],
}
VECTOR_EXPRESSIONS = [
    "[a] = ''",
    "[a] <> '' AND [a] < 5",
    "[a] = [b]",
    "[a] <> [b]",
    "[a] < [b]",
    "[a] >= [b]",
    "[a] > 13 AND [a] < 31",
    "[a] <= '13' AND [a] >= '31'",
    "[a] = '0' OR [b] = '0'",
    "not ([a] = 'abc' or [b] = 'ABC')",
    "[a]",
    "[a] and [b]",
    "[a] + [b] > 5",
    "[a] / [b]",
    "sum([a], [b])",
    "mean([a], [b], 1)",
    "min([a], [b])",
    "max([a], [b], '3')",
    "isnumber([a])",
    "isinteger([b])",
    "isblankormissingcode([a])",
    "if([a] <> '', [a], [b])",
    "if(isnumber([a]), [a] * 2, 'n/a')",
    "round([a] * 1.25, 1)",
    "roundup([a])",
    "rounddown([a])",
    "abs([a])",
    "contains([a], 'b')",
    "contains([a], [b])",
    "not_contain([b], '1')",
    "starts_with([b], 'a')",
    "ends_with([a], [b])",
    "length([a]) > 1",
    "length([b])",
    "datediff([c], '2020-01-01', 'd')",
    "datediff('2020-01-01', [c], 'M', 'ymd', [a])",
    "'10' > '9'",
]


@pytest.mark.parametrize("source", VECTOR_EXPRESSIONS)
def test_vectorised_equals_per_record(source: str) -> None:
    expr = parse(source)
    n = len(TABLE["a"])
    records = [{name: column[i] for name, column in TABLE.items() if name in expr.variables} for i in range(n)]
    columns = {name: TABLE[name] for name in expr.variables}
    conditions = expr.evaluate(columns, n_rows=n)
    assert conditions.dtype == bool and conditions.shape == (n,)
    assert conditions.tolist() == [expr.evaluate_record(r) for r in records]
    values = expr.evaluate_values(columns, n_rows=n)
    one_by_one = [expr.evaluate_values({k: [v] for k, v in r.items()}, n_rows=1)[0] for r in records]
    assert values.tolist() == one_by_one


def test_vectorised_spot_values() -> None:
    columns = {"a": TABLE["a"], "b": TABLE["b"]}
    spot = parse("[a] <> '' AND [a] < 5").evaluate(columns).tolist()
    assert spot == [False, False, False, True, True, False, False, False, False, False, True, True]
    spot = parse("[a] = [b]").evaluate(columns).tolist()
    assert spot == [False, True, False, False, True, False, False, True, False, True, False, True]


@pytest.mark.parametrize(
    "make",
    [
        lambda v: list(v),
        lambda v: np.array(v, dtype=object),
        lambda v: np.array(["" if x is None else x for x in v]),  # numpy unicode
        lambda v: pd.Series(v, dtype=object),
        lambda v: pd.Series(v, dtype="str"),
        lambda v: pd.Series(v, dtype="category"),
    ],
)
def test_column_types(make: Any) -> None:
    raw = ["", None, "0", "0.0", "5", "abc"]
    expr = parse("[a] = '0' or [a] = 'abc' or [a] = ''")
    assert expr.evaluate({"a": make(raw)}).tolist() == [True, True, True, True, False, True]


def test_dataframe_input_and_numeric_columns() -> None:
    frame = pd.DataFrame({"a": ["1", "2", None], "b": [1.0, 2.5, np.nan]})
    assert parse("[a] = [b]").evaluate(frame).tolist() == [True, False, True]
    assert parse("[b] = '2.5' or [b] = ''").evaluate(frame).tolist() == [False, True, True]


def test_input_is_not_mutated_and_output_is_fresh() -> None:
    column = np.array(["1", None, "3"], dtype=object)
    expr = parse("[a] <> ''")
    result = expr.evaluate({"a": column})
    assert column.tolist() == ["1", None, "3"]
    result[:] = False
    assert expr.evaluate({"a": column}).tolist() == [True, False, True]


def test_constant_expressions_need_a_row_count() -> None:
    expr = parse("1 = 1")
    assert expr.evaluate({}, n_rows=3).tolist() == [True, True, True]
    assert expr.evaluate({"x": ["a", "b"]}).tolist() == [True, True]
    assert expr.evaluate_record({}) is True
    with pytest.raises(ValueError, match="references no column"):
        expr.evaluate({})


def test_columns_of_different_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        parse("[a] = [b]").evaluate({"a": ["1", "2"], "b": ["1"]})
    with pytest.raises(ValueError, match="n_rows=3"):
        parse("[a] = '1'").evaluate({"a": ["1"]}, n_rows=3)


def test_empty_columns() -> None:
    assert parse("[a] = '1'").evaluate({"a": []}).tolist() == []


def test_evaluate_values_types() -> None:
    assert val("[a]", a="x") == "x"
    assert val("[a]", a=None) == ""
    assert val("'lit'") == "lit"
    assert val("3") == 3.0
    assert val("[a] + 1", a="2") == 3.0
    assert val("[a] = '1'", a="1") is True


# -- missing variables -----------------------------------------------------------------------------------------------
def test_missing_variable() -> None:
    expr = parse("[a] = '1' and [zz] = '2' or [yy] = ''")
    with pytest.raises(MissingVariableError) as info:
        expr.evaluate({"a": ["1"]})
    err = info.value
    assert isinstance(err, KeyError)
    assert err.variable == "yy"
    assert err.missing == ("yy", "zz")
    assert str(err) == "variables 'yy', 'zz' referenced by \"[a] = '1' and [zz] = '2' or [yy] = ''\" not in the data"
    with pytest.raises(MissingVariableError, match="'zz'"):
        parse("[zz] = 1").evaluate_record({"a": "1"})
    with pytest.raises(KeyError):
        parse("[zz] = 1").evaluate_values({"a": ["1"]})
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.variable, clone.missing, str(clone)) == (err.variable, err.missing, str(err))


# -- real inputs ------------------------------------------------------------------------------------------------------
def _dictionary_columns(dictionary: pd.DataFrame) -> set[str]:
    """Export column names a dictionary defines: its variables plus ``name___code`` per checkbox choice."""
    names = set(dictionary["Variable / Field Name"].str.lower())
    checkboxes = dictionary[dictionary["Field Type"] == "checkbox"]
    for name, choices in zip(
        checkboxes["Variable / Field Name"], checkboxes["Choices, Calculations, OR Slider Labels"], strict=True
    ):
        for choice in choices.split("|"):
            names.add(checkbox_column(name, choice.split(",", 1)[0].strip()))
    return names


def _read_dictionary(use_case: str) -> pd.DataFrame:
    return pd.read_csv(DICTIONARIES / use_case / "redcap_dictionary.csv", dtype=str, keep_default_na=False)


DICTIONARY_FILES = sorted(DICTIONARIES.glob("*/redcap_dictionary.csv"))


def test_dictionaries_are_present() -> None:
    assert DICTIONARY_FILES, f"no dictionaries under {DICTIONARIES}"


@pytest.mark.parametrize("path", DICTIONARY_FILES, ids=lambda p: p.parent.name)
def test_dictionary_branching_logic_parses(path: Path) -> None:
    dictionary = _read_dictionary(path.parent.name)
    columns = _dictionary_columns(dictionary)
    for variable, logic in zip(dictionary["Variable / Field Name"], dictionary[BRANCHING], strict=True):
        if not logic.strip():
            continue
        expr = parse(logic)
        assert expr.variables <= columns, f"{path}: {variable}: unknown {sorted(expr.variables - columns)}"
        # and it evaluates on a blank record without error
        assert expr.evaluate_record(dict.fromkeys(expr.variables, "")) in (True, False)


#: Requirement conditions of the use cases (``Yes (<expr>)`` in the requirement tables), copied as facts.
REQUIREMENT_CONDITIONS: dict[str, list[str]] = {
    "uc3": [
        "[histopat] = '0'",
        "[histopat] = '0' AND [tnm_pt] = ''",
        "[histopat] = '0' AND [tnm_pn] = ''",
        "[histopat] = '0' AND [tnm_pm] = ''",
    ],
    "uc45": [
        "[chemo_drug] <> ''",
        "[chemo_drug_2] <> ''",
        "[chemo_drug_3] <> ''",
        "[chemo_drug_4] <> ''",
        "[chemo_drug_5] <> ''",
    ],
    "uc68": [
        "[patientclass] = '0'",
        "[histopat] = '5' OR [histopat] = '7' OR [histopat_2] = '5' OR [histopat_2] = '7' OR [histopat_3] = '5' "
        "OR [histopat_3] = '7'",
        "(([histopat]<>'' AND [histopat]<5) OR ([histopat_2]<>'' AND [histopat_2]<5) OR ([histopat_3]<>'' AND "
        "[histopat_3]<5)) AND [patientclass]='0'",
        "[patientclass] = '0' AND [laterality_2] <> ''",
    ],
    "uc7": [
        "([histopat]<>'' AND [histopat]<5) OR ([histopat_2]<>'' AND [histopat_2]<5) OR ([histopat_3]<>'' AND "
        "[histopat_3]<5)",
        "[her2ihc] = '2'",
        *(
            condition.replace("chemo_drug", drug).replace("chemo_dose", dose).replace("acc_dose", acc)
            for drug, dose, acc in (
                ("chemo_drug", "chemo_dose", "acc_dose"),
                ("chemo_drug_2", "chemo_dose_2", "acc_dose_2"),
                ("chemo_drug_3", "chemo_dose_3", "acc_dose_3"),
                ("chemo_drug_4", "chemo_dose_4", "acc_dose_4"),
                ("chemo_drug_5", "chemo_dose_5", "acc_dose_5"),
            )
            for condition in (
                "[chemo_drug] <> ''",
                "[chemo_drug] > 13",
                "[chemo_drug] > 13 AND [chemo_drug] < 31",
                "[chemo_drug] <= 13",
                "[chemo_drug] <= '13' AND [chemo_drug] >= '31'",
                "[chemo_dose] <> ''",
                "[acc_dose] <> ''",
            )
        ),
    ],
}


@pytest.mark.parametrize(
    ("use_case", "condition"),
    [(uc, condition) for uc, conditions in REQUIREMENT_CONDITIONS.items() for condition in conditions],
)
def test_requirement_conditions_parse(use_case: str, condition: str) -> None:
    expr = parse(condition)
    columns = _dictionary_columns(_read_dictionary(use_case))
    assert expr.variables <= columns, f"{use_case}: unknown {sorted(expr.variables - columns)}"


def test_impossible_requirement_condition_parses_and_is_never_true() -> None:
    expr = parse("[chemo_drug] <= '13' AND [chemo_drug] >= '31'")
    values = ["", "1", "13", "14", "20", "31", "40", "abc"]
    assert expr.evaluate({"chemo_drug": values}).tolist() == [False] * len(values)
