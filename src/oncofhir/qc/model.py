"""What a quality check is: the paper's check types (Table 1), their dimensions and default weights (Table 2).

Kept in one small module so the checks, the scoring, the writers and the tests agree on names, order and weights
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Status codes of one check on one record (an int8 matrix of these is the QC result).
NOT_APPLICABLE, PASS, FAIL = 0, 1, 2


@dataclass(frozen=True, slots=True)
class CheckType:
    """A type of check: its name (as in the paper), dimension and what passing it means."""

    name: str
    dimension: str
    description: str


#: Every check type, in Table 1's order; ``branching`` is oncofhir's addition (not in the paper).
CHECK_TYPES: tuple[CheckType, ...] = (
    CheckType("minimal_req", "Completeness", "Meets minimum requirements"),
    CheckType("mandatory_req", "Completeness", "Meets mandatory requirements"),
    CheckType("length", "Conformance", "Conforms to length restrictions"),
    CheckType("datatype", "Conformance", "Conforms to data type restrictions"),
    CheckType("permissible", "Conformance", "Conforms to list of permissible values"),
    CheckType("range", "Plausibility", "Meets known range limits"),
    CheckType("branching", "Plausibility", "Leaves the fields its branching logic hides blank"),
)
#: Checks over all centers of a use case (:mod:`oncofhir.qc.pool`, one job per use case, after every center's QC):
#: reported always, in the QC index's scores only with a weight in ``qc.pool.weights`` (default 0).
POOL_CHECK_TYPES: tuple[CheckType, ...] = (
    CheckType("outlier", "Plausibility", "Within the pooled distribution of the use case's centers (atemporal)"),
    CheckType("duplicate", "Plausibility", "Not a likely duplicate of another record (uniqueness)"),
    CheckType("drift", "Plausibility", "Distributed like the other centers (cross-center drift, per variable)"),
)
TYPES: dict[str, CheckType] = {t.name: t for t in (*CHECK_TYPES, *POOL_CHECK_TYPES)}

#: The paper's six types: always rows of the score table (Table 2), whatever their weight.
PAPER_TYPES: tuple[str, ...] = ("minimal_req", "mandatory_req", "length", "datatype", "permissible", "range")

#: Table 2's weights. ``branching`` is reported but not scored unless a weight is configured for it.
DEFAULT_WEIGHTS: dict[str, float] = {
    "minimal_req": 50.0,
    "mandatory_req": 10.0,
    "length": 10.0,
    "datatype": 10.0,
    "permissible": 10.0,
    "range": 10.0,
    "branching": 0.0,
}

#: What a type with no applicable check contributes (see docs/qc.md, "Types with no checks").
NO_CHECKS_POLICIES = ("renormalise", "full_credit")
DEFAULT_NO_CHECKS = "renormalise"


@dataclass(frozen=True, slots=True)
class Check:
    """One check of one variable: what the drill-down needs to say which rule failed and why.

    ``id`` is ``<variable>.<type>`` (REDCap variable names cannot contain a dot, so ids never collide).
    ``message`` states the failure in words a data manager can send back to the hospital.
    """

    variable: str
    type: str
    message: str

    @property
    def id(self) -> str:
        """``<variable>.<type>``."""
        return f"{self.variable}.{self.type}"

    @property
    def dimension(self) -> str:
        """The check type's dimension (Completeness, Conformance, Plausibility)."""
        return TYPES[self.type].dimension
