"""Snakemake adapter: the run report, the QC pages and the lists they link to as one HTML file (snakemake --report)."""

from oncofhir.report_file import write_report_file
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
inp = sm.input
run(sm, lambda: write_report_file(list(inp.pages), list(inp.lists), sm.params.results, sm.output[0], list(inp.kept)))
