#!/usr/bin/env python3
"""Vendor what oncofhir's validation layers need from the FHIR R4B core package and the UCUM tables.

Why: validation must run offline and reproducibly, so nothing is downloaded at run time. This script is run by a
developer (never by the workflow) to (re)create the files beside it:

- ``fhir.schema.json``: the official R4B JSON schema (``openapi/fhir.schema.json`` of ``hl7.fhir.r4b.core``),
  reduced to the definitions reachable from the resource types oncofhir emits, descriptions dropped;
- ``r4b-definitions.json``: a compact derivation of the StructureDefinition snapshots of those types (cardinality,
  types, reference targets, required bindings, invariants), the expansions of the required value sets, the
  definitions of the extensions oncofhir uses, and the regular expressions of the primitive types;
- ``ucum.json``: the UCUM prefix and atom symbols (from ``ucum-essence.xml``), for the unit-syntax check;
- ``README.md``: provenance (package, version, licence, sha256 of every download and vendored file).

Usage: ``python resources/fhir/fetch.py`` (needs ``npm`` and ``pip``; writes only into this folder). ``--check``
recomputes everything and fails if the vendored files differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PACKAGE = "hl7.fhir.r4b.core"
VERSION = "4.3.0"
#: ucum-essence.xml ships inside this MIT-licensed wheel (the file itself is Regenstrief's, see README).
UCUM_WHEEL = ("ucumvert", "0.3.2")
#: The resource types oncofhir's builder emits (oncofhir.fhir.builder), plus the Bundle that holds them.
RESOURCES = (
    "Bundle",
    "Patient",
    "Observation",
    "Condition",
    "Procedure",
    "MedicationAdministration",
    "DiagnosticReport",
)
#: Extensions oncofhir writes (the missing-data rule of docs/dictionary-format.md).
EXTENSIONS = ("http://hl7.org/fhir/StructureDefinition/data-absent-reason",)
OUT = Path(__file__).resolve().parent
FHIRPATH_TYPE = "http://hl7.org/fhirpath/System."
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"


def sha256(data: bytes) -> str:
    """Hex sha256 (the README records one per download and vendored file)."""
    return hashlib.sha256(data).hexdigest()


def npm_pack(spec: str, dest: Path) -> Path:
    """``npm pack`` a package into ``dest`` (npm verifies the registry's integrity hash) and return the tarball."""
    out = subprocess.run(
        ["npm", "pack", spec, "--silent", "--pack-destination", str(dest)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dest / out.stdout.strip().splitlines()[-1]


def pip_download(name: str, version: str, dest: Path) -> Path:
    """Download one wheel without its dependencies."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), f"{name}=={version}"],
        check=True,
    )
    return next(dest.glob(f"{name}-{version}-*.whl"))


def read_package(tgz: Path) -> dict[str, Any]:
    """Every JSON file of the package's ``package/`` folder, by file name, read straight from the tarball."""
    files: dict[str, Any] = {}
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".json") and member.name.count("/") <= 2:
                handle = tar.extractfile(member)
                if handle is not None:
                    files[member.name.removeprefix("package/")] = json.loads(handle.read())
    return files


# -- StructureDefinitions -> compact definitions -------------------------------------------------------------------
def _type_name(sds: dict[str, dict[str, Any]], code: str, profiles: Iterable[str]) -> str:
    """``code`` or ``code/Profile`` for a constrained type such as SimpleQuantity."""
    for url in profiles:
        sd = sds.get(url)
        if sd is not None and sd["id"] != code:
            return f"{code}/{sd['id']}"
    return code


def _element_type(sds: dict[str, dict[str, Any]], t: dict[str, Any]) -> str:
    code = t["code"]
    if code.startswith(FHIRPATH_TYPE):  # id, extension.url, primitive .value: the FHIR type is in an extension
        for ext in t.get("extension", []):
            if ext.get("url") == TYPE_EXT:
                return ext["valueUrl"]
        return code.removeprefix(FHIRPATH_TYPE)
    return _type_name(sds, code, t.get("profile", []))


def reachable_types(by_id: dict[str, dict[str, Any]], roots: Iterable[str]) -> list[str]:
    """Every type (resource, datatype, profile of a datatype) the roots' snapshots can contain."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in by_id:
            continue
        seen.add(name)
        sd = by_id[name]
        if sd.get("baseDefinition", "").rsplit("/", 1)[-1] in by_id and sd.get("derivation") == "constraint":
            todo.append(sd["baseDefinition"].rsplit("/", 1)[-1])
        for el in sd["snapshot"]["element"]:
            for t in el.get("type", []):
                if not t["code"].startswith(FHIRPATH_TYPE) and t["code"] != "Resource":
                    todo.append(t["code"])
                todo.extend(p.rsplit("/", 1)[-1] for p in t.get("profile", []))
    return sorted(seen)


def derive_type(sds: dict[str, dict[str, Any]], sd: dict[str, Any], constraints: dict[str, Any]) -> dict[str, Any]:
    """One type's elements (relative paths), its own invariants and, for primitives, the value's regex."""
    root = sd["type"]
    elements: dict[str, Any] = {}
    own: list[str] = []
    regex = None
    for el in sd["snapshot"]["element"]:
        path = el["path"]
        keys = []
        for c in el.get("constraint", []):
            if "expression" not in c:
                continue
            key = c["key"]
            entry = {
                "severity": c["severity"],
                "human": c["human"],
                "expression": c["expression"],
                "source": c.get("source", sd["url"]).rsplit("/", 1)[-1],
            }
            previous = constraints.setdefault(key, entry)
            if previous["expression"] != entry["expression"]:
                # ele-1 has a variant for Resource-typed elements (`or $this is Parameters`): keep both
                key = _variant_key(constraints, key, entry)
            keys.append(key)
        if path == root:
            own = keys
            continue
        rel = path[len(root) + 1 :]
        if sd["kind"] == "primitive-type":
            if rel == "value":
                for t in el.get("type", []):
                    for ext in t.get("extension", []):
                        if ext.get("url") == REGEX_EXT:
                            regex = ext["valueString"]
            continue
        spec: dict[str, Any] = {"min": el.get("min", 0), "max": el.get("max", "*")}
        if "contentReference" in el:
            spec["ref"] = el["contentReference"].split("#", 1)[1][len(root) + 1 :]
        else:
            spec["types"] = [_element_type(sds, t) for t in el.get("type", [])]
            targets = sorted(
                {
                    p.rsplit("/", 1)[-1]
                    for t in el.get("type", [])
                    if t["code"] == "Reference"
                    for p in t.get("targetProfile", [])
                }
            )
            if targets:
                spec["targets"] = targets
        binding = el.get("binding") or {}
        if binding.get("strength") == "required" and binding.get("valueSet"):
            spec["binding"] = binding["valueSet"].split("|", 1)[0]
        if keys:
            spec["constraints"] = keys
        elements[rel] = spec
    out: dict[str, Any] = {"kind": sd["kind"], "constraints": own}
    if sd["kind"] != "primitive-type":
        out["elements"] = elements
    if regex is not None:
        out["regex"] = regex
    if sd.get("derivation") == "constraint":
        out["base"] = sd["baseDefinition"].rsplit("/", 1)[-1]
    return out


def _variant_key(constraints: dict[str, Any], key: str, entry: dict[str, Any]) -> str:
    """A stable distinct key for a second expression under the same constraint key."""
    n = 2
    while True:
        candidate = f"{key}#{n}"
        if candidate not in constraints:
            constraints[candidate] = entry
            return candidate
        if constraints[candidate]["expression"] == entry["expression"]:
            return candidate
        n += 1


def derive_extension(sds: dict[str, dict[str, Any]], sd: dict[str, Any], constraints: dict[str, Any]) -> dict[str, Any]:
    """An extension's allowed value types and value binding (the parts the layers check)."""
    spec: dict[str, Any] = {"context": [c.get("expression") for c in sd.get("context", [])]}
    for el in sd["snapshot"]["element"]:
        if el["path"] == "Extension.value[x]":
            spec["types"] = [_element_type(sds, t) for t in el.get("type", [])]
            binding = el.get("binding") or {}
            if binding.get("strength") == "required":
                spec["binding"] = binding["valueSet"].split("|", 1)[0]
        if el["path"] == "Extension":
            spec["constraints"] = [c["key"] for c in el.get("constraint", []) if "expression" in c]
            for c in el.get("constraint", []):
                if "expression" in c:
                    constraints.setdefault(
                        c["key"],
                        {
                            "severity": c["severity"],
                            "human": c["human"],
                            "expression": c["expression"],
                            "source": c.get("source", sd["url"]).rsplit("/", 1)[-1],
                        },
                    )
    return spec


# -- value sets ------------------------------------------------------------------------------------------------------
def _concepts(concepts: list[dict[str, Any]], out: dict[str, str]) -> None:
    for c in concepts:
        out[c["code"]] = c.get("display", "")
        _concepts(c.get("concept", []), out)


def expand(url: str, valuesets: dict[str, Any], codesystems: dict[str, Any]) -> dict[str, dict[str, str]] | None:
    """The codes of a value set by system (code -> display), or None when it cannot be enumerated offline.

    Handles what the core's required bindings use: whole code systems, enumerated concepts, nested value sets and
    exclusions. A filter or a code system the package does not contain (BCP-47, MIME types, UCUM) makes the value
    set non-enumerable: the binding layer then reports nothing rather than guess.
    """
    vs = valuesets.get(url)
    if vs is None or "compose" not in vs:
        return None
    out: dict[str, dict[str, str]] = {}
    for inc in vs["compose"].get("include", []):
        if inc.get("filter"):
            return None
        for nested in inc.get("valueSet", []):
            sub = expand(nested.split("|", 1)[0], valuesets, codesystems)
            if sub is None:
                return None
            for system, codes in sub.items():
                out.setdefault(system, {}).update(codes)
        system = inc.get("system")
        if system is None:
            continue
        codes = out.setdefault(system, {})
        if inc.get("concept"):
            cs_codes: dict[str, str] = {}
            if system in codesystems:
                _concepts(codesystems[system].get("concept", []), cs_codes)
            for c in inc["concept"]:
                codes[c["code"]] = c.get("display") or cs_codes.get(c["code"], "")
        else:
            cs = codesystems.get(system)
            if cs is None or cs.get("content") not in {"complete", None}:
                return None
            _concepts(cs.get("concept", []), codes)
    for exc in vs["compose"].get("exclude", []):
        for c in exc.get("concept", []):
            out.get(exc.get("system", ""), {}).pop(c["code"], None)
    return out


# -- JSON schema -----------------------------------------------------------------------------------------------------
def trim_schema(schema: dict[str, Any], roots: Iterable[str]) -> dict[str, Any]:
    """The definitions reachable from ``roots`` (``ResourceList`` narrowed to them), without descriptions."""
    defs = schema["definitions"]
    roots = list(roots)

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "description"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    keep: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        if name == "ResourceList":
            keep[name] = {"oneOf": [{"$ref": f"#/definitions/{r}"} for r in roots]}
            continue
        keep[name] = strip(defs[name])
        todo.extend(re.findall(r'"#/definitions/([^"]+)"', json.dumps(defs[name])))
    return {
        "$schema": schema["$schema"],
        "id": schema["id"],
        "description": f"{PACKAGE}#{VERSION} openapi/fhir.schema.json, reduced by resources/fhir/fetch.py",
        "definitions": dict(sorted(keep.items())),
    }


# -- UCUM --------------------------------------------------------------------------------------------------------------
def derive_ucum(xml_bytes: bytes) -> dict[str, Any]:
    """Prefix and atom symbols (case-sensitive codes) of UCUM; metric atoms may take a prefix."""
    root = ET.fromstring(xml_bytes)  # noqa: S314 (a pinned, checksummed file, not user input)
    ns = "{http://unitsofmeasure.org/ucum-essence}"
    prefixes = sorted(p.get("Code") for p in root.iter(f"{ns}prefix"))
    atoms: dict[str, bool] = {}
    for tag in ("base-unit", "unit"):
        for u in root.iter(f"{ns}{tag}"):
            atoms[u.get("Code")] = tag == "base-unit" or u.get("isMetric") == "yes"
    return {
        "version": root.get("version"),
        "revision_date": root.get("revision-date"),
        "prefixes": prefixes,
        "atoms": dict(sorted(atoms.items())),
    }


# -- main ------------------------------------------------------------------------------------------------------------
def dump(obj: Any) -> bytes:
    """Deterministic, compact JSON: one file per run with identical bytes for identical inputs."""
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def build(work: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """Download into ``work`` and derive every vendored file; returns (files, download checksums)."""
    tgz = npm_pack(f"{PACKAGE}@{VERSION}", work)
    wheel = pip_download(*UCUM_WHEEL, work)
    files = read_package(tgz)
    meta = files["package.json"]
    assert meta["version"] == VERSION and meta["license"] == "CC0-1.0", meta
    sds = {f["url"]: f for f in files.values() if f.get("resourceType") == "StructureDefinition"}
    by_id = {sd["id"]: sd for sd in sds.values()}
    valuesets = {f["url"]: f for f in files.values() if f.get("resourceType") == "ValueSet"}
    codesystems = {f["url"]: f for f in files.values() if f.get("resourceType") == "CodeSystem"}

    constraints: dict[str, Any] = {}
    names = reachable_types(by_id, [*RESOURCES, "Extension", "Element", "BackboneElement"])
    types = {name: derive_type(sds, by_id[name], constraints) for name in names}
    extensions = {url: derive_extension(sds, sds[url], constraints) for url in EXTENSIONS}
    bound = {
        spec["binding"]
        for t in [*types.values(), *extensions.values()]
        for spec in [*t.get("elements", {}).values(), t]
        if "binding" in spec
    }
    expansions = {url: expand(url, valuesets, codesystems) for url in sorted(bound)}
    definitions = {
        "package": PACKAGE,
        "version": VERSION,
        "resources": list(RESOURCES),
        "types": types,
        "extensions": extensions,
        "constraints": dict(sorted(constraints.items())),
        "valuesets": expansions,
    }
    with zipfile.ZipFile(wheel) as zf:
        essence = zf.read("ucumvert/vendor/ucum-essence.xml")
    out = {
        "fhir.schema.json": dump(trim_schema(files["openapi/fhir.schema.json"], RESOURCES)),
        "r4b-definitions.json": dump(definitions),
        "ucum.json": dump(derive_ucum(essence)),
    }
    downloads = {
        tgz.name: sha256(tgz.read_bytes()),
        wheel.name: sha256(wheel.read_bytes()),
        "ucum-essence.xml": sha256(essence),
    }
    return out, downloads


def readme(files: dict[str, bytes], downloads: dict[str, str], ucum: dict[str, Any]) -> bytes:
    """Provenance of the vendored files (regenerated with them)."""
    lines = [
        "# Vendored FHIR definitions",
        "",
        "Written by `python resources/fhir/fetch.py` (do not edit by hand); read by `oncofhir.validate`.",
        "The workflow never downloads anything: these files are all the validation layers need.",
        "",
        "## Sources",
        "",
        "| source | version | licence | sha256 |",
        "|---|---|---|---|",
    ]
    for name, digest in downloads.items():
        if name.startswith(PACKAGE):
            lines.append(f"| npm `{PACKAGE}` (`{name}`) | {VERSION} | CC0-1.0 (HL7 FHIR core) | `{digest}` |")
        elif name.endswith(".whl"):
            lines.append(
                f"| PyPI `{UCUM_WHEEL[0]}` (`{name}`), only its `vendor/ucum-essence.xml` | {UCUM_WHEEL[1]} | "
                f"MIT (wheel) | `{digest}` |"
            )
        else:
            lines.append(
                f"| `{name}` (UCUM table, Regenstrief Institute) | {ucum['version']} ({ucum['revision_date']}) | "
                "UCUM Copyright Notice and License (free use with attribution) | "
                f"`{digest}` |"
            )
    lines += [
        "",
        "## Files",
        "",
        "| file | content | bytes | sha256 |",
        "|---|---|---|---|",
    ]
    what = {
        "fhir.schema.json": "the official R4B JSON schema, only the definitions reachable from the resource types "
        "oncofhir emits (`ResourceList` narrowed to them), descriptions removed",
        "r4b-definitions.json": "derived from the StructureDefinition snapshots of those types: per element "
        "cardinality, types, reference targets, required binding and invariant keys; the invariants (FHIRPath); "
        "the expansions of the required value sets (`null`: not enumerable offline); the data-absent-reason "
        "extension; primitive regexes",
        "ucum.json": "UCUM prefix and atom symbols (metric flag), for the unit-syntax check",
    }
    for name, data in files.items():
        lines.append(f"| `{name}` | {what[name]} | {len(data)} | `{sha256(data)}` |")
    lines += [
        "",
        "UCUM is copyright (c) Regenstrief Institute, Inc. and The UCUM Organization, Indianapolis, IN. "
        "All rights reserved. See https://ucum.org/trac/wiki/TermsOfUse; only the unit symbols are used here.",
        "FHIR is the registered trademark of HL7 and is used with the permission of HL7.",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    """Fetch, derive, and write (or with ``--check`` compare) the vendored files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the vendored files are not what fetch derives")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="oncofhir-fhir-") as tmp:
        files, downloads = build(Path(tmp))
    files["README.md"] = readme(files, downloads, json.loads(files["ucum.json"]))
    if args.check:
        stale = [n for n, data in files.items() if not (OUT / n).exists() or (OUT / n).read_bytes() != data]
        for name in stale:
            print(f"differs: {name}", file=sys.stderr)
        return 1 if stale else 0
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
