"""Shared fixtures: the reference material (skipped where absent) and compiled dictionaries."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES, SHARED_REFERENCE


@pytest.fixture(scope="session")
def reference() -> Path:
    """../shared/reference (the consortium's material); tests needing it skip on a user's machine."""
    if SHARED_REFERENCE is None:
        pytest.skip("../shared/reference is not present (it is only on the project's development machines)")
    return SHARED_REFERENCE


class _Compiled(dict):
    """Use cases compiled on first access, once per session."""

    def __missing__(self, use_case: str):
        from oncofhir.dictionary import compile_dictionary

        self[use_case] = compile_dictionary(DICTIONARIES / use_case, ONTOLOGIES)
        return self[use_case]


@pytest.fixture(scope="session")
def compiled() -> _Compiled:
    """{use_case: CompiledDictionary}, for the use cases in resources/dictionaries."""
    return _Compiled()
