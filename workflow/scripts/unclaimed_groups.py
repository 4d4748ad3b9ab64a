"""Snakemake adapter: report data access groups that no center claims."""

from oncofhir.smk import run
from oncofhir.split import write_unclaimed

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, lambda: write_unclaimed(list(sm.input), sm.output[0]))
