"""Snakemake adapter: aggregate per-center reports into the run summary."""

from oncofhir.report import write_run_summary
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, lambda: write_run_summary(list(sm.input.ingest), list(sm.input.fhir), list(sm.input.qc), sm.output[0]))
