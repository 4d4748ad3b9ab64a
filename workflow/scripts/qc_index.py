"""Snakemake adapter: the combined data-quality page of every center and use case."""

from oncofhir.qc import write_qc_index
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(
    sm,
    lambda: write_qc_index(
        list(sm.input.qc),
        sm.output[0],
        min_score=sm.params.min_center_score,
        pool_json_paths=list(sm.input.pools),
    ),
)
