"""Snakemake adapter: write the run's Provenance Run Crate (oncofhir.provenance.crate)."""

import json
from pathlib import Path

from oncofhir.provenance.crate import build_crate
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
p = sm.params
centers = {use_case: set(names) for use_case, names in json.loads(p.centers).items()}
run(
    sm,
    lambda: build_crate(
        Path(p.results),
        Path(sm.output[0]).parent,
        Path(p.workflow_dir),
        Path(p.metadata),
        dict(sm.config),
        centers,
        {use_case: Path(p.dictionaries) / use_case for use_case in centers},
        Path(p.ontologies),
    ),
)
