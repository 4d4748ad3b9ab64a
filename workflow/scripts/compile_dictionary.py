"""Snakemake adapter: lint and compile one use case's dictionary."""

from pathlib import Path

from oncofhir.pipeline import stage_compile
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
# Folders are derived from the inputs (not hard-coded params) so the job also runs without a shared file system.
run(sm, lambda: stage_compile(Path(sm.input.mapping).parent, Path(sm.input.ontologies[0]).parent, sm.output[0]))
