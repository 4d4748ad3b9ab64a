"""Data dictionaries: the REDCap dictionary, the FHIR mapping, their compiler and linter."""

from .compiled import CompiledDictionary, Field, load_compiled
from .compiler import compile_dictionary

__all__ = ["CompiledDictionary", "Field", "compile_dictionary", "load_compiled"]
