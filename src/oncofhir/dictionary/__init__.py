"""Data dictionaries: the REDCap dictionary, the FHIR mapping, their compiler and linter.

The compiler (YAML, JSON schema, the logic parser) is imported on first use only: every stage after the
``compile_dictionary`` rule reads the compiled JSON and should not pay for it at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .compiled import CompiledDictionary, Field, load_compiled

if TYPE_CHECKING:
    from .compiler import compile_dictionary

__all__ = ["CompiledDictionary", "Field", "compile_dictionary", "load_compiled"]


def __getattr__(name: str) -> Any:
    if name == "compile_dictionary":
        from .compiler import compile_dictionary

        return compile_dictionary
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
