"""Snakemake adapter: one JSON file per patient from a center's NDJSON."""

from oncofhir.fhir.writer import explode_ndjson
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, lambda: f"{explode_ndjson(sm.input.ndjson, sm.input.index, sm.output[0])} bundle files")
