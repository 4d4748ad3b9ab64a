"""Snakemake adapter: data-quality checks, scores and gate for one center."""

from pathlib import Path

from oncofhir.qc import stage_qc
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(
    sm,
    lambda: stage_qc(
        sm.input.dictionary,
        sm.input.records,
        Path(sm.output.scores).parent,
        weights=dict(sm.params.weights),
        min_record_score=sm.params.min_record_score,
        min_type_scores=dict(sm.params.min_type_scores),
        center=sm.wildcards.center,
        no_checks=sm.params.no_checks,
    ),
)
