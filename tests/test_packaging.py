"""Packaging: the license, runtime versus test dependencies, and the resources shipped inside the package."""

from __future__ import annotations

import ast
import fnmatch
import tomllib

from helpers import REPO

from oncofhir import paths

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_apache_2_and_shipped() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "Apache License 2.0 ([LICENSE](LICENSE))" in (REPO / "README.md").read_text(encoding="utf-8")


def _imported_modules() -> set[str]:
    found: set[str] = set()
    for path in (REPO / "src" / "oncofhir").rglob("*.py"):
        if "_resources" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return found


def test_fhir_resources_is_a_test_dependency_only() -> None:
    assert not any(m == "fhir" or m.startswith("fhir.") for m in _imported_modules())
    runtime = PYPROJECT["project"]["dependencies"]
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert not [d for d in runtime if d.startswith("fhir.resources")]
    assert "fhir.resources>=8.0" in extras["dev"]
    assert "jinja2>=3.1" in runtime and "jinja2" in _imported_modules()
    assert "pygments>=2.10" in extras["workflow"]  # snakemake --report imports it


def test_every_resource_file_is_package_data() -> None:
    """A new use case (files under resources/dictionaries/) is shipped in the wheel without a packaging change."""
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["oncofhir"]
    assert (REPO / "resources").resolve() == paths.RESOURCES  # the symlink src/oncofhir/_resources, editable
    wanted = [
        f"_resources/{p.relative_to(REPO / 'resources').as_posix()}"
        for folder in ("dictionaries", "ontologies")
        for p in (REPO / "resources" / folder).rglob("*")
        if p.is_file()
    ] + [f"_resources/fhir/{p.name}" for p in (REPO / "resources" / "fhir").glob("*.json")]
    wanted += [f"templates/{p.name}" for p in (REPO / "src" / "oncofhir" / "templates").iterdir()]
    assert len(wanted) > 20
    missing = [f for f in wanted if not any(fnmatch.fnmatchcase(f, pattern) for pattern in patterns)]
    assert not missing
