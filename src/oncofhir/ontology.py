"""The curated terminology subset in ``resources/ontologies/``.

One TSV per code system (``<alias>.tsv``: code, display) plus ``systems.yaml`` (alias -> URI, version). The mapping
writes concepts as ``alias:code`` and takes displays from here, so each code has exactly one display project-wide.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import DictionaryError


@dataclass(frozen=True, slots=True)
class CodeSystem:
    """One code system: its alias in mappings, canonical URI and version."""

    alias: str
    uri: str
    version: str
    name: str
    check_digit: str | None = None


@dataclass(frozen=True, slots=True)
class Concept:
    """A resolved concept, ready to become a FHIR Coding."""

    alias: str
    system: str
    code: str
    display: str
    version: str

    def coding(self) -> dict[str, str]:
        """The FHIR Coding (system, code, display); version is recorded per system in the bundle meta."""
        return {"system": self.system, "code": self.code, "display": self.display}


class Ontology:
    """All code systems and their curated codes."""

    def __init__(self, systems: dict[str, CodeSystem], codes: dict[str, dict[str, str]]) -> None:
        self.systems = systems
        self.codes = codes

    @classmethod
    def load(cls, directory: str | Path) -> Ontology:
        """Load ``systems.yaml`` and every ``<alias>.tsv``; a malformed table is a DictionaryError."""
        directory = Path(directory)
        sys_path = directory / "systems.yaml"
        try:
            raw = yaml.safe_load(sys_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DictionaryError(f"cannot read code systems: {exc}", path=str(sys_path)) from None
        systems: dict[str, CodeSystem] = {}
        for alias, spec in raw.items():
            if not isinstance(spec, dict) or "uri" not in spec or "version" not in spec:
                raise DictionaryError(f"system '{alias}' needs 'uri' and 'version'", path=str(sys_path))
            systems[alias] = CodeSystem(
                alias=alias,
                uri=str(spec["uri"]),
                version=str(spec["version"]),
                name=str(spec.get("name", alias)),
                check_digit=spec.get("check_digit"),
            )
        codes: dict[str, dict[str, str]] = {}
        for alias in systems:
            table = directory / f"{alias}.tsv"
            codes[alias] = _read_table(table, systems[alias].version) if table.exists() else {}
        return cls(systems, codes)

    def resolve(self, ref: str) -> Concept:
        """Resolve ``alias:code``; raises KeyError with a readable reason when unknown."""
        alias, sep, code = ref.partition(":")
        if not sep or not code:
            raise KeyError(f"'{ref}' is not of the form <system alias>:<code>")
        system = self.systems.get(alias)
        if system is None:
            raise KeyError(f"unknown code system alias '{alias}' in '{ref}' (known: {', '.join(sorted(self.systems))})")
        display = self.codes[alias].get(code)
        if display is None:
            raise KeyError(f"code '{code}' is not in resources/ontologies/{alias}.tsv")
        return Concept(alias, system.uri, code, display, system.version)


def _read_table(path: Path, version: str) -> dict[str, str]:
    """Read one ``code<TAB>display<TAB>version`` table.

    Duplicate codes with different displays, and a version that differs from ``systems.yaml``, are errors: a table
    must describe exactly one release of its code system.
    """
    out: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames is None or not {"code", "display"} <= set(reader.fieldnames):
            raise DictionaryError("an ontology table needs the columns 'code' and 'display'", path=str(path))
        for lineno, row in enumerate(reader, start=2):
            code, display = (row.get("code") or "").strip(), (row.get("display") or "").strip()
            if not code or not display:
                raise DictionaryError(f"line {lineno}: empty code or display", path=str(path))
            row_version = (row.get("version") or "").strip()
            if row_version and row_version != version:
                raise DictionaryError(
                    f"line {lineno}: version '{row_version}' differs from systems.yaml ('{version}')", path=str(path)
                )
            if code in out and out[code] != display:
                raise DictionaryError(
                    f"line {lineno}: code '{code}' listed twice with different displays", path=str(path)
                )
            out[code] = display
    return out
