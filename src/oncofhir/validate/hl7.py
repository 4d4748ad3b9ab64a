"""The official HL7 FHIR validator as an optional, external, offline stage.

``tools/hl7-validator/install.sh`` assembles the validator's classpath from Maven Central and fills the FHIR package
cache (``~/.fhir/packages``) from the npm registry; this module runs it once per center, on the center's bundle
folder, in one JVM (start-up and loading the definitions take most of its time), with ``-tx n/a`` (no terminology
server) and ``-version 4.3.0``, and turns its OperationOutcome into :class:`~oncofhir.validate.issues.Issue` rows.

Offline, the validator warns about what it cannot know (SNOMED CT, LOINC, UCUM content without a terminology
server) and about best practices oncofhir's data model deliberately does not follow (narrative, Observation
performer and time). Those messages are counted in the report, by message id, but not listed one by one
(:data:`EXPECTED_OFFLINE`); every other message is listed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OncofhirError
from .issues import Issue

LAYER = "hl7"
MAIN_CLASS = "OncofhirValidatorCli"
DEFAULT_HOME = Path(os.environ.get("ONCOFHIR_HL7_HOME", Path.home() / ".cache" / "oncofhir" / "hl7-validator"))
FHIR_VERSION = "4.3.0"
#: message ids (or, for the terminology engine's un-numbered messages, a text prefix) expected offline or by design
EXPECTED_OFFLINE = {
    "All_observations_should_have_a_performer": "best practice; the research data model records no performers",
    "All_observations_should_have_an_effectiveDateTime_or_an_effectivePeriod": "best practice; the model records "
    "durations, not dates, and most findings have none",
    "dom-6": "best practice; bundles carry no narrative by design",
    "MSG_EXPERIMENTAL": "information; the IG's status value sets (docs/ig.md) name R4B's event-status code system, "
    "which R4B itself marks experimental",
    "Error_validating_code_running_without_terminology_services": "-tx n/a: UCUM content needs a terminology server",
    "tx-codesystem-unknown": "-tx n/a: SNOMED CT, LOINC, NCIt, RxNorm, ICD-O-3 are not in the package cache; the "
    "terminology layer checks these codes against resources/ontologies",
    "tx-valueset-unchecked": "-tx n/a: example and extensible bindings to external code systems cannot be checked",
}
_COMMENT = re.compile(r"/\*.*?\*/")
_SEVERITY = {"fatal": "fatal", "error": "error", "warning": "warning", "information": "information"}


@dataclass
class Outcome:
    """The validator's findings on a set of files: (file path, issue), and the expected offline messages counted."""

    issues: list[tuple[str, Issue]] = field(default_factory=list)
    expected: Counter[str] = field(default_factory=Counter)
    files: int = 0


def available(home: str | Path = DEFAULT_HOME, java: str = "java") -> str | None:
    """None when the validator can run here, else why not (for a skip message or a clear error)."""
    if shutil.which(java) is None:
        return f"'{java}' is not on PATH (install Java 17, or turn validation.hl7_validator.enabled off)"
    home = Path(home)
    if not (home / "lib").is_dir() or not (home / "classes" / f"{MAIN_CLASS}.class").exists():
        return f"the HL7 validator is not installed in {home} (run tools/hl7-validator/install.sh)"
    packages = Path.home() / ".fhir" / "packages" / f"hl7.fhir.r4b.core#{FHIR_VERSION}"
    if not packages.is_dir():
        return f"{packages} is missing (run tools/hl7-validator/install.sh)"
    return None


def command(
    sources: list[str | Path],
    output: str | Path,
    *,
    home: str | Path = DEFAULT_HOME,
    java: str = "java",
    memory: str = "4g",
    tho_version: str = "7.0.1",
    igs: list[str | Path] | None = None,
) -> list[str]:
    """The validator's command line: one JVM for all ``sources`` (files or folders), offline, R4B; ``igs``:
    FHIR packages (``package.tgz``) to validate against too, e.g. the generated IG (resources claiming its
    profiles in ``meta.profile`` are validated against them)."""
    home = Path(home)
    return [
        java,
        f"-Xmx{memory}",
        f"-Doncofhir.tho={tho_version}",
        f"-Dlogback.configurationFile={home / 'logback.xml'}",
        "-cp",
        f"{home / 'classes'}{os.pathsep}{home / 'lib'}/*",
        MAIN_CLASS,
        *[str(s) for s in sources],
        "-version",
        FHIR_VERSION,
        "-tx",
        "n/a",
        *[arg for ig in igs or [] for arg in ("-ig", str(ig))],
        "-output",
        str(output),
    ]


