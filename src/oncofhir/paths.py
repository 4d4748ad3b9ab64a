"""Where the bundled resources (dictionaries, ontology tables, FHIR definitions) are, wherever oncofhir runs.

The CLI's defaults used to be paths relative to the working directory (``resources/ontologies``), so any command
run outside the repository root failed with "dictionary not found". The repository's ``resources/`` folder is
reached through the package (``src/oncofhir/_resources`` is a symlink to it, and the wheel ships its files as
package data), so the same path works after ``pip install -e .`` and after ``pip install .``.
"""

from __future__ import annotations

from pathlib import Path

RESOURCES = (Path(__file__).resolve().parent / "_resources").resolve()  # the repository's folder when editable
DICTIONARIES = RESOURCES / "dictionaries"
ONTOLOGIES = RESOURCES / "ontologies"
FHIR_DEFINITIONS = RESOURCES / "fhir"
