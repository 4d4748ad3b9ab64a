"""What a quality check is: the paper's check types (Table 1), their dimensions and default weights (Table 2).

Kept in one small module so the checks, the scoring, the writers and the tests agree on names, order and weights
without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    CheckType("relational", "Conformance", "Meets the mapping's rules between variables (relational conformance)"),
    CheckType("computational", "Conformance", "Holds the value its calculation gives (computational conformance)"),
    CheckType("temporal", "Plausibility", "Meets the mapping's interval and date-order rules (temporal plausibility)"),
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

#: Table 2's weights. ``branching`` and the rule types (relational, computational, temporal) are reported but not
#: scored unless a weight is configured for them: Table 2 stays the default layout, their rows come below it.
DEFAULT_WEIGHTS: dict[str, float] = {
    "minimal_req": 50.0,
    "mandatory_req": 10.0,
    "length": 10.0,
    "datatype": 10.0,
    "permissible": 10.0,
    "range": 10.0,
    "branching": 0.0,
    "relational": 0.0,
    "computational": 0.0,
    "temporal": 0.0,
}

#: The check types a mapping rule becomes, by its ``category`` (Kahn et al.'s terms).
RULE_TYPES: tuple[str, ...] = ("relational", "computational", "temporal")

#: What a type with no applicable check contributes (see docs/qc.md, "Types with no checks").
NO_CHECKS_POLICIES = ("renormalise", "full_credit")
DEFAULT_NO_CHECKS = "renormalise"


@dataclass(frozen=True, slots=True)
class Check:
    """One check of one variable: what the drill-down needs to say which rule failed and why.

    ``id`` is ``<variable>.<type>`` (REDCap variable names cannot contain a dot, so ids never collide), or for a
    mapping rule its id (no dot either). ``message`` states the failure in words a data manager can send back to the
    hospital. ``variables`` (rules and calculations) are every variable whose value a failure shows; ``weight`` is
    how many checks one result counts as in its type's pass and fail counts (a rule's ``weight``; else 1).
    """

    variable: str
    type: str
    message: str
    rule: str = ""
    variables: tuple[str, ...] = ()
    weight: int = 1

    @property
    def id(self) -> str:
        """``<variable>.<type>``, or the rule's id."""
        return self.rule or f"{self.variable}.{self.type}"

    @property
    def dimension(self) -> str:
        """The check type's dimension (Completeness, Conformance, Plausibility)."""
        return TYPES[self.type].dimension


def labelled(labels: Mapping[str, Mapping[str, str]], variable: str, value: str) -> str:
    """``1 = Female`` for a coded value with a label in ``labels`` (variable -> code -> label); else the value."""
    label = labels.get(variable, {}).get(value)
    return f"{value} = {label}" if label is not None else value
