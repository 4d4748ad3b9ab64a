"""Snakemake adapter: encrypt one center's bundles and NDJSON for the EGA."""

from oncofhir.deposit.encrypt import stage_encrypt
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(
    sm,
    lambda: stage_encrypt(
        sm.input.bundles,
        sm.input.ndjson,
        sm.output.encrypted,
        sm.output.manifest,
        use_case=sm.wildcards.use_case,
        center=sm.wildcards.center,
        recipients=list(sm.input.recipients),
        sender_key=sm.input.sender[0] if sm.input.sender else None,
        threads=sm.threads,
    ),
)
