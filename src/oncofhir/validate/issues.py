"""The one finding type every layer reports, shaped like a FHIR OperationOutcome issue.

A shared shape lets the layers, the HL7 validator's output and the report use one vocabulary: severity and code
from FHIR's IssueSeverity / IssueType, a FHIRPath location, a message a data manager can act on, and the rule and
layer that raised it (so every finding can be explained, counted and tested).
"""

from __future__ import annotations

from dataclasses import dataclass

#: FHIR IssueSeverity, most severe first.
SEVERITIES = ("fatal", "error", "warning", "information")
#: The layers, in the order they run (docs/validation.md).
LAYERS = ("structure", "cardinality", "invariants", "references", "terminology", "profile", "hl7")


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding: what is wrong (message), where (FHIRPath), how bad (severity), and which rule found it."""

    severity: str
    code: str
    location: str
    message: str
    rule: str
    layer: str

    def at(self, prefix: str) -> Issue:
        """The same issue located below ``prefix`` (cached resource issues are stored relative to the resource)."""
        loc = f"{prefix}.{self.location}" if self.location else prefix
        return Issue(self.severity, self.code, loc, self.message, self.rule, self.layer)

    @property
    def is_error(self) -> bool:
        """Errors and fatal issues fail a bundle; warnings and information do not."""
        return self.severity in {"fatal", "error"}


def join(location: str, name: str) -> str:
    """``location.name`` (or ``name`` at the root): FHIRPath element navigation."""
    return f"{location}.{name}" if location else name
