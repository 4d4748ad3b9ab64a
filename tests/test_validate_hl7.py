"""The official HL7 validator stage: offline, one JVM for a folder, and it agrees with the in-process layers on the
defects both can see (tools/hl7-validator/install.sh installs it; skipped with the reason when absent)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from test_validate import CORPUS, build, bundles_of, errors

from oncofhir.dictionary import load_compiled
from oncofhir.validate import ValidationContext, hl7, validate_bundle
from oncofhir.validate.report import stage_validate

REASON = hl7.available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"HL7 validator unavailable: {REASON}")

#: Defects the HL7 validator must report as errors too (terminology and data-model defects need our tables).
BOTH = [
    "unknown_element",
    "wrong_type",
    "missing_status",
    "required_binding",
    "bad_date",
    "bad_date_format",
    "duplicate_full_url",
    "wrong_target",
    "broken_invariant",
    "datatype_invariant",
    "quantity_invariant",
    "empty_element",
    "empty_array",
    "two_choice_types",
    "bad_extension_code",
]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[hl7.Issue]], Path]:
    root = tmp_path_factory.mktemp("hl7")
    work = build(root / "uc7", "uc7", records=12)
    context = ValidationContext.create(load_compiled(work / "dict.json"))
    base = next(b for b in bundles_of(work) if not errors(validate_bundle(b, context)))
    folder = root / "files"
    folder.mkdir()
    (folder / "valid.json").write_text(json.dumps(base), encoding="utf-8")
    for name in BOTH:
        broken = copy.deepcopy(base)
        CORPUS[name](broken, context)
        (folder / f"{name}.json").write_text(json.dumps(broken), encoding="utf-8")
    output = root / "hl7_outcome.json"
    info = hl7.run(folder, output, log=root / "hl7.log")
    assert info["files"] == len(BOTH) + 1
    found: dict[str, list[hl7.Issue]] = {}
    for path, issue in hl7.read(output).issues:
        found.setdefault(Path(path).name, []).append(issue)
    return folder, found, output


def test_valid_bundle_has_no_hl7_errors(outcome):
    _, found, _ = outcome
    assert [i for i in found.get("valid.json", []) if i.is_error] == []


@pytest.mark.parametrize("defect", BOTH)
def test_hl7_validator_reports_the_defect(outcome, defect: str):
    _, found, _ = outcome
    assert [i for i in found.get(f"{defect}.json", []) if i.is_error], f"HL7 validator missed {defect}"


def test_outcome_is_merged_into_the_report(outcome, tmp_path: Path):
    folder, _, output = outcome
    compiled = next(folder.parent.glob("uc7/dict.json"))
    summary = stage_validate(compiled, folder, tmp_path / "report", fail_on_error=False, hl7_outcome=output)
    assert summary["hl7_validator"]["ran"] and "hl7" in summary["by_layer"]
    assert summary["hl7_expected_offline"]  # counted, not listed
    rows = json.loads((tmp_path / "report" / "issues.json").read_text())
    assert {r["source"] for r in rows if r["layer"] == "hl7" and r["severity"] == "error"} <= {
        f"{d}.json" for d in BOTH
    }
