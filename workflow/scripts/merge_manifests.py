"""Snakemake adapter: merge the per-center EGA manifests and check the encrypted files against them."""

from oncofhir.deposit.manifest import stage_manifest
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, lambda: stage_manifest(list(sm.input), sm.output[0]))
