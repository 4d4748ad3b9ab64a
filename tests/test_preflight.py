"""A bad dictionary stops the workflow before any job (oncofhir.dictionary.preflight, called by common.smk)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES, REPO, workflow_env

from oncofhir.dictionary.preflight import preflight
from oncofhir.errors import DictionaryError
from oncofhir.pipeline import stage_compile


@pytest.fixture()
def dictionaries(tmp_path: Path) -> Path:
    """A private copy of the shipped dictionaries, to break."""
    shutil.copytree(DICTIONARIES, tmp_path / "dictionaries")
    return tmp_path / "dictionaries"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_stale_use_case_with_an_unknown_variable_is_reported_with_its_problem(dictionaries, tmp_path) -> None:
    edit(dictionaries / "uc1" / "mapping.yaml", "  hep_b: {mandatory: true}", "  hep_bb: {mandatory: true}")
    with pytest.raises(DictionaryError) as err:
        preflight(["uc1", "uc3"], dictionaries, ONTOLOGIES, tmp_path / "compiled")
    assert str(err.value) == (
        f"{dictionaries / 'uc1'}: use case 'uc1' does not compile\n"
        "  - variables: 'hep_bb' is not in the REDCap dictionary"
    )


def test_only_use_cases_whose_compiled_json_is_missing_or_older_than_a_source_are_compiled(
    dictionaries, tmp_path
) -> None:
    compiled = tmp_path / "compiled"
    assert preflight(["uc3", "uc1"], dictionaries, ONTOLOGIES, compiled) == ["uc1", "uc3"]
    for uc in ("uc1", "uc3"):
        stage_compile(dictionaries / uc, ONTOLOGIES, compiled / f"{uc}.json")
    assert preflight(["uc1", "uc3"], dictionaries, ONTOLOGIES, compiled) == []  # an unchanged run costs nothing
    mapping = dictionaries / "uc3" / "mapping.yaml"
    later = (compiled / "uc3.json").stat().st_mtime + 10
    os.utime(mapping, (later, later))
    assert preflight(["uc1", "uc3"], dictionaries, ONTOLOGIES, compiled) == ["uc3"]


def test_a_shared_answer_coded_differently_stops_even_when_only_one_use_case_changed(dictionaries, tmp_path) -> None:
    """uc3 recodes 'No' (every use case: SNOMED CT 373067005) as 'Negative': the cross-use-case rule of issue #12."""
    compiled = tmp_path / "compiled"
    for uc in ("uc1", "uc3"):
        stage_compile(dictionaries / uc, ONTOLOGIES, compiled / f"{uc}.json")
    mapping = dictionaries / "uc3" / "mapping.yaml"
    edit(mapping, '    "1": sct:373067005', '    "1": sct:260385009')
    later = (compiled / "uc3.json").stat().st_mtime + 10
    os.utime(mapping, (later, later))
    with pytest.raises(DictionaryError) as err:
        preflight(["uc1", "uc3"], dictionaries, ONTOLOGIES, compiled)
    message = str(err.value)
    assert message.splitlines()[0] == (
        f"{dictionaries}: the use cases uc1, uc3 code a shared answer differently (declare `own_coding` on a "
        "variable whose codes are deliberately its own; docs/dictionary-format.md)"
    )
    assert len(message.splitlines()) > 1 and all(line.startswith("  - ") for line in message.splitlines()[1:])


def test_the_workflow_stops_at_parse_time_with_exit_3_and_runs_no_job(dictionaries, tmp_path) -> None:
    edit(dictionaries / "uc1" / "mapping.yaml", "  hep_b: {mandatory: true}", "  hep_bb: {mandatory: true}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "--cores",
            "1",
            "--config",
            f"dictionaries={dictionaries}",
        ],
        cwd=tmp_path,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=300,
        input="",
    )
    out = result.stdout + result.stderr
    assert result.returncode == 3, out[-3000:]
    assert "Traceback" not in out and "Job stats" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("oncofhir: dictionary error: ")]
    assert lines == ["oncofhir: dictionary error: dictionaries/uc1: use case 'uc1' does not compile"]
    assert "  - variables: 'hep_bb' is not in the REDCap dictionary" in out.splitlines()
    assert not (tmp_path / "results").exists() and not (tmp_path / "demo").exists()
