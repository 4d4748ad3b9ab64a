"""Validation of the bundles oncofhir emits: six in-process layers and the official HL7 validator.

See docs/validation.md. ``validate_bundle`` runs the layers on one bundle; ``stage_validate`` runs them on a
center's bundles and writes the report.
"""

from .engine import ValidationContext, validate_bundle
from .issues import LAYERS, SEVERITIES, Issue

__all__ = ["LAYERS", "SEVERITIES", "Issue", "ValidationContext", "stage_validate", "validate_bundle"]


def __getattr__(name: str):  # the report pulls in file handling; import it only when asked for
    if name == "stage_validate":
        from .report import stage_validate

        return stage_validate
    raise AttributeError(name)
