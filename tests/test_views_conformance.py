"""The official SQL-on-FHIR v2 conformance suite (vendored, MIT) against oncofhir's ViewDefinition runner."""

from __future__ import annotations

import pytest

from oncofhir.views.conformance import DEFAULT_SUITE, check, load_suite, main
from oncofhir.views.fhirpath import Env, Path, PathError, plain
from oncofhir.views.runner import CompiledView, ViewError, run_view

CASES = load_suite(DEFAULT_SUITE)


def test_suite_is_complete() -> None:
    assert len(CASES) == 134
    assert (DEFAULT_SUITE.parent / "LICENSE.md").read_text().startswith("Copyright (c) 2018-2023")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance(case) -> None:
    assert check(case) is None


def test_main_prints_pass_count(capsys) -> None:
    assert main([str(DEFAULT_SUITE)]) == 0
    assert capsys.readouterr().out.startswith("SQL-on-FHIR v2 conformance: 134/134 passed")


def _paths(node, out):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"path", "forEach", "forEachOrNull"} and isinstance(value, str):
                out.add(value)
            _paths(value, out)
    elif isinstance(node, list):
        for item in node:
            _paths(item, out)
    return out


def test_fast_path_agrees_with_fhirpathpy() -> None:
    """Every suite expression the fast subset compiles gives fhirpathpy's result on every suite resource."""
    compared = 0
    for case in CASES:
        view = case.test["view"]
        if not isinstance(view, dict) or case.test.get("expectError"):
            continue
        constants = CompiledView(view).constants
        for expression in sorted(_paths(view, set())):
            path = Path(expression, constants)
            if path.fast is None:
                continue
            for resource in case.resources:
                env = Env({**constants, "rowIndex": 0}, resource)
                try:
                    want = [plain(v) for v in path.slow(resource, env)]
                except PathError:  # e.g. $this outside a forEach: fhirpathpy has nothing to compare with
                    continue
                assert [plain(v) for v in path.evaluate(resource, env)] == want, (case.id, expression, resource["id"])
                compared += 1
    assert compared > 300


def test_generated_view_shapes_are_fast() -> None:
    """The expression forms the view generator emits compile to the fast subset (no fhirpathpy per value)."""
    for expression in [
        "entry.resource.ofType(Observation).where(code.coding.exists(system = 'http://snomed.info/sct' and "
        "code = '1')).value.ofType(CodeableConcept).coding.first().code",
        "entry.resource.ofType(Patient).identifier.first().value",
        "dataAbsentReason.coding.first().code",
        "extension('http://hl7.org/fhir/StructureDefinition/data-absent-reason').value.ofType(code).first()",
    ]:
        assert Path(expression).fast is not None, expression


def test_column_with_several_values_is_an_error() -> None:
    view = {"resource": "Patient", "select": [{"column": [{"name": "g", "path": "name.given"}]}]}
    with pytest.raises(ViewError, match=r"column 'g' \(name.given\) yielded 2 values"):
        run_view(view, [{"resourceType": "Patient", "name": [{"given": ["a", "b"]}]}])


def test_subset_parser_gives_fhirpathpys_tree() -> None:
    """The fast parser returns exactly fhirpathpy's AST wherever it accepts an expression, and declines the rest."""
    from fhirpathpy.parser import parse

    from oncofhir.views.parser import parse_subset

    expressions = set()
    for case in CASES:
        _paths(case.test["view"], expressions)
    accepted = 0
    for expression in sorted(e for e in expressions if e != "@@"):
        mine = parse_subset(expression)
        if mine is not None:
            assert mine == parse(expression), expression
            accepted += 1
    assert accepted > 100
    assert parse_subset("value.ofType(Quantity).value < %v") is None
    assert parse_subset("@@") is None
