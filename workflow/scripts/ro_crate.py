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
        Path(sm.scriptdir).resolve().parent.parent,  # the checkout: workflow/scripts/ -> its root
        Path.cwd() / ".snakemake" / "metadata",  # Snakemake's job records, in its working directory
        dict(sm.config),
        centers,
        Path(sm.input.ontologies[0]).parent,
        [Path(f) for f in sm.input.generalised],
    ),
)
