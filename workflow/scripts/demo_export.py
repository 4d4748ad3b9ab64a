"""Snakemake adapter: generate one synthetic demo export."""

from oncofhir.demo import write_center_export
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(
    sm,
    lambda: write_center_export(
        sm.input.dictionary, sm.output[0], center=sm.wildcards.center, records=sm.params.records, seed=sm.params.seed
    ),
)
