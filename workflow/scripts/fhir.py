"""Snakemake adapter: build one center's FHIR bundles."""

from oncofhir.pipeline import stage_fhir
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(
    sm,
    lambda: stage_fhir(
        sm.input.dictionary,
        sm.input.records,
        sm.input.ingest_rejects,
        sm.input.ingest_report,
        sm.output.bundles,
        sm.output.ndjson,
        sm.output.index,
        sm.output.rejects,
        sm.output.summary,
        identifier_system=sm.params.identifier_system,
        gate_tsv=sm.input.gate,
    ),
)
