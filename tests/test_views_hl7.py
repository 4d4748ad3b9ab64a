"""Second engine: the HL7 validator's ViewDefinition runner (org.hl7.fhir.r5.utils.sql.Runner) gives the same rows.

Needs the validator installed by tools/hl7-validator/install.sh (Java 17); skipped with the reason otherwise.
Three documented differences are normalised, not hidden: ``getResourceKey()`` is implementation-defined (the HL7
runner returns ``Bundle/<id>``, oncofhir the id); a primitive that has only an extension (a quantity's unit code
replaced by a data-absent-reason) is ``''`` there and NULL here (FHIR strings are never empty, so ``''`` is read
as NULL); and the HL7 runner 6.5.18 cannot hold dateTime values
("Attempt to add a type dateTime to an integer column"), so the untyped period-end columns are left out of its copy
of the views (every other column is compared, row for row).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import orjson
import pytest
from helpers import DICTIONARIES, ONTOLOGIES, REPO

from oncofhir.demo import write_demo
from oncofhir.dictionary.compiled import load_compiled
from oncofhir.pipeline import convert
from oncofhir.views.generate import views_for
from oncofhir.views.runner import run_view

HOME = Path(os.environ.get("ONCOFHIR_HL7_HOME", "~/.cache/oncofhir/hl7-validator")).expanduser()
SOURCE = REPO / "tools" / "hl7-validator" / "src" / "OncofhirViewRunner.java"
USE_CASES = sorted(p.name for p in DICTIONARIES.iterdir() if (p / "mapping.yaml").exists())

pytestmark = pytest.mark.skipif(
    not (HOME / "lib").is_dir() or shutil.which("java") is None or shutil.which("javac") is None,
    reason=f"the HL7 validator is not installed in {HOME} (tools/hl7-validator/install.sh) or Java 17 is missing",
)


def _typed_only(view: dict) -> dict:
    """The view without untyped (dateTime) columns, for the HL7 runner."""

    def strip(select: dict) -> None:
        select["column"] = [c for c in select.get("column", []) if "type" in c]
        for sub in select.get("select", []):
            strip(sub)

    copy = json.loads(json.dumps(view))
    for select in copy["select"]:
        strip(select)
    return copy


def _norm(row: dict) -> str:
    out = {}
    for key, value in row.items():
        if key in {"bundle_id", "resource_id"} and isinstance(value, str):
            value = value.rsplit("/", 1)[-1]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        elif value == "":
            value = None
        out[key] = value
    return json.dumps(out, sort_keys=True)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    tmp = tmp_path_factory.mktemp("hl7views")
    classes = tmp / "classes"
    classes.mkdir()
    subprocess.run(
        ["javac", "-nowarn", "-cp", f"{HOME}/lib/*", "-d", str(classes), str(SOURCE)], check=True, capture_output=True
    )
    demo = tmp / "demo"
    write_demo(DICTIONARIES, demo, seed=11, records=30, centers=1)
    args: list[str] = []
    ours: dict[str, list[dict]] = {}
    for use_case in USE_CASES:
        out = tmp / use_case
        export = sorted((demo / use_case).glob("*.csv"))[0]
        convert(DICTIONARIES / use_case, ONTOLOGIES, export, out, bundle_files=False)
        bundles = [orjson.loads(line) for line in (out / "bundles.ndjson").read_bytes().splitlines()]
        args += ["--ndjson", str(out / "bundles.ndjson")]
        for view in views_for(load_compiled(out / "work" / "dictionary.json")):
            typed = _typed_only(view)
            path = tmp / f"{view['name']}.json"
            path.write_text(json.dumps(typed))
            args += ["--view", str(path)]
            ours[view["name"]] = run_view(typed, bundles)
    result = tmp / "hl7.json"
    log = HOME / "logback.xml"
    run = subprocess.run(
        ["java", "-Xmx2g", f"-Dlogback.configurationFile={log}", "-cp", f"{classes}:{HOME}/lib/*",
         "OncofhirViewRunner", str(result), *args],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    problems = [line for line in (run.stdout + run.stderr).splitlines() if "ERROR" in line or "Exception" in line]
    assert run.returncode == 0, problems[:5]
    return ours, json.loads(result.read_text())


def _differences(ours: list[dict], theirs: list[dict]) -> list[tuple[str, object, object]]:
    """Columns that differ between rows of the same patient (wide views), for the failure message."""
    by_key = {json.loads(_norm(r))["bundle_id"]: json.loads(_norm(r)) for r in theirs}
    out = []
    for row in map(lambda r: json.loads(_norm(r)), ours):
        other = by_key.get(row["bundle_id"], {})
        out += [(k, v, other.get(k)) for k, v in row.items() if other.get(k) != v]
    return out[:10]


def test_hl7_runner_gives_identical_rows(both: tuple[dict, dict]) -> None:
    ours, theirs = both
    assert sorted(theirs) == sorted(ours)
    compared = 0
    for name, rows in ours.items():
        assert Counter(map(_norm, theirs[name])) == Counter(map(_norm, rows)), (name, _differences(rows, theirs[name]))
        compared += len(rows)
    assert compared > 1000
    assert all(ours[f"{uc}_patients"] for uc in USE_CASES)