def run(
    bundle_dir: str | Path,
    output: str | Path,
    *,
    home: str | Path = DEFAULT_HOME,
    java: str = "java",
    memory: str = "4g",
    timeout: int = 3600,
    log: str | Path | None = None,
    igs: list[str | Path] | None = None,
) -> dict[str, Any]:
    """Validate every ``*.json`` of ``bundle_dir`` in one JVM; write its OperationOutcome to ``output``."""
    reason = available(home, java)
    if reason is not None:
        raise OncofhirError(f"cannot run the HL7 validator: {reason}")
    files = sorted(Path(bundle_dir).glob("*.json"))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not files:
        output.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}) + "\n")
        return {"files": 0, "seconds": 0.0}
    start = time.perf_counter()
    # a pattern, not the folder: a Snakemake directory() output also holds a hidden .snakemake_timestamp file
    # the validator writes to a temp name, renamed when it is done: a killed job leaves no truncated outcome
    partial = output.with_name(f".partial.{output.name}")  # same extension: the validator picks its format by it
    partial.unlink(missing_ok=True)
    cmd = command([str(Path(bundle_dir) / "*.json")], partial, home=home, java=java, memory=memory, igs=igs)
    with open(log or os.devnull, "w", encoding="utf-8") as handle:
        done = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    seconds = time.perf_counter() - start
    if partial.exists():
        os.replace(partial, output)
    if not output.exists():
        raise OncofhirError(
            f"the HL7 validator exited with status {done.returncode} without writing {output}"
            + (f" (see {log})" if log else "")
        )
    return {"files": len(files), "seconds": round(seconds, 1), "exit_status": done.returncode}


def read(path: str | Path) -> Outcome:
    """Parse the validator's output (a Bundle of OperationOutcomes, or one OperationOutcome for one file)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    outcomes = (
        [e.get("resource", {}) for e in data.get("entry", [])] if data.get("resourceType") == "Bundle" else [data]
    )
    result = Outcome(files=len(outcomes))
    for oo in outcomes:
        source = str(_extension(oo, "operationoutcome-file") or "")
        for raw in oo.get("issue", []):
            issue = _issue(raw)
            if issue is None:
                continue
            if issue.rule in EXPECTED_OFFLINE and not issue.is_error:
                result.expected[issue.rule] += 1
                continue
            result.issues.append((source, issue))
    return result


def _extension(element: dict[str, Any], suffix: str) -> Any:
    for ext in element.get("extension", []):
        if ext.get("url", "").endswith(suffix):
            return next((v for k, v in ext.items() if k.startswith("value")), None)
    return None


def _issue(raw: dict[str, Any]) -> Issue | None:
    message = (raw.get("details") or {}).get("text") or raw.get("diagnostics") or ""
    severity = _SEVERITY.get(raw.get("severity", ""), "information")
    if severity == "information" and message.startswith("All OK"):
        return None
    rule = _extension(raw, "operationoutcome-message-id")
    if isinstance(rule, str) and "#" in rule:  # invariants: ".../Quantity#qty-3" -> "qty-3"
        rule = rule.rsplit("#", 1)[1]
    if not rule:
        if "could not be found, so the code cannot be validated" in message:
            rule = "tx-codesystem-unknown"
        elif message.startswith("Unable to check whether the code is in the value set"):
            rule = "tx-valueset-unchecked"

        else:
            rule = "hl7"
    expressions = raw.get("expression") or raw.get("location") or [""]
    location = _COMMENT.sub("", expressions[0]).replace("..", ".")
    return Issue(severity, raw.get("code", "processing"), location, message, rule, LAYER)
