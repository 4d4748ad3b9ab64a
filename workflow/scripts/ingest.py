"""Snakemake adapter: ingest one center's export."""

from oncofhir.pipeline import stage_ingest
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(
    sm,
    lambda: stage_ingest(
        sm.input.dictionary,
        sm.input.export,
        sm.output.records,
        sm.output.rejects,
        sm.output.report,
        require_complete=sm.params.require_complete,
    ),
)
