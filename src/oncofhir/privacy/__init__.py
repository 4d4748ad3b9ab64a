"""Re-identification risk of a use case's deposit: k-anonymity and l-diversity over its quasi-identifiers.

Two steps, so no plaintext crosses a stage boundary: per center, :mod:`.counts` turns the deposited records into
counts of (quasi-identifier values, sensitive value) without record ids; per use case, :mod:`.risk` sums the
centers' counts and measures the risk, and :mod:`.stage` writes the report and the release decision.
"""

from .counts import CENTER, count_classes, write_counts
from .risk import assess
from .stage import check_release, stage_privacy

__all__ = ["CENTER", "assess", "check_release", "count_classes", "stage_privacy", "write_counts"]
