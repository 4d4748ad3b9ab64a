"""Snakemake adapter: build one center's FHIR bundles, named and identified by pseudonym."""

from oncofhir.deposit.pseudonym import Pseudonymizer, load_secret
from oncofhir.pipeline import stage_fhir
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(
    sm,
    lambda: stage_fhir(
        sm.input.dictionary,
        sm.input.records,
        sm.input.ingest_rejects,
        sm.input.ingest_report,
        sm.output.bundles,
        sm.output.ndjson,
        sm.output.index,
        sm.output.rejects,
        sm.output.summary,
        identifier_system=sm.params.identifier_system,
        gate_tsv=sm.input.gate,
        # the secret is read here, from the environment (Snakemake's envvars:), never from params or config
        pseudonymizer=Pseudonymizer(load_secret(allow_demo=sm.params.allow_demo_secret)),
    ),
)
