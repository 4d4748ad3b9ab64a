"""Snakemake adapter: split one center out of a combined export."""

from oncofhir.smk import run
from oncofhir.split import split_export

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, lambda: split_export(sm.input[0], sm.params.dag, sm.output.export, sm.output.report))
