"""Snakemake adapter: run the HL7 FHIR validator on one center's bundle folder."""

import os

from oncofhir.smk import run
from oncofhir.validate.hl7 import run as run_validator

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(
    sm,
    lambda: run_validator(
        sm.input.bundles,
        sm.output[0],
        home=os.path.expanduser(sm.params.home),
        java=sm.params.java,
        memory=sm.params.memory,
        timeout=sm.params.timeout,
        log=sm.log.validator,
        igs=list(sm.input.ig),
    ),
)
