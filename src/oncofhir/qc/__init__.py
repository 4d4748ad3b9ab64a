"""The data-quality (QC) stage: the paper's checks and scores, driven by the same dictionaries as FHIR.

- :mod:`~oncofhir.qc.model`: check types, dimensions, Table 2's weights.
- :mod:`~oncofhir.qc.values`: what counts as blank, integer, number, date (shared with the FHIR stage's rule).
- :mod:`~oncofhir.qc.checks`: the checks of a dictionary, evaluated vectorised over a center.
- :mod:`~oncofhir.qc.scoring`: pass / fail / total per type, weighted scores (Table 2).
- :mod:`~oncofhir.qc.gate`: which records go on to FHIR.
- :mod:`~oncofhir.qc.writers`, :mod:`~oncofhir.qc.html`: the outputs.
- :mod:`~oncofhir.qc.stage`: :func:`stage_qc` and :func:`write_qc_index`, what the workflow and CLI call.
- pool checks over all centers of a use case: :mod:`~oncofhir.qc.poolstats` (what each center's QC job adds up),
  :mod:`~oncofhir.qc.pool` (the per-use-case step), :mod:`~oncofhir.qc.outliers`, :mod:`~oncofhir.qc.duplicates`,
  :mod:`~oncofhir.qc.drift` (the statistics), :mod:`~oncofhir.qc.pool_html` (the QC index's heat map).

docs/qc.md documents the checks, the formula and the differences from the consortium's tool.
"""

from .checks import QCResult, run_checks
from .model import CHECK_TYPES, DEFAULT_WEIGHTS, PAPER_TYPES, TYPES, Check
from .scoring import ScoreRow, ScoreTable, resolve_weights, score_table
from .stage import OUTPUTS, stage_qc, write_qc_index

__all__ = [
    "CHECK_TYPES",
    "DEFAULT_WEIGHTS",
    "OUTPUTS",
    "PAPER_TYPES",
    "TYPES",
    "Check",
    "QCResult",
    "ScoreRow",
    "ScoreTable",
    "resolve_weights",
    "run_checks",
    "score_table",
    "stage_qc",
    "write_qc_index",
]
