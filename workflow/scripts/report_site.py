"""Snakemake adapter: gather the run report, the QC pages and the lists they link to for `snakemake --report`."""

from oncofhir.report import write_site
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, lambda: write_site(list(sm.input), sm.params.results, sm.output[0]))
