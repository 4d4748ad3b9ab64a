"""The curated terminology subset: every code valid, used, and described once."""

from __future__ import annotations

from helpers import ONTOLOGIES, USE_CASES

from oncofhir.fhir.values import DAR_DISPLAY
from oncofhir.ontology import Ontology
from oncofhir.privacy.generalise import SECURITY
from oncofhir.terminology import CHECKS, icdo3_morphology_ok


def _codings(node, found: set[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        if {"system", "code", "display"} <= set(node):
            found.add((node["system"], node["code"]))
        for value in node.values():
            _codings(value, found)
    elif isinstance(node, list):
        for item in node:
            _codings(item, found)


def test_every_code_passes_its_system_check() -> None:
    onto = Ontology.load(ONTOLOGIES)
    bad = []
    for alias, codes in onto.codes.items():
        check = onto.systems[alias].check_digit
        for code in codes:
            if (check and not CHECKS[check](code)) or (alias == "icdo3" and not icdo3_morphology_ok(code)):
                bad.append(f"{alias}:{code}")
    assert bad == []


def test_every_code_is_used_by_a_dictionary_or_the_engine(compiled) -> None:
    onto = Ontology.load(ONTOLOGIES)
    used: set[tuple[str, str]] = set()
    for uc in USE_CASES:
        _codings(compiled[uc].resources, used)
        _codings(compiled[uc].valuesets, used)
    engine = {(onto.systems["data-absent-reason"].uri, code) for code in DAR_DISPLAY}
    engine.add((SECURITY["system"], SECURITY["code"]))  # the security label of a generalised deposit copy
    listed = {(onto.systems[a].uri, c) for a, codes in onto.codes.items() for c in codes}
    assert sorted(listed - used - engine) == []
    assert sorted(used - listed) == []


def test_engine_displays_match_the_tables() -> None:
    onto = Ontology.load(ONTOLOGIES)
    assert {code: onto.codes["data-absent-reason"][code] for code in DAR_DISPLAY} == DAR_DISPLAY


def test_canonical_ncit_uri() -> None:
    assert Ontology.load(ONTOLOGIES).systems["ncit"].uri == "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
