"""The compiled form of a use case's dictionary: what ingest, QC and FHIR stages read.

Compiling once (``oncofhir dictionary compile``) resolves every concept to a Coding and checks every reference,
so the per-center stages never re-parse YAML or consult the ontology: they load one JSON file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DictionaryError

COMPILED_FORMAT = 2  # 2: mapping rules and calc fields' calculations

#: Kahn's categories a mapping rule may have, and the QC check type each becomes (docs/qc.md).
RULE_CATEGORIES = ("relational", "computational", "temporal")


@dataclass(slots=True)
class Rule:
    """A mapping.yaml rule: a REDCap-logic condition that must hold for every record it applies to.

    ``assert_`` must hold; ``when`` (optional) narrows the records it applies to. A ``computed`` rule instead
    says that ``variable`` holds the value of the calculation ``assert_`` (computational conformance).
    ``if_blank``: ``skip`` (default) leaves a record out when a variable the rule names is blank (a completeness
    question), ``evaluate`` evaluates it anyway (the rule handles blanks itself).
    """

    id: str
    category: str
    assert_: str
    message: str
    when: str = ""
    weight: int = 1
    type: str = "condition"
    variable: str = ""
    if_blank: str = "skip"
    variables: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Field:
    """One REDCap variable with everything the QC and FHIR stages need about it."""

    name: str
    form: str
    type: str
    label: str
    choices: dict[str, str] = field(default_factory=dict)
    validation: str = ""
    min: str = ""
    max: str = ""
    branching: str = ""
    minimal: bool | str = False
    mandatory: bool | str = False
    max_length: int | None = None
    default: str | None = None
    #: Why this use case codes the variable differently from others sharing it (mapping ``own_coding``), or None.
    own_coding: str | None = None
    #: A ``calc`` field's REDCap calculation (QC recomputes it: computational conformance); "" otherwise.
    calculation: str = ""

    @property
    def datatype(self) -> str:
        """The conformance datatype: ``code`` for choice fields, else the validation type or ``string``."""
        if self.choices:
            return "code"
        if self.validation in {"integer", "number", "number_1dp", "number_2dp"}:
            return "integer" if self.validation == "integer" else "number"
        if self.validation.startswith("date"):
            return "date"
        return "string"

    @property
    def level(self) -> str:
        """``minimal``, ``mandatory`` or ``recommended`` (the paper's three levels of data provision)."""
        if self.minimal is not False:
            return "minimal"
        if self.mandatory is not False:
            return "mandatory"
        return "recommended"


@dataclass(slots=True)
class CompiledDictionary:
    """A use case's variables and resource plans, concepts resolved."""

    use_case: str
    title: str
    version: str
    record_id: str
    forms: list[str]
    fields: dict[str, Field]
    resources: list[dict[str, Any]]
    valuesets: dict[str, dict[str, Any]] = field(default_factory=dict)
    systems: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    format: int = COMPILED_FORMAT
    #: mapping.yaml ``privacy``: quasi-identifiers and the optional sensitive variable (oncofhir.privacy)
    privacy: dict[str, Any] = field(default_factory=dict)
    #: mapping.yaml ``duplicates``: the key variables of the duplicate-patient check (oncofhir.qc.duplicates)
    duplicates: dict[str, Any] = field(default_factory=dict)
    #: mapping.yaml ``rules``: cross-variable conditions QC checks (relational, computational, temporal)
    rules: list[Rule] = field(default_factory=list)

    @property
    def complete_columns(self) -> list[str]:
        """REDCap's ``<form>_complete`` columns for this dictionary's instruments."""
        return [f"{form}_complete" for form in self.forms]

    def to_json(self) -> str:
        """Stable JSON (insertion order is deterministic) so an unchanged dictionary compiles to identical bytes."""
        return json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n"


def load_compiled(path: str | Path) -> CompiledDictionary:
    """Load a compiled dictionary written by :func:`oncofhir.dictionary.compile_dictionary`."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DictionaryError(f"cannot read compiled dictionary: {exc}", path=str(path)) from None
    if raw.get("format") != COMPILED_FORMAT:
        raise DictionaryError(
            f"compiled with format {raw.get('format')}, this oncofhir reads format {COMPILED_FORMAT}: recompile",
            path=str(path),
        )
    raw["fields"] = {name: Field(**spec) for name, spec in raw["fields"].items()}
    raw["rules"] = [Rule(**spec) for spec in raw.get("rules", [])]
    return CompiledDictionary(**raw)
